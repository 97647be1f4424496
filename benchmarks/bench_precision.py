"""bfloat16 against float32 generation for one exported model: speed and how far the audio moves.

    python benchmarks/bench_precision.py checkpoints/techno [--seconds 60] [--seed 0]

Both engines generate the same piece (seed, middle condition). Reported: real-time factor of each
(after one warm-up piece), the speed-up, waveform SNR of bfloat16 against float32 (dB) and the
log-spectral distance between them (dB, `musika_tf.losses.log_spectral_distance`, as in the
evaluation's reconstruction section). On a machine without native bfloat16 (`bfloat16_supported`) it says so and stops.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from musika_tf import losses  # noqa: E402
from musika_tf.inference import Engine, bfloat16_supported  # noqa: E402

FFT_SIZES = (2048, 1024, 512, 256, 128, 64)


def timed_piece(engine: Engine, seconds: float, seed: int, condition) -> tuple[np.ndarray, float]:
    """The piece and its real-time factor (audio seconds per wall second), after a warm-up."""
    engine.generate(min(seconds, 5.0), seed=seed + 1, condition=condition)
    start = time.perf_counter()
    audio = engine.generate(seconds, seed=seed, condition=condition)
    return audio, seconds / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="exported model folder (with weights/)")
    parser.add_argument("--seconds", type=float, default=60.0, help="piece length (default 60)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the piece (default 0)")
    args = parser.parse_args(argv)
    if not bfloat16_supported():
        print("this machine has no native bfloat16 (no GPU, no AVX512_BF16 / AMX-BF16): nothing to "
              "compare")
        return 1
    full = Engine.load(args.model)
    condition = None if full.preset.gan.cond == "none" else 0.5
    reference, rtf32 = timed_piece(full, args.seconds, args.seed, condition)
    half, rtf16 = timed_piece(Engine.load(args.model, "bfloat16"), args.seconds, args.seed, condition)
    snr = 10 * np.log10(np.sum(reference ** 2) / max(np.sum((half - reference) ** 2), 1e-30))
    mono = lambda a: np.ascontiguousarray(a.mean(axis=1))[None]
    lsd = float(losses.log_spectral_distance(mono(reference), mono(half), FFT_SIZES))
    print("| model | seconds | float32 x RT | bfloat16 x RT | speed-up | SNR dB | LSD dB |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {Path(args.model).name} | {args.seconds:g} | {rtf32:.1f} | {rtf16:.1f} | "
          f"{rtf16 / rtf32:.2f} | {snr:.1f} | {lsd:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
