"""Train musika-tf: `python train.py --stage ae1|ae2|gan --data maestro|techno|PATH`."""

import argparse
import sys

from musika_tf import config
from musika_tf.faces import not_available


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stage", required=True, choices=("ae1", "ae2", "gan"),
                        help="ae1: first-level autoencoder; ae2: second level; gan: latent GAN")
    parser.add_argument("--data", default="maestro",
                        help="maestro, techno (embedded sets) or a folder of audio (default maestro)")
    config.add_preset_arguments(parser)
    args = parser.parse_args(argv)
    return not_available(f"training stage '{args.stage}'")


if __name__ == "__main__":
    sys.exit(main())
