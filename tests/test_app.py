"""The Gradio app: model discovery, generation from UI values, and a real served API call."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from musika_tf.autoencoder import Autoencoder
from musika_tf.config import get_preset
from musika_tf.export import export_model
from musika_tf.gan import build_generator
from musika_tf.webapp import Generator, build_ui, find_models


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    for name, cond in (("plain", "none"), ("piano", "density")):
        preset = get_preset("tiny", cond=cond)
        export_model(str(root / name), preset, build_generator(preset), Autoencoder.build(preset),
                     card={"data": "test"})
    (root / "not_a_model").mkdir()
    return root


def test_find_models_lists_only_exported_folders(checkpoints, tmp_path):
    assert sorted(find_models(str(checkpoints))) == ["piano", "plain"]
    with pytest.raises(FileNotFoundError, match="musika_tf export"):
        Generator(find_models(str(tmp_path)))


def test_generate_gives_exact_length_int16_stereo_and_a_png(checkpoints, tmp_path):
    app = Generator(find_models(str(checkpoints)))
    (rate, pcm), png = app.generate("plain", 3.0, seed=1, variety=2.0, png_dir=str(tmp_path))
    assert rate == 22050 and pcm.shape == (3 * rate, 2) and pcm.dtype == np.int16
    assert open(png, "rb").read(4) == b"\x89PNG"
    (_, again), _ = app.generate("plain", 3.0, seed=1, variety=2.0, png_dir=str(tmp_path))
    np.testing.assert_array_equal(pcm, again)
    with pytest.raises(ValueError, match="positive"):
        app.generate("plain", 0, seed=1, variety=2.0)
    for seed in (None, "", -1, 1.5, "abc"):
        with pytest.raises(ValueError, match="seed"):
            app.generate("plain", 3.0, seed=seed, variety=2.0)
    with pytest.raises(ValueError, match="variety"):
        app.generate("plain", 3.0, seed=1, variety=None)


def test_density_control_changes_the_music(checkpoints, tmp_path):
    app = Generator(find_models(str(checkpoints)))
    assert app.condition_of("piano") == "density" and app.condition_of("plain") == "none"
    (_, sparse), _ = app.generate("piano", 2.0, 5, 1.0, density=0.5, png_dir=str(tmp_path))
    (_, dense), _ = app.generate("piano", 2.0, 5, 1.0, density=12.0, png_dir=str(tmp_path))
    assert np.abs(sparse.astype(int) - dense.astype(int)).max() > 0
    # the tempo slider value is ignored for a density model (hidden in the UI)
    (_, same), _ = app.generate("piano", 2.0, 5, 1.0, density=0.5, tempo=150, png_dir=str(tmp_path))
    np.testing.assert_array_equal(sparse, same)


def test_served_app_answers_an_api_call(checkpoints):
    from gradio_client import Client

    ui = build_ui(Generator(find_models(str(checkpoints))))
    ui.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        client = Client(ui.local_url, verbose=False)
        audio_path, image_path = client.predict("plain", 2, 3, 2.0, 3.0, 130, api_name="/generate")
        data, rate = sf.read(audio_path)
        assert rate == 22050 and data.shape == (2 * rate, 2)
        assert open(image_path, "rb").read(4) == b"\x89PNG"
    finally:
        ui.close()
