"""Gradio app: generate stereo music of any length with exported musika-tf models, on a CPU.

  python app.py                          # every model under checkpoints/
  python app.py --model checkpoints/NAME # one model folder
  python app.py --port 7860 --share      # fixed port; public link (needs internet)

Models are folders written by `python -m musika_tf export RUN checkpoints/NAME` or
`python -m musika_tf import-reference`. Requests are queued (one Generate at a time, a few endless
streams beside it); every model is loaded and warmed up in the background while the page opens, the
first one first, so the first Generate or stream of any model starts without tracing its graphs.
"""

import argparse
import os
import sys
import threading


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None,
                        help="one exported model folder (default: all models under --checkpoints)")
    parser.add_argument("--checkpoints", default="checkpoints",
                        help="folder whose sub-folders are exported models (default checkpoints/)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: Gradio's, 7860 or next free)")
    parser.add_argument("--share", action="store_true", help="also create a public Gradio link")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from musika_tf.export import check_folder
    from musika_tf.webapp import Generator, build_ui, find_models

    try:
        if args.model:
            check_folder(args.model)
            models = {os.path.basename(os.path.normpath(args.model)): args.model}
        else:
            models = find_models(args.checkpoints)
        generator = Generator(models)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    threading.Thread(target=lambda: [generator.warm_up(name) for name in models], daemon=True).start()
    build_ui(generator).launch(server_name=args.host, server_port=args.port, share=args.share)
    return 0


if __name__ == "__main__":
    sys.exit(main())
