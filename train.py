"""Train musika-tf on the embedded data sets or your own audio.

  python train.py --stage gan --data maestro          # trains any missing AE stage first
  python train.py --stage ae1 --data path/to/audio --run mymodel --preset tiny --steps 500

Stages: ae1 (autoencoder level 1: phase 1 L1, then phase 2 adversarial through the iSTFT), ae2
(level 2 on level-1 latents), gan (latent GAN; encodes the data with the run's autoencoder first,
cached), decoders (optional: DEC2 and DEC fine-tuned end to end on frozen encoders, so GANs trained
on the autoencoder keep working; use with --ae-from or after ae2). Everything of one model lives in
runs/RUN/; training resumes from the last checkpoint. Every preset field has a flag (see below); a
run keeps the architecture it was created with.
"""

import argparse
import os
import sys

from musika_tf import config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", required=True, choices=("ae1", "ae2", "gan", "decoders"),
                        help="what to train (earlier missing stages are trained first for gan; "
                             "decoders fine-tunes a trained autoencoder's decoders)")
    parser.add_argument("--data", default="maestro",
                        help="maestro or techno (embedded sets, built on first use), a MAESTRO root, "
                             "or any folder of audio files (default: maestro)")
    parser.add_argument("--run", default="default",
                        help="run name (folder runs/RUN) or a path to a run folder (default: default)")
    parser.add_argument("--no-resume", action="store_true",
                        help="start the stage from scratch instead of its last checkpoint")
    parser.add_argument("--init-from", default=None,
                        help="gan only: fine-tune from another GAN run folder or an exported model "
                             "folder such as checkpoints/piano (weights only; fresh optimisers with --lr)")
    parser.add_argument("--ae-from", default=None,
                        help="gan or decoders: use the trained autoencoder of another run folder or of a model "
                             "folder (checkpoints/piano, or an original checkpoint brought in with "
                             "import-reference) instead of training one; the run takes its audio and "
                             "autoencoder settings")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    config.add_preset_arguments(parser)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from musika_tf.training.run import run_folder, train

    if args.steps is not None and args.stage != "gan":  # --steps counts the stage being trained
        setattr(args, f"{args.stage}_steps", args.steps)
        args.steps = None
    run_dir = run_folder(args.run)
    saved = config.load_preset(run_dir) if os.path.exists(os.path.join(run_dir, "preset.json")) else None
    preset = config.preset_from_args(args, saved)
    try:
        results = train(args.stage, preset, args.data, run_dir,
                        resume=not args.no_resume, progress=not args.quiet,
                        init_from=args.init_from, lr=args.lr, ae_from=args.ae_from)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for stage, logs in results.items():
        print(f"{stage}: {logs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
