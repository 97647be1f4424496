"""Generation speed and memory on CPU: real-time factor, peak memory, time to first block, profile.

    python benchmarks/bench_generation.py [--presets musika44 paper22] [--lengths 12 60 600]

Random weights (speed does not depend on them), float32. For every preset, with and without XLA
(``jit_compile``): real-time factor (seconds of stereo audio per second of wall time, and per CPU
second) and peak RSS above the start while streaming pieces of each length; time to the first audio
block of a stream (cold: fresh engine, includes tracing/compiling; warm: a new stream afterwards);
where the time goes per decode unit (generator, DEC2, DEC, iSTFT); the engine against the
reference-style path (whole piece in memory, per-level mini-batches of 32 chunks, one iSTFT); and the
engine's decode-unit size. Tables are printed and written between the result markers of
``docs/PERFORMANCE.md`` (text outside the markers is kept).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import musika_tf  # noqa: E402,F401  before TensorFlow: oneDNN kernels on, as for users

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from musika_tf import audio, gan  # noqa: E402
from musika_tf.autoencoder import Autoencoder, latents_per_chunk, split_stereo_latents  # noqa: E402
from musika_tf.config import get_preset  # noqa: E402
from musika_tf.coordinates import inference_coordinates  # noqa: E402
from musika_tf.graphs import istft_block  # noqa: E402
from musika_tf.inference import BlockLayout, Engine  # noqa: E402
from musika_tf.layers import fold  # noqa: E402

from doc_tables import table, write_between  # noqa: E402

DOC = Path(__file__).resolve().parents[1] / "docs" / "PERFORMANCE.md"
BEGIN, END = "<!-- generation-results:begin -->", "<!-- generation-results:end -->"
PAGE = os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------------------------------------
# Measuring


def machine() -> dict:
    """CPU model, cores, RAM, load and library versions."""
    info = {"cpu": platform.processor() or "unknown", "cores": os.cpu_count()}
    with open("/proc/cpuinfo") as fh:
        names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
    if names:
        info["cpu"] = names[0]
    with open("/proc/meminfo") as fh:
        total_kb = int(next(line for line in fh if line.startswith("MemTotal")).split()[1])
    info["ram_gb"] = round(total_kb / 2 ** 20, 1)
    info["load"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    info["versions"] = (f"Python {platform.python_version()}, TensorFlow {tf.__version__}, "
                        f"Keras {keras.__version__}, numpy {np.__version__}")
    return info


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE


class PeakRss:
    """Context manager: peak resident memory above the value at entry (sampled every 5 ms)."""

    def __enter__(self):
        self.base = self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())
        self.delta_mb = (self.peak - self.base) / 2 ** 20


def timed(fn):
    """``(result, wall seconds, CPU seconds of this process)`` of ``fn()``."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = fn()
    return result, time.perf_counter() - wall0, time.process_time() - cpu0


def consume(blocks) -> int:
    """Drain an iterator of audio blocks; returns the samples seen."""
    return sum(len(b) for b in blocks)


# ---------------------------------------------------------------------------------------------
# Benchmarks


def build(name: str):
    """Preset and random-weight (generator, autoencoder)."""
    keras.utils.set_random_seed(0)
    preset = get_preset(name)
    return preset, gan.build_generator(preset), Autoencoder.build(preset)


def first_block(engine: Engine) -> float:
    """Seconds until the first block of a new stream is out."""
    return timed(lambda: next(engine.stream(seed=1)))[1]


def piece(engine: Engine, seconds: float) -> dict:
    """Stream a piece of `seconds` (blocks are dropped, as when written to a file)."""
    with PeakRss() as mem:
        _, wall, cpu = timed(lambda: consume(engine.blocks(seconds, seed=0)))
    return {"wall": wall, "cpu": cpu, "rtf": seconds / wall, "cpu_rtf": seconds / cpu,
            "peak_mb": mem.delta_mb}


