"""Scaling study: which widths buy the most quality per CPU minute (docs/TRAINING.md).

Every configuration trains for the same CPU time (one thread, measured from the training process,
not from the wall clock) in chunks; after each chunk its checkpoint is scored:

    gan  GAN base widths on one fixed autoencoder (`--ae-from`), scored by FAD-infinity (MusiCNN)
         of 12-s generated pieces against held-out excerpts, and by the note-density Spearman
         correlation over a 5-point density grid (density models);
    ae   level-1 autoencoder widths (ENC / DEC scaled by a factor of the preset's), phase 1 only,
         scored by the level-1 reconstruction distances of held-out excerpts of every data set.

    python scripts/scaling_study.py gan --widths 16 32 64 --cpu-minutes 15 --eval-every 5
    python scripts/scaling_study.py ae --widths 0.5 1 2 --cpu-minutes 10 --eval-every 5
    python scripts/scaling_study.py plot --png docs/images/scaling.png

Results accumulate in OUT/results.jsonl (one line per scored checkpoint), so a stopped study
resumes where it was: configurations and chunks already scored are not trained again.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

FIRST_CHUNK_STEPS = {"gan": 400, "ae": 200}  # steps of the first chunk, which measures the speed
NO_SAVES = "1000000000"  # --save-every: only the end of each chunk is saved (no previews between)
DENSITY_GRID = (1.5, 2.5, 3.5, 4.5, 5.5)  # onsets/s, inside the embedded piano set's range


def child_cpu_seconds() -> float:
    """User + system CPU seconds of all finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_training(args: list[str]) -> float:
    """Run ``train.py ARGS`` on one thread; return its CPU seconds (raises when it fails)."""
    env = dict(os.environ, TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
    before = child_cpu_seconds()
    subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), *args, "--quiet"],
                   check=True, env=env)
    return child_cpu_seconds() - before


