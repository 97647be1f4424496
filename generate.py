"""Generate music with a trained musika-tf model: `python generate.py --model checkpoints/NAME`."""

import argparse
import sys

from musika_tf.faces import not_available


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="exported model folder under checkpoints/")
    parser.add_argument("--seconds", type=float, default=120.0, help="length of each piece in seconds")
    parser.parse_args(argv)
    return not_available("generation")


if __name__ == "__main__":
    sys.exit(main())
