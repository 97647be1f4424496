"""Write an evaluation report: ``report.json``, ``report.md`` and its PNGs, into one folder."""

from __future__ import annotations

import json
import os

import numpy as np

from .. import audio as audio_lib
from ..config import load_preset
from ..files import atomic_path

JSON_NAME, MD_NAME = "report.json", "report.md"
SPECTROGRAMS, CONDITION_PLOT = "spectrograms.png", "condition.png"


def _seam_rows(seams_: dict) -> list[str]:
    labels = {"generated": "**generated**", "naive_concatenation": "independent windows concatenated",
              "real_audio": "real audio",
              "autoencoder_reconstruction": "real audio through the model's autoencoder"}
    return [f"| {label} | {_fmt(seams_[name])} | {_fmt(seams_[name + '_stderr'], 2)} |"
            for name, label in labels.items() if name in seams_]  # reports before session 9: 3 rows


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:.0f}"


def _fad_rows(section: dict) -> list[str]:
    rows = ["| set vs held-out real | FAD-inf | +- (fit) | +- (another set of pieces) | "
            "FAD (all samples) |", "|---|---|---|---|---|"]
    labels = {"floor_training_real": "floor: training real", "ceiling_autoencoder":
              "ceiling: AE reconstructions", "generated": "**generated**"}
    for key, label in labels.items():
        r = section[key]
        rows.append(f"| {label} | {_fmt(r['value'])} | {_fmt(r['stderr'], 2)} | "
                    f"{_fmt(r.get('sampling_stderr'), 2)} | {_fmt(r['fad_full'])} |")
    return rows


def _condition_rows(section: dict) -> list[str]:
    rows = []
    density, tempo = section.get("density"), section.get("tempo")
    if isinstance(density, dict):
        rows += ["| note density | value |", "|---|---|",
                 f"| Spearman (requested vs measured onsets/s) | {_fmt(density['spearman'])} |",
                 f"| mean abs error (onsets/s) | {_fmt(density['mae_onsets_per_s'])} |",
                 f"| grid (onsets/s) | {', '.join(_fmt(g) for g in density['grid_onsets_per_s'])} |",
                 f"| measured mean per grid point | "
                 f"{', '.join(_fmt(g) for g in density['measured_mean_per_grid'])} |"]
        independent = density.get("independent")
        if independent:
            rows += [f"| Spearman, independent detector ({independent['detector']}) | "
                     f"{_fmt(independent['spearman'])} |",
                     f"| measured mean per grid point, independent detector (onsets/s) | "
                     f"{', '.join(_fmt(g) for g in independent['measured_mean_per_grid'])} |"]
        ceiling = density.get("autoencoder_ceiling")
        if ceiling:
            rows += [f"| autoencoder ceiling: Spearman of {ceiling['n']} held-out excerpts vs their "
                     f"reconstructions | {_fmt(ceiling['spearman'])} |",
                     f"| autoencoder ceiling: slope (reconstructed / real onsets/s; means "
                     f"{_fmt(ceiling['real_mean'])} -> {_fmt(ceiling['reconstructed_mean'])}) | "
                     f"{_fmt(ceiling['slope'])} |"]
    if isinstance(tempo, dict):
        rows += ["| tempo requests | MAE (BPM) | Accuracy1 | Accuracy2 | n |", "|---|---|---|---|---|"]
        for key in ("inside_training_range", "outside_training_range", "all"):
            r = tempo[key]
            if r:
                rows.append(f"| {key.replace('_', ' ')} | {_fmt(r['mae_bpm'])} | "
                            f"{r['accuracy1']:.0%} | {r['accuracy2']:.0%} | {r['n']} |")
    for name in ("density", "tempo"):
        if isinstance(section.get(name), str):
            rows.append(f"- {name}: {section[name]}")
    return rows


def markdown(report: dict) -> str:
    """The report as Markdown (tables; PNGs referenced by file name)."""
    seams_, ae, speed = report["seams"], report["autoencoder"], report["speed"]
    lines = [f"# Evaluation of {report['name']}", "",
             f"Model `{report['model']}`, data `{report['data']}`; "
             f"{report['reference_excerpts']} held-out and {report['training_excerpts']} training "
             f"excerpts of {report['settings']['seconds']:g} s; {report['settings']['samples']} "
             f"generated pieces; seed {report['settings']['seed']}; truncation "
             f"{report['settings']['bound']:g}.", "",
             "## Frechet Audio Distance", "", f"Embedding: {report['fad']['embedding']}.", "",
             *_fad_rows(report["fad"]), "", "## Condition control", "",
             *_condition_rows(report["condition"]), "", "## Seams", "",
             f"Spectral-flux ratio at joins every {seams_['join_every_seconds']:.2f} s (1 = no seam).", "",
             "| audio | seam ratio | +- (s.e. over pieces) |", "|---|---|---|",
             *_seam_rows(seams_), "",
             "## Autoencoder reconstruction", "",
             "| level | multi-scale spectral distance | log-spectral distance (dB) | spectral convergence |",
             "|---|---|---|---|"]
    for level, r in ae.items():
        lines.append(f"| {level} | {_fmt(r['multiscale_spectral_distance'])} | "
                     f"{_fmt(r['log_spectral_distance_db'])} | {_fmt(r['spectral_convergence'])} |")
    lines += ["", "## Speed", "",
              f"{speed['seconds_generated']:g} s generated in {speed['wall_seconds']:.2f} s: "
              f"**{speed['real_time_factor']:.1f}x real time** on {speed['cpu_count']} CPU cores.", "",
              "## Spectrograms", "", f"![generated (top 3) and real (bottom 3)]({SPECTROGRAMS})", ""]
    if "curve" in report["condition"]:
        lines += [f"![requested vs measured condition]({CONDITION_PLOT})", ""]
    return "\n".join(lines)


