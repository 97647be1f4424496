"""Gradio app for generating music with an exported musika-tf model: `python app.py`."""

import argparse
import sys

from musika_tf.faces import not_available


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None, help="exported model folder under checkpoints/")
    parser.parse_args(argv)
    return not_available("the Gradio app")


if __name__ == "__main__":
    sys.exit(main())
