"""The Gradio app: model discovery and cards, values checked, generation, endless-mode changes, and
every control and every rejected value through a served API (gradio_client)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from musika_tf.conditioning import normalise_condition
from musika_tf.webapp import MAX_SECONDS, Generator, build_ui, find_models
from tests.tiny_models import export_tiny, free_port


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    export_tiny(root / "plain")
    export_tiny(root / "piano", cond="density",
                card={"data": "test set", "steps": 12, "evaluation": {"FAD-inf": 3.5}})
    export_tiny(root / "techno", cond="tempo", card={"data": "beats", "condition_range": [120, 150]})
    (root / "not_a_model").mkdir()
    return root


@pytest.fixture(scope="module")
def app(checkpoints):
    return Generator(find_models(str(checkpoints)))


def test_find_models_lists_only_exported_folders(checkpoints, tmp_path):
    assert sorted(find_models(str(checkpoints))) == ["piano", "plain", "techno"]
    with pytest.raises(FileNotFoundError, match="musika_tf export"):
        Generator(find_models(str(tmp_path)))


def test_model_card_shows_rate_conditioning_data_steps_and_evaluation(app):
    card = app.describe("piano")
    for text in ("22050 Hz", "note density, 0-16 onsets/s", "test set", "GAN steps: 12", "FAD-inf 3.5"):
        assert text in card
    assert "tempo, 120-150 BPM" in app.describe("techno")
    assert "conditioning: none" in app.describe("plain")
    assert app.condition_range("techno") == (120.0, 150.0) and app.condition_range("plain") is None


def test_generate_gives_samples_of_the_exact_length_a_spectrogram_and_the_speed(app):
    fractions = []
    result = app.generate("plain", 3.0, seed=1, variety=2.0, samples=2, progress=fractions.append)
    assert [(rate, pcm.shape, pcm.dtype) for rate, pcm in result.audios] == [(22050, (3 * 22050, 2),
                                                                              np.int16)] * 2
    assert np.abs(result.audios[0][1].astype(int) - result.audios[1][1]).max() > 0  # seeds 1 and 2
    assert result.image.ndim == 3 and result.image.shape[2] == 3 and result.image.dtype == np.uint8
    assert "real time" in result.summary and fractions[-1] == pytest.approx(1.0)
    again = app.generate("plain", 3.0, seed=1, variety=2.0)
    np.testing.assert_array_equal(result.audios[0][1], again.audios[0][1])
    assert os.listdir(app._tmp) == []  # no file left behind


@pytest.mark.parametrize("values, message", [
    (dict(seconds=0), "length"), (dict(seconds=MAX_SECONDS + 1), "length"), (dict(seconds=None), "length"),
    (dict(seed=None), "seed"), (dict(seed=""), "seed"), (dict(seed=-1), "seed"), (dict(seed=1.5), "seed"),
    (dict(seed="abc"), "seed"), (dict(variety=None), "variety"), (dict(variety=0), "variety"),
    (dict(variety=4.5), "variety"), (dict(samples=0), "samples"), (dict(samples=5), "samples"),
    (dict(samples=1.5), "samples"), (dict(density=-1), "note density"), (dict(density=17), "note density"),
    (dict(density_end=20), "note density at the end"), (dict(name="nope"), "unknown model"),
])
def test_bad_values_are_rejected_with_a_message(app, values, message):
    args = dict(name="piano", seconds=2.0, seed=1, variety=2.0, density=3.0, samples=1)
    args.update(values)
    with pytest.raises(ValueError, match=message):
        app.generate(**args)


def test_conditions_from_the_sliders_and_curves(app):
    assert app.condition("plain", 3.0, 130.0) is None
    assert app.condition("piano", 3.0, 130.0) == pytest.approx(float(normalise_condition("density", 3.0)))
    curve = app.condition("piano", 1.0, None, density_end=9.0, frames=5)
    np.testing.assert_allclose(curve, normalise_condition("density", np.linspace(1.0, 9.0, 5)))
    with pytest.raises(ValueError, match="tempo must be between 120 and 150 BPM"):
        app.condition("techno", None, 100.0)


def test_density_control_changes_the_music_and_the_hidden_slider_is_ignored(app):
    sparse = app.generate("piano", 2.0, 5, 1.0, density=0.5).audios[0][1]
    dense = app.generate("piano", 2.0, 5, 1.0, density=12.0).audios[0][1]
    assert np.abs(sparse.astype(int) - dense.astype(int)).max() > 0
    same = app.generate("piano", 2.0, 5, 1.0, density=0.5, tempo=150).audios[0][1]
    np.testing.assert_array_equal(sparse, same)
    curve = app.generate("piano", 2.0, 5, 1.0, density=0.5, density_end=12.0).audios[0][1]
    assert np.abs(curve.astype(int) - sparse.astype(int)).max() > 0


def test_endless_stream_changes_apply_from_the_next_decode_unit(app):
    live = app.start_live("session", "piano", 3, 2.0, density=2.0)
    chunks = live.chunks()
    first = next(chunks)
    assert first[:4] == b"RIFF" and live.handed_out > 0
    assert app.update_live("session", "piano", 2.0, density=8.0).startswith("streaming: condition")
    change = live.changes[-1]
    assert change["applies_at"] == live.stream.samples_emitted >= change["handed_out"]
    app.update_live("session", "piano", 1.0, density=8.0)
    assert [c["what"] for c in live.changes] == ["condition", "variety"]
    for _ in range(3):
        next(chunks)
    with pytest.raises(ValueError, match="note density"):
        app.update_live("session", "piano", 1.0, density=99)
    app.stop_live("session")
    assert live.stopped and "session" not in app.live
    assert app.update_live("session", "piano", 2.0, density=1.0) == ""


@pytest.fixture(scope="module")
def client(app):
    from gradio_client import Client

    ui = build_ui(app)
    ui.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield Client(ui.local_url, verbose=False)
    finally:
        ui.close()


def _call(client, model="piano", seconds=2, seed=3, variety=2.0, samples=1, density=3.0, tempo=130,
          curve=False, density_end=3.0, tempo_end=130):
    """/generate -> (4 player files or None, spectrogram file, summary)."""
    out = client.predict(model, seconds, seed, variety, samples, density, tempo, curve, density_end,
                         tempo_end, api_name="/generate")
    return [item.get("value") if isinstance(item, dict) else item for item in out]


def test_api_generate_every_control(client, app):
    *players, image, summary = _call(client, samples=3, seconds=2, seed=4, variety=1.5, density=6.0,
                                     curve=True, density_end=1.0)
    assert len(players) == 4 and players[3] is None and "3 x 2 s" in summary
    expected = app.generate("piano", 2, 4, 1.5, density=6.0, samples=3, density_end=1.0)
    for path, (rate, pcm) in zip(players[:3], expected.audios):
        data, got_rate = sf.read(path, dtype="int16")
        assert got_rate == rate and data.shape == (2 * rate, 2)
        np.testing.assert_array_equal(data, pcm)
    assert open(image, "rb").read(4) == b"\x89PNG"
    *players, _, _ = _call(client, model="techno", tempo=140, tempo_end=125, curve=True)
    assert sf.read(players[0])[0].shape == (2 * 22050, 2)
    seed = client.predict(api_name="/random_seed")
    assert float(seed).is_integer() and seed >= 0


@pytest.mark.parametrize("values, message", [  # Gradio's slider bounds answer first, then the app's
    (dict(seconds=MAX_SECONDS + 1), "greater than maximum value 600"), (dict(seconds=0), "less than min"),
    (dict(seed=-1), "seed must be a whole number"), (dict(seed=None), "enter a seed"),
    (dict(variety=9), "greater than maximum value 3.9"), (dict(samples=9), "greater than maximum value 4"),
    (dict(density=40), "greater than maximum value 16"),
    (dict(curve=True, density_end=-2), "less than minimum value 0"),
    (dict(model="techno", tempo=200), "tempo must be between 120 and 150"),
    (dict(model="techno", tempo=140, curve=True, tempo_end=119), "tempo at the end must be between"),
])
def test_api_rejects_bad_values_with_their_message(client, values, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        _call(client, **values)