def read_results(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def append_result(path: str, row: dict) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(row) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


# ---------------------------------------------------------------------------------------------
# What is trained


def gan_command(opts, width: str, run: str, steps: int) -> list[str]:
    return ["--stage", "gan", "--preset", opts.preset, "--data", opts.data, "--run", run,
            "--ae-from", opts.ae_from, "--base-channels", width, "--steps", str(steps),
            "--save-every", NO_SAVES, "--seed", "0"]


def share_latent_store(opts, run: str) -> None:
    """Copy the latent store of the study's first GAN run into `run` (same autoencoder and data,
    so the same latents; the fingerprint check in training still re-encodes if they differ)."""
    import shutil

    first = os.path.join(opts.out, f"gan-{opts.widths[0]}", "latents")
    target = os.path.join(run, "latents")
    if os.path.isdir(first) and not os.path.exists(target):
        shutil.copytree(first, target)


def ae_widths(preset_name: str, factor: float) -> tuple[list[str], list[str]]:
    """ENC / DEC widths of the preset scaled by `factor` (multiples of 8)."""
    from musika_tf.config import get_preset

    ae = get_preset(preset_name).ae
    scale = lambda widths: [str(max(8, int(round(w * factor / 8)) * 8)) for w in widths]  # noqa: E731
    return scale(ae.enc_widths), scale(ae.dec_widths)


def ae_command(opts, width: str, run: str, steps: int) -> list[str]:
    enc, dec = ae_widths(opts.preset, float(width))
    return ["--stage", "ae1", "--preset", opts.preset, "--data", opts.data, "--run", run,
            "--enc-widths", *enc, "--dec-widths", *dec, "--ae1-steps", str(steps),
            "--phase1-steps", str(steps), "--save-every", NO_SAVES, "--seed", "0"]


# ---------------------------------------------------------------------------------------------
# How it is scored


class GanScorer:
    """FAD-infinity and density control of a GAN run's latest checkpoint."""

    def __init__(self, opts):
        from musika_tf.evaluation import harness
        from musika_tf.evaluation.musicnn import MusicnnEmbedder

        self.opts = opts
        self.embedder = MusicnnEmbedder()
        self.settings = harness.Settings(samples=opts.samples, seconds=opts.seconds)
        self.autoencoder = None
        self.reference = None

    def __call__(self, run: str) -> dict:
        from musika_tf import conditioning
        from musika_tf.config import load_preset
        from musika_tf.evaluation import control, fad, harness
        from musika_tf.inference import Engine
        from musika_tf.training.ae import load_autoencoder
        from musika_tf.training.export_run import restore_gan

        preset = load_preset(os.path.join(run, "gan"))
        models, _, step = restore_gan(preset, os.path.join(run, "gan"))
        if self.autoencoder is None:
            self.autoencoder = load_autoencoder(preset, self.opts.ae_from)
            reference, _, _ = harness.real_sets(self.opts.data, preset.audio.sample_rate, self.settings)
            self.reference = np.concatenate([self.embedder.embed(x.audio, preset.audio.sample_rate)
                                             for x in reference])
        engine = Engine.from_models(preset, models["gen_ema"], self.autoencoder)
        rate = engine.sample_rate
        cond = preset.gan.cond
        row = {"step": step}
        values = DENSITY_GRID if cond == "density" else [None]
        pieces, requested = [], []
        for i in range(self.settings.samples):
            value = values[i % len(values)]
            condition = None if value is None else float(conditioning.normalise_condition(cond, value))
            pieces.append(engine.generate(self.settings.seconds, seed=i, condition=condition))
            requested.append(value)
        generated = np.concatenate([self.embedder.embed(p, rate) for p in pieces])
        row["fad_inf"] = fad.fad_infinity(generated, self.reference, seed=0).to_dict()
        if cond == "density":
            measured = [control.onset_rate(p, rate) for p in pieces]
            row["density"] = control.density_control(np.array(requested), np.array(measured))
        return row


class AeScorer:
    """Level-1 reconstruction distances of held-out excerpts (every data set of `--data`)."""

    def __init__(self, opts):
        from musika_tf.config import get_preset
        from musika_tf.data import datasets
        from musika_tf.evaluation import harness

        rate = get_preset(opts.preset).audio.sample_rate
        settings = harness.Settings(seconds=opts.seconds, max_reference=opts.samples)
        self.excerpts = []
        for name in opts.data.split("+"):
            datasets.read_dataset(name)
            reference, _, _ = harness.real_sets(name, rate, settings)
            self.excerpts += [x.audio for x in reference[: opts.samples]]

    def __call__(self, run: str) -> dict:
        from musika_tf.config import load_preset
        from musika_tf.evaluation.reconstruction import distances, reconstruct_level1
        from musika_tf.training.ae import load_trained_autoencoder, stage_dirs
        import tensorflow as tf

        preset = load_preset(run)
        ae = load_trained_autoencoder(preset, run)
        step = int(tf.train.latest_checkpoint(
            os.path.join(stage_dirs(run)["ae1_phase1"], "ckpt")).rsplit("-", 1)[1])
        rows = [distances(x, reconstruct_level1(ae, x)) for x in self.excerpts]
        row = {"step": step, "parameters": int(ae.encoder.count_params() + ae.decoder.count_params())}
        row.update({k: float(np.mean([r[k] for r in rows])) for k in rows[0]})
        return row


# ---------------------------------------------------------------------------------------------
# The study


def study(opts) -> None:
    os.makedirs(opts.out, exist_ok=True)
    results_path = os.path.join(opts.out, "results.jsonl")
    command = gan_command if opts.kind == "gan" else ae_command
    scorer = (GanScorer if opts.kind == "gan" else AeScorer)(opts)
    budget = opts.cpu_minutes * 60.0
    for width in opts.widths:
        run = os.path.join(opts.out, f"{opts.kind}-{width}")
        done = [r for r in read_results(results_path) if r["kind"] == opts.kind and r["width"] == width]
        cpu = done[-1]["cpu_seconds"] if done else 0.0
        step = done[-1]["step"] if done else 0
        if opts.kind == "gan" and not done:  # encode the data once per study; not counted
            share_latent_store(opts, run)
            setup = run_training(command(opts, width, run, 0))
            print(f"{opts.kind} {width}: setup (latent store) {setup:.0f} CPU s, not counted", flush=True)
        while cpu < budget - 1.0:
            rate = step / cpu if cpu > 0 else None
            chunk = opts.eval_every * 60.0
            target = (step + int(rate * min(chunk, budget - cpu)) if rate
                      else FIRST_CHUNK_STEPS[opts.kind])
            if target <= step:
                break
            cpu += run_training(command(opts, width, run, target))
            row = {"kind": opts.kind, "width": width, "cpu_seconds": cpu, **scorer(run)}
            step = row["step"]
            append_result(results_path, row)
            print(json.dumps(row), flush=True)


def plot(opts) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_results(os.path.join(opts.out, "results.jsonl"))
    panels = [("gan", "FAD-inf (lower is better)", lambda r: r["fad_inf"]["value"]),
              ("gan", "density Spearman (higher is better)", lambda r: r.get("density", {}).get("spearman")),
              ("ae", "level-1 multi-scale spectral distance", lambda r: r["multiscale_spectral_distance"]),
              ("ae", "level-1 log-spectral distance (dB)", lambda r: r["log_spectral_distance_db"])]
    panels = [p for p in panels if any(r["kind"] == p[0] for r in rows)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (kind, title, value) in zip(axes[0], panels):
        for width in dict.fromkeys(r["width"] for r in rows if r["kind"] == kind):
            mine = [r for r in rows if r["kind"] == kind and r["width"] == width and value(r) is not None]
            label = f"base {width}" if kind == "gan" else f"widths x{width}"
            ax.plot([r["cpu_seconds"] / 60 for r in mine], [value(r) for r in mine], "o-", label=label)
        ax.set_title(f"{kind.upper()}: {title}", fontsize=9)
        ax.set_xlabel("CPU minutes (one thread)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(opts.png)), exist_ok=True)
    fig.savefig(opts.png, dpi=110)
    print(f"wrote {opts.png}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=("gan", "ae", "plot"), help="what to study, or plot the results")
    parser.add_argument("--widths", nargs="+", default=None,
                        help="gan: base channels (default 16 32 64); ae: factors of the preset's "
                             "ENC/DEC widths (default 0.5 1 2)")
    parser.add_argument("--cpu-minutes", type=float, default=15.0, help="CPU budget per width")
    parser.add_argument("--eval-every", type=float, default=5.0, help="CPU minutes between scores")
    parser.add_argument("--preset", default="piano-cpu", help="preset the widths are varied in")
    parser.add_argument("--data", default=None,
                        help="data set (default: maestro for gan, maestro+techno for ae)")
    parser.add_argument("--ae-from", default="checkpoints/piano", help="gan: the fixed autoencoder")
    parser.add_argument("--samples", type=int, default=20, help="pieces / excerpts scored per checkpoint")
    parser.add_argument("--seconds", type=float, default=12.0, help="length of each scored piece")
    parser.add_argument("--out", default=os.path.join("runs", "scaling"), help="study folder")
    parser.add_argument("--png", default=os.path.join("docs", "images", "scaling.png"), help="plot: output")
    opts = parser.parse_args(argv)
    if opts.kind == "plot":
        return plot(opts)
    opts.widths = opts.widths or (["16", "32", "64"] if opts.kind == "gan" else ["0.5", "1", "2"])
    opts.data = opts.data or ("maestro" if opts.kind == "gan" else "maestro+techno")
    study(opts)


if __name__ == "__main__":
    main()
