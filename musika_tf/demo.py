"""`make demo`: music from the shipped models in about a minute, and the whole-pipeline check.

`play_shipped` (what `make demo` runs): for each model shipped in ``checkpoints/`` (``piano``: note
density, ``techno``: tempo), generate a 60-s piece at two condition settings into ``generations/``
and print the paths and the real-time factor.

`run_demo` (`make pipeline`, ``python -m musika_tf demo --pipeline``): the pipeline end to end on
the embedded data, on a CPU, in minutes:

1. Build the embedded data sets (synthesised piano in MAESTRO layout, procedural techno).
2. Read them through the same loaders that read real data; check the audio front end on one piece
   of each (true-phase round trip SNR, display spectrogram PNG, reconstruction WAV).
3. Train the `demo` preset (tiny networks, few steps) on the piano set: autoencoder level 1 (both
   phases) and level 2, encode the data, train the latent GAN (`training.run.train`, stage gan).
4. Export the EMA generator and decoders as a SavedModel to ``checkpoints/demo-tiny`` and generate a
   piece from it with the inference engine.
"""

from __future__ import annotations

import os

from . import audio as audio_lib
from .config import Preset, get_preset
from .data import datasets
from .frontend_check import round_trip_snr, true_phase_round_trip

# Shipped models and the two settings each is played at (display units: onsets/s, BPM).
SHIPPED = {"piano": ("density", (1.5, 6.0)), "techno": ("tempo", (124.0, 145.0))}
SHIPPED_SECONDS = 60.0
DEMO_RUN = os.path.join("runs", "demo")
DEMO_MODEL = os.path.join("checkpoints", "demo-tiny")


def check_front_end(preset: Preset, out_dir: str, minutes: float | None, seed: int) -> dict:
    """Build/read both embedded sets and run the front end on one piece of each."""
    results = {}
    for name in datasets.EMBEDDED:
        items = datasets.read_dataset(name, minutes=minutes, seed=seed)
        summary = datasets.LoadSummary()
        item, audio = next(datasets.iter_audio(items[:1], preset.audio.sample_rate,
                                               datasets.min_samples(preset), summary))
        snr = round_trip_snr(audio, preset.audio)
        wav = os.path.join(out_dir, f"{name}_roundtrip.wav")
        png = os.path.join(out_dir, f"{name}_spectrogram.png")
        audio_lib.save_audio(wav, true_phase_round_trip(audio, preset.audio), preset.audio.sample_rate)
        audio_lib.save_spectrogram_png(png, [audio[: 20 * preset.audio.sample_rate]], preset.audio,
                                       titles=[item.title])
        results[name] = {"files": len(items), "round_trip_snr_db": snr}
        print(f"{name}: {len(items)} files; '{item.title}': true-phase round trip SNR {snr:.1f} dB "
              f"-> {wav}, {png}")
    return results


def train_export_generate(out_dir: str, seconds: float = 30.0, seed: int = 0) -> str:
    """Train the demo preset on the piano set, export it, generate `seconds` of music; return the WAV."""
    from .training.export_run import export_from_run
    from .inference import Engine
    from .training.run import train

    preset = get_preset("demo")
    train("gan", preset, "maestro", DEMO_RUN)
    export_from_run(DEMO_RUN, DEMO_MODEL, card={"notes": "make demo: tiny networks, minutes of CPU "
                                                "training; a pipeline check, not a musical model"},
                    overwrite=True)
    engine = Engine.load(DEMO_MODEL)
    audio = engine.generate(seconds, seed=seed)
    wav = os.path.join(out_dir, "generated_demo_tiny.wav")
    audio_lib.save_audio(wav, audio, engine.sample_rate)
    audio_lib.save_spectrogram_png(os.path.join(out_dir, "generated_demo_tiny.png"), [audio],
                                   engine.preset.audio, titles=["generated (demo-tiny)"])
    print(f"exported {DEMO_MODEL}; generated {seconds:.0f} s -> {wav}")
    return wav


def run_demo(preset: Preset, out_dir: str = "demo_out", minutes: float | None = None,
             seed: int = 0, train: bool = True) -> dict:
    """Run the demo; write outputs under `out_dir`; return the measured numbers."""
    os.makedirs(out_dir, exist_ok=True)
    results = check_front_end(preset, out_dir, minutes, seed)
    if train:
        results["generated"] = train_export_generate(out_dir, seed=seed)
        print(f"next: `python app.py --model {DEMO_MODEL}` serves it in the browser; "
              "`python generate.py --model ... --seconds 120` writes longer pieces")
    return results


def play_shipped(out_dir: str = "generations", seconds: float = SHIPPED_SECONDS, seed: int = 0,
                 checkpoints: str = "checkpoints") -> list[dict]:
    """Generate `seconds` from every shipped model at both of its settings into `out_dir`."""
    import time

    from .conditioning import CONDITION_UNITS, normalise_condition
    from .inference import Engine

    os.makedirs(out_dir, exist_ok=True)
    done = []
    for name, (cond, settings) in SHIPPED.items():
        folder = os.path.join(checkpoints, name)
        if not os.path.isdir(folder):
            print(f"{folder}: not here (a shipped model is missing from this checkout); skipped")
            continue
        engine = Engine.load(folder)
        for value in settings:
            start = time.perf_counter()
            path = os.path.join(out_dir, f"{name}_{cond}_{value:g}.wav")
            engine.generate_to_file(path, seconds, seed=seed,
                                    condition=float(normalise_condition(cond, value)))
            rtf = seconds / (time.perf_counter() - start)
            print(f"{name}: {seconds:.0f} s at {value:g} {CONDITION_UNITS[cond]} -> {path} "
                  f"({rtf:.0f}x real time)")
            done.append({"model": name, "path": path, "real_time_factor": rtf, cond: value})
    if done:
        print("next: `python app.py` serves these models in the browser; `python generate.py "
              "--model checkpoints/piano --seconds 300 --density 3` writes longer pieces")
    return done