def condition_plot(path: str, curve: dict) -> None:
    """Scatter of measured vs requested condition with the identity line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    req, meas = np.asarray(curve["requested"]), np.asarray(curve["measured"])
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(req, meas, alpha=0.7)
    lo, hi = min(req.min(), meas.min()), max(req.max(), meas.max())
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="requested = measured")
    ax.set_xlabel(f"requested ({curve['unit']})")
    ax.set_ylabel(f"measured ({curve['unit']})")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def write_report(report: dict, out_dir: str) -> dict:
    """Write JSON, Markdown and PNGs of `report` (from `harness.evaluate`) into `out_dir`;
    returns the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    examples = report.pop("examples", {})
    paths = {"json": os.path.join(out_dir, JSON_NAME), "markdown": os.path.join(out_dir, MD_NAME)}
    if examples:
        cfg = load_preset(report["model"]).audio
        clips = examples["generated"] + examples["real"]
        titles = [f"generated {i + 1}" for i in range(len(examples["generated"]))] + \
                 [f"real {i + 1}" for i in range(len(examples["real"]))]
        paths["spectrograms"] = audio_lib.save_spectrogram_png(
            os.path.join(out_dir, SPECTROGRAMS), clips, cfg, titles=titles)
    if "curve" in report["condition"]:
        paths["condition"] = os.path.join(out_dir, CONDITION_PLOT)
        condition_plot(paths["condition"], report["condition"]["curve"])
    with atomic_path(paths["json"]) as tmp, open(tmp, "w") as fh:
        json.dump(report, fh, indent=2, default=float)
    with atomic_path(paths["markdown"]) as tmp, open(tmp, "w") as fh:
        fh.write(markdown(report))
    return paths


TABLE_START, TABLE_END = "<!-- evaluation-table:start -->", "<!-- evaluation-table:end -->"


def _condition_summary(condition: dict) -> str:
    density, tempo = condition.get("density"), condition.get("tempo")
    if isinstance(density, dict):
        ceiling, independent = density.get("autoencoder_ceiling"), density.get("independent")
        beside = f" (AE ceiling {ceiling['spearman']:.2f})" if ceiling else ""
        beside += f", independent detector {independent['spearman']:.2f}" if independent else ""
        return (f"density Spearman {density['spearman']:.2f}{beside}, "
                f"MAE {density['mae_onsets_per_s']:.2f} onsets/s")
    if isinstance(tempo, dict) and tempo.get("inside_training_range"):
        r = tempo["inside_training_range"]
        return f"tempo MAE {r['mae_bpm']:.1f} BPM, Acc1 {r['accuracy1']:.0%}, Acc2 {r['accuracy2']:.0%}"
    return "unconditioned"


def summary_table(report_dirs: list) -> str:
    """One Markdown row per report folder (its ``report.json``)."""
    rows = ["| model | data | FAD-inf generated | floor | AE ceiling | condition | seams (naive) | "
            "speed | report |", "|---|---|---|---|---|---|---|---|---|"]
    for folder in report_dirs:
        with open(os.path.join(folder, JSON_NAME)) as fh:
            r = json.load(fh)
        f, s = r["fad"], r["seams"]
        spread = f["generated"].get("sampling_stderr")
        other_set = "" if spread is None else f" (another set of pieces: +- {spread:.1f})"
        rows.append(
            f"| {r['name']} | {r['data']} | {f['generated']['value']:.2f} +- "
            f"{f['generated']['stderr']:.2f}{other_set} | {f['floor_training_real']['value']:.2f} | "
            f"{f['ceiling_autoencoder']['value']:.2f} | {_condition_summary(r['condition'])} | "
            f"{s['generated']:.2f} ({s['naive_concatenation']:.2f}) | "
            f"{r['speed']['real_time_factor']:.0f}x | [{os.path.basename(folder)}]"
            f"({os.path.basename(folder)}/{MD_NAME}) |")
    return "\n".join(rows)


def update_doc_table(doc_path: str, report_dirs: list) -> None:
    """Replace the text between the evaluation-table markers of `doc_path` with `summary_table`.
    Report links are written relative to the document's folder."""
    with open(doc_path) as fh:
        text = fh.read()
    if TABLE_START not in text or TABLE_END not in text:
        raise ValueError(f"{doc_path}: no {TABLE_START} ... {TABLE_END} markers to fill")
    doc_dir = os.path.dirname(os.path.abspath(doc_path))
    table = summary_table(report_dirs)
    for folder in report_dirs:
        rel = os.path.relpath(os.path.abspath(folder), doc_dir)
        name = os.path.basename(folder)
        table = table.replace(f"]({name}/{MD_NAME})", f"]({rel}/{MD_NAME})")
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    with atomic_path(doc_path) as tmp, open(tmp, "w") as fh:
        fh.write(f"{head}{TABLE_START}\n{table}\n{TABLE_END}{tail}")
