"""The diagnostics in scripts/: critic_gap.py, plot_learning_curve.py and fad_breakdown.py."""

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


def test_fad_breakdown_splits_the_fad_and_names_the_tags(tmp_path):
    from musika_tf.evaluation import musicnn
    from tests.test_evaluate import QUICK, _clicks, _export
    import soundfile as sf

    for i, bpm in enumerate((120, 128, 136, 144)):
        sf.write(tmp_path / f"track{i}.wav", _clicks(bpm, 30.0, i), 22050)
    model = _export(tmp_path / "model", "none")
    out = _script("fad_breakdown").breakdown(model, str(tmp_path), QUICK)
    assert abs(out["reference"]["fad_mean_term"]) < 1e-6 and abs(out["reference"]["fad_covariance_term"]) < 1e-3
    fad_of = lambda name: out[name]["fad_mean_term"] + out[name]["fad_covariance_term"]
    assert fad_of("generated") > fad_of("floor_training_real")  # random weights vs real clicks
    assert all(np.isfinite(out[name]["power_db"]) and out[name]["loudness_spread_db"] >= 0
               for name in ("generated", "floor_training_real", "ceiling_autoencoder"))
    labels = musicnn.tag_names()
    assert len(out["tags"]) == 8 and all(tag in labels and 0 < g < 1 and 0 < r < 1
                                         for tag, g, r in out["tags"])
