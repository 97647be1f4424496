"""`python -m musika_tf VERB`: argument parsing only; every verb calls one library function."""

from __future__ import annotations

import argparse
import json
import sys

from . import config


def _build_data(args: argparse.Namespace) -> None:
    import os

    from .data import datasets

    root = args.out or os.path.join(datasets.data_root(), args.name)
    summary = datasets.build_embedded(args.name, root, minutes=args.minutes, seed=args.seed)
    print(summary)


def _demo(args: argparse.Namespace) -> None:
    from .demo import play_shipped, run_demo

    if not args.pipeline:
        if not play_shipped(args.out or "generations", seed=args.seed):
            raise FileNotFoundError("no shipped model under checkpoints/ (piano, techno); run "
                                    "`make pipeline` to train a tiny one end to end instead")
        return
    run_demo(config.preset_from_args(args), out_dir=args.out or "demo_out", minutes=args.minutes,
             seed=args.seed, train=not args.no_train)


def _load_run_autoencoder(run: str):
    from .training.ae import autoencoder_source, load_autoencoder
    from .training.run import run_folder

    run_dir = run_folder(run)
    return load_autoencoder(config.load_preset(run_dir), autoencoder_source(run_dir))


def _encode(args: argparse.Namespace) -> None:
    from .data.datasets import read_dataset
    from .encoding import encode_dataset

    ae = _load_run_autoencoder(args.run)
    summary = encode_dataset(ae, read_dataset(args.audio, build_missing=False), args.out, args.mode,
                             progress=not args.quiet)
    print(f"{args.out}: {summary.line()}")


def _decode(args: argparse.Namespace) -> None:
    from .encoding import decode_store

    ae = _load_run_autoencoder(args.run)
    written = decode_store(ae, args.latents, args.out, seed=args.seed, progress=not args.quiet)
    print(f"wrote {len(written)} files to {args.out}")


def _show_preset(args: argparse.Namespace) -> None:
    print(json.dumps(config.preset_from_args(args).to_dict(), indent=2))


# --- model export (musika_tf.export) ----------------------------------------------------------


def _export(args: argparse.Namespace) -> None:
    from .export import has_weights
    from .training.export_run import export_from_model, export_from_run
    from .training.run import run_folder

    run_dir = run_folder(args.checkpoint)
    card = {key: value for key, value in (("data", args.data), ("notes", args.notes)) if value}
    for entry in args.card or []:
        key, sep, value = entry.partition("=")
        if not sep or not key:
            raise ValueError(f"--card {entry!r}: expected KEY=VALUE (VALUE may be JSON)")
        try:
            card[key] = json.loads(value)
        except json.JSONDecodeError:
            card[key] = value
    export = export_from_model if has_weights(run_dir, "gen_ema") else export_from_run
    try:
        out = export(run_dir, args.out, args.autoencoder, card, args.overwrite,
                     args.decode_context)
    except FileExistsError as error:
        raise ValueError(f"{error} (or pass --overwrite)") from None
    print(f"exported {out}")


def _add_export_verb(verbs) -> None:
    p = verbs.add_parser("export", help="GAN training run (or a model folder) -> model folder "
                         "(SavedModel, preset, card)")
    p.add_argument("checkpoint", help="run name or folder (runs/NAME, or its gan/ folder): the latest "
                   "checkpoint's EMA generator is exported; or a model folder (checkpoints/NAME): "
                   "re-exported in the current format, keeping its card's training fields")
    p.add_argument("out", help="destination model folder, e.g. checkpoints/NAME")
    p.add_argument("--autoencoder", default=None,
                   help="run or model folder holding the autoencoder, e.g. a run whose decoders "
                        "were fine-tuned with `train.py --stage decoders` (default: the GAN run's "
                        "own, or the model folder's)")
    p.add_argument("--data", default=None,
                   help="training data for the model card (default: the run's latent store names)")
    p.add_argument("--notes", default=None, help="free text for the model card")
    p.add_argument("--card", action="append", metavar="KEY=VALUE",
                   help="extra model-card field, repeatable; VALUE is parsed as JSON when it is "
                        "(e.g. --card 'cpu_hours={\"gan\": 0.5}' --card hardware='2-core CPU')")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT folder")
    p.add_argument("--decode-context", type=int, default=None, metavar="LATENTS",
                   help="how the folder's decoders join decode units: 0 = every block of "
                        "chunk_frames/2 frames on its own, as the original (block edges can be "
                        "heard); N > 0 = whole units, each seeing N latents of its neighbours "
                        "(default: the preset's ae.decode_context; 2 in piano-cpu / techno-cpu)")
    p.set_defaults(func=_export)


