"""Generate stereo music with an exported musika-tf model.

    python generate.py --model checkpoints/NAME --seconds 120 --num-samples 4 --seed 7 \\
        --truncation 2.0 [--density 0.6 | --tempo 128] --out generations/ --format wav

    python generate.py --model checkpoints/NAME --stream --out live.wav [--seconds 600]
    python generate.py --model checkpoints/NAME --stream --out - | aplay -f FLOAT_LE -c 2 -r 22050

Sample i uses seed SEED+i; files are written block by block as OUT/NAME_seed{SEED+i}.{wav,flac}.
--stream writes the endless stream of one seed block by block until interrupted (Ctrl-C, SIGINT or
SIGTERM close the file with a valid header) or until --seconds: to a .wav/.flac file, a folder
(OUT/NAME_seed{SEED}_stream.{format}), or `-`: stdout, raw interleaved stereo float32 little-endian
samples at the model's rate (no header, so it can be piped into a player as it comes).
A model folder is made by `python -m musika_tf export RUN checkpoints/NAME` (or `import-reference`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True,
                        help="exported model folder (saved_model.pb, variables/, preset.json, "
                             "model_card.json), e.g. checkpoints/NAME")
    parser.add_argument("--seconds", type=_positive(float), default=None,
                        help="length of each piece in seconds; any positive length, cut exactly "
                             "(default 120; with --stream: until interrupted)")
    parser.add_argument("--num-samples", type=_positive(int), default=1,
                        help="number of pieces to generate (default 1)")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed of the first piece; piece i uses SEED+i; the same seed "
                             "gives the same audio (default 0)")
    parser.add_argument("--truncation", type=_positive(float), default=2.0,
                        help="truncation bound of the latent coordinates: lower = steadier, "
                             "higher = more varied (reference UI range 0.1-3.9, default 2.0)")
    cond = parser.add_mutually_exclusive_group()
    cond.add_argument("--density", type=float, default=None,
                      help="note density in onsets per second, e.g. 0.6 (sparse) to 10 (dense); "
                           "only for models trained with density conditioning (default for those: "
                           "the middle of the range, about 3 onsets/s)")
    cond.add_argument("--tempo", type=float, default=None,
                      help="tempo in BPM (60-200); only for models trained with tempo "
                           "conditioning (default for those: 130 BPM, the middle of the range)")
    parser.add_argument("--out", default="generations",
                        help="output folder, created if missing (default generations/); with "
                             "--stream also a .wav/.flac file or - (stdout, raw float32)")
    parser.add_argument("--stream", action="store_true",
                        help="write the endless stream of --seed until interrupted (or --seconds)")
    parser.add_argument("--format", choices=("wav", "flac"), default="wav",
                        help="wav (32-bit float) or flac (24-bit) (default wav)")
    parser.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                        help="compute precision: float32 (default, bit-exact with the SavedModel) or "
                             "bfloat16 (faster on CPUs with AVX512_BF16 / AMX and on GPUs; "
                             "elsewhere a warning and float32)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def run(args: argparse.Namespace) -> list[str]:
    """Generate the pieces; returns the written paths."""
    from tqdm import tqdm

    from musika_tf.inference import num_samples

    engine, condition = _load(args)
    name = os.path.basename(os.path.normpath(args.model))
    rate = engine.sample_rate
    seconds = args.seconds or 120.0
    total = num_samples(engine.preset, seconds) * args.num_samples / rate
    paths = []
    # unit: seconds of audio, so the displayed rate is the real-time factor
    with tqdm(total=round(total, 2), unit="s", disable=args.quiet, desc="generating",
              bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s audio [{elapsed}<{remaining}, "
                         "{rate_fmt}]") as bar:
        for i in range(args.num_samples):
            seed = args.seed + i
            path = os.path.join(args.out, f"{name}_seed{seed}.{args.format}")
            paths.append(engine.generate_to_file(path, seconds, seed, args.truncation,
                                                 condition, progress=lambda n: bar.update(n / rate)))
    return paths


def _load(args: argparse.Namespace):
    """(engine, condition) for the arguments."""
    from musika_tf.conditioning import condition_from_user
    from musika_tf.config import load_preset
    from musika_tf.export import check_folder

    check_folder(args.model)
    condition = condition_from_user(load_preset(args.model).gan.cond, args.density, args.tempo,
                                    warn=lambda text: print(text, file=sys.stderr))
    from musika_tf.inference import Engine

    return Engine.load(args.model, args.precision), condition


def stream_path(args: argparse.Namespace) -> str:
    """Where --stream writes: `--out` itself when it is - or names an audio file, else a file in
    the folder `--out`."""
    if args.out == "-" or os.path.splitext(args.out)[1].lower() in (".wav", ".flac"):
        return args.out
    name = os.path.basename(os.path.normpath(args.model))
    return os.path.join(args.out, f"{name}_seed{args.seed}_stream.{args.format}")


@contextlib.contextmanager
def _sink(path: str, rate: int):
    """A function writing float32 blocks ``[n, 2]`` to `path` (or raw to stdout for -); the file is
    closed, its header complete, however the block leaves."""
    if path == "-":
        out = sys.stdout.buffer

        def write(block):
            out.write(block.astype("<f4").tobytes())
            out.flush()

        yield write
        return
    import soundfile as sf

    from musika_tf.inference import FILE_SUBTYPES

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    subtype = FILE_SUBTYPES.get(os.path.splitext(path)[1].lower())
    with sf.SoundFile(path, "w", rate, 2, subtype=subtype) as fh:
        def write(block):
            fh.write(block)
            fh.flush()

        yield write


class _StopRequest:
    """SIGINT/SIGTERM handler for the stream: the first signal asks the loop to stop after the
    block being made (checked between blocks, so the exception cannot land inside a library call
    that swallows it); a second one stops at once (KeyboardInterrupt)."""

    def __init__(self):
        self.requested = False

    def __call__(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True


def stream(args: argparse.Namespace) -> tuple[str, int, int]:
    """Write the endless stream of `args.seed` until interrupted or `args.seconds`; returns (path,
    samples written, sample rate). SIGINT (Ctrl-C) and SIGTERM stop it: the block being made is
    dropped and the file closed with a valid header."""
    from musika_tf.inference import num_samples

    path = stream_path(args)
    engine, condition = _load(args)
    audio = engine.stream(args.seed, args.truncation, condition)
    if args.seconds:
        audio = audio.read(num_samples(engine.preset, args.seconds))
    stop = _StopRequest()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    written = 0
    try:
        with _sink(path, engine.sample_rate) as write:
            if not args.quiet:
                print(f"streaming to {'stdout' if path == '-' else path}; Ctrl-C stops",
                      file=sys.stderr)
            try:
                for block in audio:
                    if stop.requested:
                        break
                    write(block)
                    written += len(block)
            except (KeyboardInterrupt, BrokenPipeError):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return path, written, engine.sample_rate


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.stream:
            path, written, rate = stream(args)
            if not args.quiet:
                print(f"{written / rate:.1f} s written ({written} samples)", file=sys.stderr)
            if path != "-":
                print(path)
            return 0
        paths = run(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
