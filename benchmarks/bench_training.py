"""Seconds per training step of every stage on this machine (CPU, float32), with parameter counts.

Builds each trainer on synthetic data (a few seconds of tones for the autoencoder stages, random
latents for the GAN), runs 2 warm-up steps (tracing) and times the next N steps of the compiled step.
Appends a table to docs/PERFORMANCE.md (section "Training step time").

    python benchmarks/bench_training.py [--steps 5] [--presets tiny:32 musika44:8 ...]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import musika_tf  # noqa: E402,F401  before TensorFlow: oneDNN kernels on, as for users

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import tensorflow as tf  # noqa: E402

from musika_tf import config  # noqa: E402
from musika_tf.data import datasets  # noqa: E402
from musika_tf.data.audio_cache import build_audio_cache  # noqa: E402
from musika_tf.data.latents import LatentWriter  # noqa: E402
from musika_tf.training import ae as ae_stages  # noqa: E402
from musika_tf.training.gan import GANTrainer  # noqa: E402

SECTION = "## Training step time (CPU)"


def time_steps(trainer, steps: int) -> float:
    """Mean wall seconds of one compiled training step after two warm-up steps."""
    step = tf.function(trainer.train_step)
    batches = trainer.batches()
    for _ in range(2):
        step(next(batches))
    started = time.perf_counter()
    for _ in range(steps):
        logs = step(next(batches))
    float(logs["finite"])  # wait for the last step
    return (time.perf_counter() - started) / steps


def params(*models) -> int:
    return sum(m.count_params() for m in models)


def audio_files(preset, root: str):
    rate = preset.audio.sample_rate
    t = np.arange(int(12 * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 1.3 * t))
    path = os.path.join(root, f"tone_{rate}.wav")
    sf.write(path, np.stack([wave, 0.8 * wave], 1), rate)
    return build_audio_cache(datasets.read_folder(root), os.path.join(root, "cache"), rate,
                             progress=False)


def latent_store(preset, root: str) -> str:
    folder = os.path.join(root, f"latents_{preset.name}")
    writer = LatentWriter(folder, "chunks", "bench", preset.to_dict())
    rng = np.random.default_rng(0)
    for _ in range(4):
        writer.add(rng.uniform(-1, 1, (preset.gan.max_lat_len, preset.stereo_latent_dim)), "random")
    return writer.close()


def bench_preset(name: str, batch: int, steps: int, root: str) -> list[tuple]:
    preset = config.get_preset(name, batch_size=batch, mixed_precision="off")
    files = audio_files(preset, root)
    rows = []
    stages = [("ae1 phase 1", ae_stages.AE1Phase1Trainer, lambda t: params(t.ae.encoder, t.ae.decoder)),
              ("ae1 phase 2", ae_stages.AE1Phase2Trainer, lambda t: params(t.ae.decoder, t.critic)),
              ("ae2", ae_stages.AE2Trainer, lambda t: params(t.ae.encoder2, t.ae.decoder2, t.critic))]
    for label, cls, count in stages:
        trainer = cls(preset, os.path.join(root, name, label), files)
        rows.append((name, label, batch, count(trainer), time_steps(trainer, steps)))
        print(rows[-1], flush=True)
    trainer = GANTrainer(preset, os.path.join(root, name, "gan"), latent_store(preset, root))
    models = [trainer.generator, trainer.critic] + ([trainer.critic_rec] if trainer.critic_rec else [])
    rows.append((name, "gan", batch, params(*models), time_steps(trainer, steps)))
    print(rows[-1], flush=True)
    return rows


def write_doc(rows: list[tuple], path: str, steps: int) -> None:
    lines = [SECTION, "",
             f"`python benchmarks/bench_training.py`: mean of {steps} compiled steps after 2 warm-up "
             f"steps, float32, synthetic data; {platform.machine()}, {os.cpu_count()} cores, "
             f"TensorFlow {tf.__version__}. Parameters = trained networks of the stage (critic "
             "included). A GPU with mixed precision is the intended place for real training.", "",
             "| preset | stage | batch | parameters | s / step | steps / hour |", "|---|---|---|---|---|---|"]
    for name, stage, batch, count, seconds in rows:
        lines.append(f"| {name} | {stage} | {batch} | {count:,} | {seconds:.3f} | {3600 / seconds:,.0f} |")
    text = open(path).read() if os.path.exists(path) else "# Performance\n"
    section = "\n".join(lines) + "\n"
    if SECTION in text:  # replace this section only, up to the next "## " heading
        start = text.index(SECTION)
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section + ("" if end < 0 else "\n" + text[end + 1:])
    else:
        text = text.rstrip() + "\n\n" + section
    with open(path, "w") as fh:
        fh.write(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per stage")
    parser.add_argument("--presets", nargs="+",
                        default=["tiny:32", "musika44:8", "musika44:32", "paper22:8"],
                        help="NAME:BATCH pairs (default tiny:32 musika44:8 musika44:32 paper22:8)")
    parser.add_argument("--doc", default=os.path.join("docs", "PERFORMANCE.md"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as root:
        for spec in args.presets:
            name, batch = spec.split(":")
            rows += bench_preset(name, int(batch), args.steps, root)
    write_doc(rows, args.doc, args.steps)
    for row in rows:
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