# --- end of model export -----------------------------------------------------------------------


# --- reference compatibility verbs: original Musika checkpoints (musika_tf.reference*) ---------

_REFERENCE_PRESETS = ("musika44", "paper22")


def _reference_outputs(args: argparse.Namespace) -> None:
    from .reference_outputs import write_reference_outputs

    arrays = write_reference_outputs(args.folder, args.io, args.out, args.preset, args.ae)
    print(f"wrote {len(arrays)} arrays to {args.out}")


def _import_reference(args: argparse.Namespace) -> None:
    from .reference import import_reference

    print(f"exported {import_reference(args.folder, args.preset, args.out, args.ae)}")


def _add_reference_verbs(verbs) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("folder", help="reference checkpoint folder: gen_ema.h5 [gen.h5 "
                        "critic.h5], plus enc/dec/enc2/dec2.h5 unless --ae is given")
    common.add_argument("--preset", default="musika44", choices=_REFERENCE_PRESETS,
                        help="musika44: the 44.1 kHz release; paper22: the 22 kHz paper version")
    common.add_argument("--ae", default=None,
                        help="folder of the four AE files (the original's ae/)")

    p = verbs.add_parser("reference-outputs", parents=[common],
                         help="recompute the reference fixture arrays with our code")
    p.add_argument("io", help="input .npz (frontend_wave, dec_latent_in, gen_in[, critic_in])")
    p.add_argument("out", help="output .npz (the fixture's array names)")
    p.set_defaults(func=_reference_outputs)

    p = verbs.add_parser("import-reference", parents=[common],
                         help="original Musika checkpoint -> our exported model folder")
    p.add_argument("--out", required=True, help="destination model folder, e.g. checkpoints/techno")
    p.set_defaults(func=_import_reference)


# --- end of reference compatibility verbs ------------------------------------------------------


def _evaluate(args: argparse.Namespace) -> None:
    import os

    from .evaluation.harness import Settings, evaluate
    from .evaluation.report import write_report

    settings = Settings(samples=args.samples, seconds=args.seconds, seed=args.seed,
                        bound=args.truncation, grid_repeats=args.grid_repeats,
                        seam_pieces=args.seam_pieces)
    out = args.out or os.path.join("evaluations", os.path.basename(os.path.normpath(args.model)))
    report = evaluate(args.model, args.data, settings)
    paths = write_report(report, out)
    fad = report["fad"]
    print(f"FAD-inf generated {fad['generated']['value']:.3g} +- {fad['generated']['stderr']:.2g} "
          f"(floor {fad['floor_training_real']['value']:.3g}, autoencoder ceiling "
          f"{fad['ceiling_autoencoder']['value']:.3g}); seam ratio {report['seams']['generated']:.3f}; "
          f"{report['speed']['real_time_factor']:.1f}x real time")
    print(f"report: {paths['markdown']}")


def _evaluation_table(args: argparse.Namespace) -> None:
    from .evaluation.report import update_doc_table

    update_doc_table(args.doc, args.reports)
    print(f"{args.doc}: table of {len(args.reports)} model(s) updated")