def reference_style(preset, generator, ae, seconds: float) -> dict:
    """Before: the reference's path with the library's whole-signal functions (all windows through
    the generator in batches of up to 64, the whole latent sequence through DEC2 and then DEC in
    mini-batches of 32 chunks with host round trips, one iSTFT over all frames, all in memory)."""
    n = int(np.ceil(seconds * preset.latent_rate / preset.gan.latlen))  # windows
    gen = tf.function(lambda x: generator(x, training=False), reduce_retracing=True)

    def run():
        coords = inference_coordinates(preset, n, 2.0, 0)
        latents = np.concatenate([gen(coords[i:i + 64]).numpy()[:, 0] for i in range(0, n, 64)])
        magnitude, phase = ae.decode_latents(split_stereo_latents(latents.reshape(
            -1, preset.stereo_latent_dim)), seed=0)
        wave = np.clip(audio.stereo_istft(magnitude, phase, preset.audio).numpy(), -1, 1)
        return wave[:round(seconds * preset.audio.sample_rate)]

    run()  # trace
    with PeakRss() as mem:
        _, wall, cpu = timed(run)
    return {"wall": wall, "cpu": cpu, "rtf": seconds / wall, "cpu_rtf": seconds / cpu,
            "peak_mb": mem.delta_mb}


def stage_profile(preset, generator, ae, layout: BlockLayout, repeats: int = 5) -> list:
    """Milliseconds per call of each stage at the engine's unit sizes, and per second of audio."""
    rng = np.random.default_rng(0)
    w, lpc, chunks = layout.windows_per_block, latents_per_chunk(preset), layout.decode_chunks
    coords = inference_coordinates(preset, w, 2.0, 0)
    chunk_in = rng.uniform(-1, 1, (2 * chunks, 1, lpc, preset.ae.latent_dim)).astype("f4")
    dec2 = tf.function(lambda x: ae.decoder2(fold(x, 2), training=False))
    dec = tf.function(lambda x: ae.decoder(fold(x, 2), training=False))
    level1 = dec2(chunk_in)
    magnitude, phase = (tf.reshape(t, [2, -1, preset.audio.bins]) for t in dec(level1))
    carry = tf.zeros([2, 3, 4 * preset.audio.hop])
    synth = tf.function(lambda m, p, c: istft_block(m, p, c, preset.audio))
    one_istft = tf.function(lambda m, p: audio.istft(m, p, preset.audio))
    stages = [
        ("generator", tf.function(lambda c: generator(c, training=False)), (coords,),
         w * preset.gan.latlen),
        ("DEC2", dec2, (chunk_in,), chunks * lpc),
        ("DEC", dec, (level1,), chunks * lpc),
        ("iSTFT + overlap-add", synth, (magnitude, phase, carry), chunks * lpc),
    ]
    before = ("(before: `audio.istft`, tf.pow + tf.signal.inverse_stft)", one_istft,
              (magnitude, phase), chunks * lpc)
    rows = []
    for name, fn, args, latents in stages + [before]:
        fn(*args)
        _, wall, _ = timed(lambda: [fn(*args) for _ in range(repeats)])
        call_ms = 1000 * wall / repeats
        rows.append({"stage": name, "call_ms": call_ms,
                     "ms_per_s": call_ms / (latents / preset.latent_rate)})
    total = sum(r["ms_per_s"] for r in rows[:-1])
    for r in rows:
        r["share"] = f"{100 * r['ms_per_s'] / total:.0f} %" if r is not rows[-1] else "-"
    return rows


# ---------------------------------------------------------------------------------------------
# Report


def unit_size_sweep(name: str, preset, generator, ae, seconds: float) -> list:
    """RTF and warm first-block time for several decode-unit sizes (rows of the sweep table)."""
    rows = []
    for chunks in (2, 4, 8, 16):
        engine = Engine.from_models(preset, generator, ae, BlockLayout(decode_chunks=chunks))
        first_block(engine)  # trace
        r = piece(engine, seconds)
        rows.append([name, chunks, f"{_block_seconds(engine):.2f}", f"{r['rtf']:.1f}",
                     f"{r['cpu_rtf']:.1f}", f"{first_block(engine):.2f}"])
        print(rows[-1], flush=True)
    return rows


