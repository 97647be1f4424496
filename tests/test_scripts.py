"""The training diagnostics in scripts/: critic_gap.py and plot_learning_curve.py."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from musika_tf.data.latents import LatentWriter
from musika_tf.training import gan as G
from musika_tf.training import loop
from tests.test_gan_training import TINY

REPO = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_critic_gap_scores_every_split_and_the_generator(tmp_path):
    rng = np.random.default_rng(0)
    writer = LatentWriter(str(tmp_path / "store"), "chunks", "test", TINY.to_dict())
    for i, split in enumerate(["train", "train", "validation", "test"]):
        writer.add(rng.standard_normal((256, TINY.stereo_latent_dim)), f"song{i}.wav", split=split)
    store = writer.close()
    run = tmp_path / "run"
    loop.fit(G.GANTrainer(TINY, str(run), store), steps=2, progress=False, preview=False)

    scores = _script("critic_gap").critic_gap(str(run), store, batches=1, augmented=False)
    assert set(scores) == {"train", "validation", "test", "generated"}
    assert all(np.isfinite(v) for v in scores.values())
    assert len(set(scores.values())) == 4  # four different sets of windows, four different means


def test_learning_curve_rows_come_from_reports_and_plot(tmp_path):
    curve = _script("plot_learning_curve")
    report = {"fad": {"generated": {"value": 31.784, "stderr": 0.356},
                      "ceiling_autoencoder": {"value": 9.981, "stderr": 0.3}},
              "condition": {"density": {"spearman": 0.6712}}}
    (tmp_path / "report.json").write_text(json.dumps(report))
    rows = tmp_path / "rows.jsonl"
    for steps in (1000, 2000):
        curve.main(["add", str(rows), str(tmp_path / "report.json"), "--run", "a",
                    "--steps", str(steps), "--reference", "held-out"])
    read = curve.read_rows(str(rows))
    assert [r["steps"] for r in read] == [1000, 2000]
    assert read[0] == {"run": "a", "steps": 1000, "reference": "held-out", "fad": 31.78,
                       "fad_stderr": 0.36, "ceiling": 9.98, "spearman": 0.67}
    curve.main(["plot", str(rows), "--png", str(tmp_path / "curve.png")])
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit):
        curve.main(["add", str(rows), str(tmp_path / "report.json")])  # --run/--steps required
