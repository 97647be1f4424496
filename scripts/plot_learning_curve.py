"""Plot the learning curves of GAN runs from the harness's scores (docs/TRAINING.md).

    python scripts/plot_learning_curve.py add docs/scaling/piano_runs.jsonl evaluations/X/report.json \
        --run "onset phase" --steps 37000 --reference "maestro 63 min"
    python scripts/plot_learning_curve.py plot docs/scaling/piano_runs.jsonl --png docs/images/piano_curve.png

Input: one JSON object per line, each a checkpoint scored by ``python -m musika_tf evaluate``:
``run`` (curve label), ``steps`` (GAN steps), ``fad`` and ``fad_stderr`` (FAD-inf), ``spearman``
(density control) and optionally ``reference`` (which held-out set it was scored on: curves are
only comparable on one reference set, so every set gets its own panel) and ``ceiling`` (the
autoencoder's FAD-inf on that set, drawn with the issue's target of twice it).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict


def row_from_report(report_path: str, run: str, steps: int, reference: str) -> dict:
    """One curve point from an `evaluate` report.json."""
    with open(report_path, encoding="utf-8") as f:
        report = json.load(f)
    fad = report["fad"]
    row = {"run": run, "steps": steps, "reference": reference,
           "fad": round(fad["generated"]["value"], 2), "fad_stderr": round(fad["generated"]["stderr"], 2),
           "ceiling": round(fad["ceiling_autoencoder"]["value"], 2)}
    density = report.get("condition", {}).get("density")
    if isinstance(density, dict):
        row["spearman"] = round(density["spearman"], 2)
    return row


def read_rows(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def plot(rows: list[dict], png: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_reference = defaultdict(list)
    for row in rows:
        by_reference[row.get("reference", "held-out")].append(row)
    fig, axes = plt.subplots(2, len(by_reference), figsize=(6.5 * len(by_reference), 7),
                             squeeze=False, sharex="col")
    for col, (reference, group) in enumerate(by_reference.items()):
        fad_ax, rho_ax = axes[0, col], axes[1, col]
        runs = defaultdict(list)
        for row in group:
            runs[row["run"]].append(row)
        for run, points in runs.items():
            points.sort(key=lambda r: r["steps"])
            steps = [p["steps"] for p in points]
            fad_ax.errorbar(steps, [p["fad"] for p in points],
                            yerr=[p.get("fad_stderr", 0) for p in points], marker="o", capsize=3,
                            label=run)
            rho_ax.plot(steps, [p.get("spearman", float("nan")) for p in points], marker="o", label=run)
        ceilings = {row["ceiling"] for row in group if "ceiling" in row}
        for i, ceiling in enumerate(sorted(ceilings)):
            fad_ax.axhline(ceiling, color="grey", ls=":", lw=1, label=None if i else "AE ceiling")
            fad_ax.axhline(2 * ceiling, color="red", ls="--", lw=1,
                           label=None if i else "target: 2 x ceiling")
        fad_ax.set_title(f"held out: {reference}", fontsize=10)
        fad_ax.set_ylabel("FAD-inf (lower is better)")
        fad_ax.legend(fontsize=8)
        rho_ax.axhline(0.8, color="red", ls="--", lw=1)
        rho_ax.set_ylabel("density Spearman (target 0.8)")
        rho_ax.set_xlabel("GAN steps")
        rho_ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="append one scored checkpoint (from its report.json)")
    add.add_argument("rows", help="JSON-lines file of scored checkpoints (created if missing)")
    add.add_argument("report", help="report.json written by `python -m musika_tf evaluate`")
    add.add_argument("--run", required=True, help="curve label (one per training configuration)")
    add.add_argument("--steps", type=int, required=True, help="GAN steps of the scored checkpoint")
    add.add_argument("--reference", required=True,
                     help="name of the held-out set it was scored on (one panel per set)")
    draw = commands.add_parser("plot", help="draw every curve of a rows file")
    draw.add_argument("rows", help="JSON-lines file of scored checkpoints")
    draw.add_argument("--png", required=True, help="output image")
    args = parser.parse_args(argv)
    if args.command == "add":
        row = row_from_report(args.report, args.run, args.steps, args.reference)
        with open(args.rows, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row))
    else:
        plot(read_rows(args.rows), args.png)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