def bench_preset(name: str, lengths: list, sweep: bool) -> dict:
    """All measurements of one preset: table rows by section."""
    preset, generator, ae = build(name)
    out = {"pieces": [], "first": [], "before_after": [], "sweep": []}
    mid = sorted(lengths)[len(lengths) // 2]
    for xla in (False, True):
        engine = Engine.from_models(preset, generator, ae, jit_compile=xla)
        flag = "on" if xla else "off"
        cold = first_block(engine)
        out["first"].append([name, flag, f"{cold:.2f}", f"{first_block(engine):.2f}",
                             f"{_block_seconds(engine):.2f}"])
        for seconds in lengths:
            r = piece(engine, seconds)
            out["pieces"].append([name, flag, _length(seconds), f"{r['wall']:.1f}",
                                  f"**{r['rtf']:.1f}**", f"{r['cpu']:.1f}", f"{r['cpu_rtf']:.1f}",
                                  f"{r['peak_mb']:.0f}"])
            print(out["pieces"][-1], flush=True)
        if xla:
            continue
        before = reference_style(preset, generator, ae, mid)
        for label, r in (("reference-style (before)", before), ("engine (after)", piece(engine, mid))):
            out["before_after"].append([name, label, _length(mid), f"{r['wall']:.1f}",
                                        f"{r['rtf']:.1f}", f"{r['cpu_rtf']:.1f}", f"{r['peak_mb']:.0f}"])
        print(out["before_after"][-2:], flush=True)
        out["profile"] = stage_profile(preset, generator, ae, engine.layout)
        if sweep:
            out["sweep"] = unit_size_sweep(name, preset, generator, ae, mid)
    return out


def _block_seconds(engine: Engine) -> float:
    return engine.layout.unit_samples(engine.preset) / engine.sample_rate


def _length(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["musika44", "paper22"])
    parser.add_argument("--lengths", nargs="+", type=float, default=[12.0, 60.0, 600.0],
                        help="piece lengths in seconds")
    parser.add_argument("--no-sweep", action="store_true", help="skip the decode-unit size sweep")
    parser.add_argument("--no-doc", action="store_true", help="print only; leave docs/ alone")
    args = parser.parse_args(argv)

    info = machine()
    started = time.perf_counter()
    results = {name: bench_preset(name, args.lengths, sweep=not args.no_sweep and i == 0)
               for i, name in enumerate(args.presets)}
    info["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    gather = lambda key: [row for r in results.values() for row in r[key]]
    profile = [[name, p["stage"], f"{p['call_ms']:.1f}", f"{p['ms_per_s']:.1f}", p["share"]]
               for name, r in results.items() for p in r["profile"]]
    text = "\n\n".join([
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['ram_gb']} GB RAM; {info['versions']}. "
        f"Load average (1/5/15 min) {info['load']} at start, {info['load_after']} at the end "
        f"(other jobs share this machine). Run took {(time.perf_counter() - started) / 60:.1f} min. "
        "Random weights, float32, blocks streamed and dropped (as when written to a file).",
        "### Real-time factor and memory\n\n" + table(
            ["preset", "XLA", "piece", "wall s", "RTF (audio s / wall s)", "CPU s",
             "audio s / CPU s", "peak RSS above start, MB"], gather("pieces")),
        "### Time to first audio block (streaming)\n\n" + table(
            ["preset", "XLA", "cold s (new engine, incl. tracing)", "warm s (new stream)",
             "block length s"], gather("first")),
        "### Where the time goes (per decode unit, no XLA)\n\n" + table(
            ["preset", "stage", "ms per call", "ms per second of audio", "share"], profile),
        "### Before / after\n\n" + table(
            ["preset", "path", "piece", "wall s", "RTF", "audio s / CPU s", "peak RSS above start, MB"],
            gather("before_after")),
    ] + (["### Decode-unit size (`BlockLayout.decode_chunks`, no XLA)\n\n" + table(
        ["preset", "chunks per channel", "block s", "RTF", "audio s / CPU s", "warm first block s"],
        gather("sweep"))] if gather("sweep") else []))
    print(text)
    if not args.no_doc:
        write_between(DOC, BEGIN, END, text)
        print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
