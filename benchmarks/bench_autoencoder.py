"""Reconstruction quality of a CPU-trained `tiny` autoencoder on held-out embedded piano audio.

Trains (or resumes) both autoencoder levels of the `tiny` preset on the train split of the
embedded piano set for a bounded number of steps, then measures on held-out pieces:

- multi-scale log-spectral distance (dB, FFT sizes 2048..128) and spectral convergence,
- for: level 1 (ENC -> DEC -> iSTFT), both levels (ENC -> ENC2 -> DEC2 -> DEC -> iSTFT),
  baseline (a) the true magnitude with Griffin-Lim phase (librosa, 32 iterations),
  baseline (b) the untrained model (both levels, same architecture),
- and the compression actually achieved (floats per second of stereo audio vs raw samples).

Writes a Markdown table to docs/AUTOENCODER.md. Usage:
    python benchmarks/bench_autoencoder.py [--ae1-steps N] [--ae2-steps N] [--run runs/bench_ae_tiny]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from musika_tf import audio as audio_lib  # noqa: E402
from musika_tf import config, encoding, losses  # noqa: E402
from musika_tf.autoencoder import Autoencoder  # noqa: E402
from musika_tf.data import datasets  # noqa: E402
from musika_tf.training import ae as ae_stages  # noqa: E402
from musika_tf.training.run import train  # noqa: E402

FFT_SIZES = (2048, 1024, 512, 256, 128)


def metrics(reference: np.ndarray, estimate: np.ndarray) -> tuple[float, float]:
    """(log-spectral distance dB, spectral convergence) over both channels."""
    n = min(len(reference), len(estimate))
    ref, est = reference[:n].T, estimate[:n].T  # [2, samples]
    return (float(losses.log_spectral_distance(ref, est, FFT_SIZES)),
            float(losses.spectral_convergence(ref, est, FFT_SIZES)))


def griffin_lim(audio: np.ndarray, preset) -> np.ndarray:
    """True STFT magnitude (the model's analysis STFT) with Griffin-Lim phase, per channel."""
    import librosa

    hop = preset.audio.hop
    out = []
    for channel in audio.T:
        mag = np.abs(librosa.stft(channel, n_fft=4 * hop, hop_length=hop, window="hann"))
        out.append(librosa.griffinlim(mag, n_iter=32, hop_length=hop, n_fft=4 * hop,
                                      window="hann", length=len(channel)))
    return np.stack(out, axis=1).astype(np.float32)


def level1_reconstruction(model: Autoencoder, audio: np.ndarray) -> np.ndarray:
    spec = audio_lib.stereo_log_magnitude(audio, model.preset.audio).numpy()
    magnitude, phase = model.decode_level1(model.encode_level1(spec))
    return np.clip(audio_lib.stereo_istft(magnitude, phase, model.preset.audio).numpy(), -1, 1)


def held_out_excerpts(preset, seconds: float, count: int) -> list[np.ndarray]:
    items = [i for i in datasets.read_dataset("maestro") if i.split != "train"]
    excerpts = []
    for _, audio in datasets.iter_audio(items, preset.audio.sample_rate):
        mid = len(audio) // 2
        half = int(seconds * preset.audio.sample_rate) // 2
        excerpts.append(audio[max(0, mid - half): mid + half])
        if len(excerpts) == count:
            break
    return excerpts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=os.path.join("runs", "bench_ae_tiny"))
    parser.add_argument("--ae1-steps", type=int, default=6000)
    parser.add_argument("--phase1-steps", type=int, default=2000)
    parser.add_argument("--ae2-steps", type=int, default=3000)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--excerpts", type=int, default=4)
    parser.add_argument("--out", default=os.path.join("docs", "AUTOENCODER.md"))
    args = parser.parse_args()

    preset = config.get_preset("tiny", lr=args.lr, ae1_steps=args.ae1_steps,
                               phase1_steps=args.phase1_steps, ae2_steps=args.ae2_steps,
                               save_every=300, log_every=50)
    started = time.perf_counter()
    train("ae1", preset, "maestro", args.run)
    train("ae2", preset, "maestro", args.run)
    train_seconds = time.perf_counter() - started

    trained = ae_stages.load_trained_autoencoder(preset, args.run)
    untrained = Autoencoder.build(preset)
    rows = {"level 1 (ENC-DEC), trained": [], "both levels, trained": [],
            "baseline (a): true magnitude + Griffin-Lim": [], "baseline (b): untrained model": []}
    for audio in held_out_excerpts(preset, 10.0, args.excerpts):
        rows["level 1 (ENC-DEC), trained"].append(metrics(audio, level1_reconstruction(trained, audio)))
        rows["both levels, trained"].append(metrics(audio, encoding.reconstruct(trained, audio)))
        rows["baseline (a): true magnitude + Griffin-Lim"].append(metrics(audio, griffin_lim(audio, preset)))
        rows["baseline (b): untrained model"].append(metrics(audio, encoding.reconstruct(untrained, audio)))

    rate = preset.audio.sample_rate
    floats_per_second = preset.latent_rate * preset.stereo_latent_dim
    raw = 2 * rate
    lines = [
        "# Autoencoder reconstruction (measured)",
        "",
        f"`tiny` preset ({rate} Hz, {preset.samples_per_latent} samples per latent, "
        f"{preset.ae.latent_dim}-d latents per channel), trained on CPU on the train split of the "
        f"embedded piano set: level 1 {args.ae1_steps} steps (phase 1: {args.phase1_steps}), level 2 "
        f"{args.ae2_steps} steps, batch {preset.train.batch_size}, lr {args.lr}; "
        f"{train_seconds / 60:.1f} min of training on this machine ({platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores).",
        "",
        f"Held-out audio: {args.excerpts} excerpts of 10 s from the validation/test pieces. Metrics "
        f"averaged over excerpts and FFT sizes {FFT_SIZES} (hop = size/4): log-spectral distance "
        "(RMS of the dB difference; lower is better) and spectral convergence "
        "(||S - S^||_F / ||S||_F on magnitudes; lower is better).",
        "",
        "| reconstruction | log-spectral distance (dB) | spectral convergence |",
        "|---|---|---|",
    ]
    for name, values in rows.items():
        lsd, sc = np.mean(values, axis=0)
        lines.append(f"| {name} | {lsd:.2f} | {sc:.3f} |")
    lines += [
        "",
        "## Compression",
        "",
        f"- stereo latents: {preset.latent_rate:.2f} vectors/s x {preset.stereo_latent_dim} floats = "
        f"{floats_per_second:.0f} floats per second of stereo audio;",
        f"- raw stereo audio: 2 x {rate} = {raw} samples per second; ratio {raw / floats_per_second:.0f}x "
        f"(= {preset.samples_per_latent} samples per latent / {preset.ae.latent_dim} dims).",
        f"- default presets: musika44 {config.get_preset('musika44').samples_per_latent // 64}x, "
        f"paper22 {config.get_preset('paper22').samples_per_latent // 64}x, "
        f"piano {config.get_preset('piano').samples_per_latent // 32}x.",
        "",
        "Reproduce: `python benchmarks/bench_autoencoder.py` (resumes the run if it exists).",
    ]
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
