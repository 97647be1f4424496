"""`python -m musika_tf evaluate` end to end on tiny exported models (random weights, seconds)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from musika_tf import cli, gan
from musika_tf.autoencoder import Autoencoder
from musika_tf.config import get_preset
from musika_tf.evaluation.harness import EvaluationError, Settings, evaluate
from musika_tf.evaluation.report import TABLE_END, TABLE_START, update_doc_table, write_report
from musika_tf.export import export_model

RATE = 22050
QUICK = Settings(samples=8, seconds=3.0, grid_repeats=1, seam_pieces=1, max_reference=10,
                 recon_excerpts=2)


def _clicks(bpm: float, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = 0.002 * rng.normal(size=int(seconds * RATE))
    t = np.arange(int(0.05 * RATE)) / RATE
    hit = np.sin(2 * np.pi * 60 * t) * np.exp(-40 * t)
    for beat in np.arange(0.1, seconds - 0.06, 60.0 / bpm):
        i = int(beat * RATE)
        x[i:i + len(hit)] += 0.5 * hit
    return np.stack([x, x], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_audio")
    for i, bpm in enumerate((120, 128, 136, 144)):
        sf.write(root / f"track{i}.wav", _clicks(bpm, 30.0, i), RATE)
    return str(root)


def _export(folder, cond: str) -> str:
    preset = get_preset("tiny", cond=cond)
    return export_model(str(folder), preset, gan.build_generator(preset), Autoencoder.build(preset),
                        card={"data": "random weights (test)"})


@pytest.fixture(scope="module")
def plain_model(tmp_path_factory):
    return _export(tmp_path_factory.mktemp("m") / "plain", "none")


def test_evaluate_writes_every_section(plain_model, data_dir, tmp_path):
    report = evaluate(plain_model, data_dir, QUICK)
    for name in ("generated", "floor_training_real", "ceiling_autoencoder"):
        r = report["fad"][name]
        assert np.isfinite(r["value"]) and r["stderr"] >= 0 and len(r["sizes"]) >= 3
        assert r["sampling_stderr"] > 0
    # random weights: far from the real clicks, much farther than real vs real
    assert report["fad"]["generated"]["value"] > report["fad"]["floor_training_real"]["value"]
    assert report["condition"]["tempo"].startswith("not applicable")
    assert report["condition"]["density"].startswith("not applicable")
    assert report["seams"]["generated"] > 0 and report["seams"]["real_audio"] > 0
    assert report["seams"]["autoencoder_reconstruction"] > 0
    assert report["seams"]["pieces"] == QUICK.seam_pieces and "generated_stderr" in report["seams"]
    assert set(report["autoencoder"]) == {"level1", "level2"}
    assert report["speed"]["real_time_factor"] > 0
    paths = write_report(report, str(tmp_path / "out"))
    saved = json.loads(open(paths["json"]).read())
    assert saved["fad"]["generated"]["value"] == pytest.approx(report["fad"]["generated"]["value"])
    text = open(paths["markdown"]).read()
    assert "FAD-inf" in text and "seam ratio" in text and "spectrograms.png" in text
    assert f"truncation {QUICK.bound:g}." in text
    assert (tmp_path / "out" / "spectrograms.png").stat().st_size > 0
    doc = tmp_path / "EVALUATION.md"
    doc.write_text(f"intro\n{TABLE_START}\nold\n{TABLE_END}\noutro\n")
    update_doc_table(str(doc), [str(tmp_path / "out")])
    text = doc.read_text()
    assert "old" not in text and text.startswith("intro") and text.endswith("outro\n")
    assert f"{report['fad']['generated']['value']:.2f}" in text and "](out/report.md)" in text


def test_tempo_model_gets_a_tempo_section_and_plot(data_dir, tmp_path):
    model = _export(tmp_path / "tempo", "tempo")
    report = evaluate(model, data_dir, QUICK)
    tempo = report["condition"]["tempo"]
    assert tempo["inside_training_range"]["n"] + tempo["outside_training_range"]["n"] == tempo["all"]["n"]
    assert 0.0 <= tempo["all"]["accuracy1"] <= tempo["all"]["accuracy2"] <= 1.0
    assert report["condition"]["density"].startswith("not applicable")
    paths = write_report(report, str(tmp_path / "out"))
    assert (tmp_path / "out" / "condition.png").exists() and "condition" in paths


def test_density_model_gets_a_density_section_with_the_autoencoders_ceiling(data_dir, tmp_path):
    model = _export(tmp_path / "density", "density")
    report = evaluate(model, data_dir, QUICK)
    density = report["condition"]["density"]
    assert density["n"] == 5 * QUICK.grid_repeats and -1.0 <= density["spearman"] <= 1.0
    ceiling = density["autoencoder_ceiling"]
    assert ceiling["n"] == report["reference_excerpts"] and -1.0 <= ceiling["spearman"] <= 1.0
    assert ceiling["real_mean"] > 0  # the reference clicks have onsets
    independent = density["independent"]
    assert independent["detector"] == "librosa spectral flux" and independent["n"] == density["n"]
    assert report["condition"]["tempo"].startswith("not applicable")
    write_report(report, str(tmp_path / "out"))
    text = (tmp_path / "out" / "report.md").read_text()
    assert "autoencoder ceiling" in text and "independent detector" in text


def test_cli_errors_name_the_problem(plain_model, data_dir, tmp_path, capsys):
    no_card = tmp_path / "nocard"
    shutil.copytree(plain_model, no_card)
    (no_card / "model_card.json").unlink()
    assert cli.main(["evaluate", "--model", str(no_card), "--data", data_dir]) == 2
    assert "model_card.json" in capsys.readouterr().err
    short = tmp_path / "short"
    short.mkdir()
    sf.write(short / "a.wav", _clicks(120, 4.0, 0), RATE)
    sf.write(short / "b.wav", _clicks(120, 4.0, 1), RATE)
    with pytest.raises(EvaluationError, match="too little audio"):
        evaluate(plain_model, str(short), QUICK)


def test_cli_flags_reach_the_settings(monkeypatch, tmp_path):
    seen = {}

    def fake_evaluate(model, data, settings):
        seen["settings"] = settings
        raise EvaluationError("stop here")

    monkeypatch.setattr("musika_tf.evaluation.harness.evaluate", fake_evaluate)
    assert cli.main(["evaluate", "--model", str(tmp_path), "--data", "x", "--truncation", "1.25",
                     "--grid-repeats", "5", "--seam-pieces", "24"]) == 2
    assert seen["settings"].bound == 1.25
    assert seen["settings"].grid_repeats == 5 and seen["settings"].seam_pieces == 24