def _add_evaluate_verb(verbs) -> None:
    from .evaluation.harness import Settings

    p = verbs.add_parser("evaluate", help="quality numbers of an exported model: FAD, condition "
                                          "control, seams, autoencoder, speed -> report.json/.md")
    p.add_argument("--model", required=True, help="exported model folder (e.g. checkpoints/piano)")
    p.add_argument("--data", required=True,
                   help="maestro, techno (embedded sets), a MAESTRO root or any folder of audio: the "
                        "real audio to compare with (its test split where it has one)")
    p.add_argument("--samples", type=int, default=Settings.samples,
                   help=f"generated pieces for the FAD (default {Settings.samples})")
    p.add_argument("--seconds", type=float, default=Settings.seconds,
                   help=f"length of each generated piece and real excerpt (default {Settings.seconds:g})")
    p.add_argument("--seed", type=int, default=Settings.seed, help="first generation seed (default 0)")
    p.add_argument("--truncation", type=float, default=Settings.bound,
                   help="truncation bound of the generator's noise for every generated piece, as "
                        f"generate.py --truncation (default {Settings.bound:g})")
    p.add_argument("--grid-repeats", type=int, default=Settings.grid_repeats,
                   help="generated pieces per requested density or tempo (default "
                        f"{Settings.grid_repeats}); more narrow the condition metrics' uncertainty")
    p.add_argument("--seam-pieces", type=int, default=Settings.seam_pieces,
                   help=f"long pieces (6 joins each) for the seam ratio (default "
                        f"{Settings.seam_pieces}); its standard error falls as 1/sqrt(pieces)")
    p.add_argument("--out", default=None, help="report folder (default evaluations/MODEL_NAME)")
    p.set_defaults(func=_evaluate)

    p = verbs.add_parser("evaluation-table", help="write the summary table of evaluation reports "
                                                  "into a Markdown document (docs/EVALUATION.md)")
    p.add_argument("reports", nargs="+", help="report folders written by evaluate --out")
    p.add_argument("--doc", default="docs/EVALUATION.md",
                   help="document with evaluation-table markers (default docs/EVALUATION.md)")
    p.set_defaults(func=_evaluation_table)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m musika_tf",
                                     description="musika-tf: fast infinite waveform music generation")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = verbs.add_parser("build-data", help="synthesise an embedded data set (no downloads)")
    p.add_argument("name", choices=("maestro", "techno"),
                   help="maestro: piano scores in MAESTRO v3 layout; techno: procedural tracks with tempo")
    p.add_argument("--out", default=None, help="destination folder (default: $MUSIKA_DATA/NAME or data/NAME)")
    p.add_argument("--minutes", type=float, default=None, help="total audio to synthesise (default: demo size)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed -> same data set)")
    p.set_defaults(func=_build_data)

    p = verbs.add_parser("demo", help="play the shipped models (default), or --pipeline: build the "
                                      "embedded data and run the pipeline end to end")
    p.add_argument("--pipeline", action="store_true",
                   help="train a tiny model through every stage instead of playing the shipped ones")
    p.add_argument("--out", default=None,
                   help="output folder (default generations/, with --pipeline demo_out/)")
    p.add_argument("--minutes", type=float, default=None, help="--pipeline: size of each embedded data set")
    p.add_argument("--seed", type=int, default=0, help="generation seed / data-set seed")
    p.add_argument("--no-train", action="store_true",
                   help="--pipeline: only build the data and check the audio front end (no training)")
    config.add_preset_arguments(p, groups=("audio",))
    p.set_defaults(func=_demo)

    p = verbs.add_parser("encode", help="audio folder or data set -> latent store (with metadata)")
    p.add_argument("audio", help="folder of audio files, a MAESTRO root or a techno set root")
    p.add_argument("out", help="destination folder of the latent store")
    p.add_argument("--run", required=True, help="run name or folder whose autoencoder encodes")
    p.add_argument("--mode", choices=("chunks", "whole"), default="chunks",
                   help="chunks: arrays of max_lat_len latents for GAN training; whole: one per file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_encode)

    p = verbs.add_parser("decode", help="latent store (or folder of .npy latents) -> stereo WAVs")
    p.add_argument("latents", help="latent store folder, or a folder of [T, 2*latent_dim] .npy files")
    p.add_argument("out", help="destination folder for the WAV files")
    p.add_argument("--run", required=True, help="run name or folder whose autoencoder decodes")
    p.add_argument("--seed", type=int, default=0, help="seed of the decoders' noise injection")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_decode)

    _add_reference_verbs(verbs)
    _add_export_verb(verbs)
    _add_evaluate_verb(verbs)

    p = verbs.add_parser("preset", help="print a preset (with overrides) as JSON")
    config.add_preset_arguments(p)
    p.set_defaults(func=_show_preset)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (FileNotFoundError, KeyError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
