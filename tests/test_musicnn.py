"""MusiCNN port (musika_tf.evaluation.musicnn): fidelity to the original, patching, downmix, errors,
and that the embedding separates kinds of sound."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from musika_tf.evaluation import musicnn

# Recorded once by scripts/make_musicnn_fixture.py (see its docstring) in a throwaway venv with
# musicnn 0.1.0's ORIGINAL TF1 graph on TF 2.16 / tf-keras: three synthetic clips (a piano-like
# tone sequence at 16 kHz mono, a click track at 44.1 kHz stereo of 2 patches, noise bursts at
# 8 kHz mono) as int16, and the original's embeddings of them.
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "musicnn_reference.npz"
REFERENCE = dict(np.load(FIXTURE))
META = json.loads(str(REFERENCE["meta"]))
CLIPS = META["clips"]
CASES = [(model, clip, layer) for model, layers in META["layers"].items()
         for clip in CLIPS for layer in layers]
# Observed port-vs-original max |error| / max |reference|: <= 1.1e-6 on every array (3.1e-6 on
# penultimate values up to 3.6, 7.4e-5 on max_pool values up to 133): float32 summation-order noise.
# The tolerance is 30x that. It also covers the one input step that can legitimately differ across
# machines: the mel power is rounded to float16 as musicnn does, so a last-bit change of the
# float32 mel may flip a bin by one float16 step; 20 such flips move the penultimate by <= 4.5e-5.
RELATIVE_TOLERANCE = 3e-5


def clip(name: str) -> tuple[np.ndarray, int]:
    """A fixture clip as float32 in [-1, 1] (what reading its 16-bit WAV gives) and its rate."""
    return REFERENCE[f"clip/{name}"].astype(np.float32) / 32768.0, CLIPS[name]["sample_rate"]


@pytest.fixture(scope="module")
def embedders() -> dict[str, musicnn.MusicnnEmbedder]:
    return {model: musicnn.MusicnnEmbedder(model) for model in META["layers"]}


@pytest.fixture(scope="module")
def embedder(embedders) -> musicnn.MusicnnEmbedder:
    return embedders[musicnn.DEFAULT_MODEL]


@pytest.mark.parametrize("model,name,layer", CASES)
def test_port_matches_original(embedders, model, name, layer):
    reference = REFERENCE[f"{model}/{name}/{layer}"]
    audio, rate = clip(name)
    embedding = embedders[model].embed(audio, rate, layer=layer)
    assert embedding.dtype == np.float32 and embedding.shape == reference.shape
    np.testing.assert_allclose(embedding, reference, rtol=0,
                               atol=RELATIVE_TOLERANCE * np.abs(reference).max())


def test_patch_count_and_shapes(embedder):
    """frames = 1 + samples // 256 at 16 kHz; one patch per 187 frames, the rest dropped."""
    shortest = musicnn.MIN_SAMPLES
    assert shortest == 47616 and musicnn.MIN_SECONDS == pytest.approx(2.976)
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, 3 * 187 * 256).astype(np.float32)
    for samples, patches in ((shortest, 1), (shortest + 187 * 256 - 1, 1),
                             (shortest + 187 * 256, 2)):
        assert embedder.embed(noise[:samples], 16000).shape == (patches, 200)
    assert embedder.embed(noise[:shortest], 16000, layer="max_pool").shape == (1, 753)
    two = noise[:shortest + 187 * 256]
    many = embedder.embed_many([noise[:shortest], two], 16000)
    assert many.shape == (3, 200) and many.dtype == np.float32
    np.testing.assert_allclose(many[1:], embedder.embed(two, 16000), rtol=0, atol=1e-6)


def test_too_short_and_bad_input(embedder):
    with pytest.raises(ValueError, match=r"at least 2\.976 s \(47616 samples at 16000 Hz\)"):
        embedder.embed(np.zeros(musicnn.MIN_SAMPLES - 1), 16000)
    with pytest.raises(ValueError, match=r"at least 2\.976 s"):
        embedder.embed(np.zeros((44100 * 2, 2)), 44100)
    with pytest.raises(ValueError, match="samples, 2"):
        embedder.embed(np.zeros((2, 44100 * 4)), 44100)
    with pytest.raises(ValueError, match="layer"):
        embedder.embed(np.zeros(44100 * 4), 44100, layer="taggram")


def test_missing_model_and_package(monkeypatch):
    with pytest.raises(ValueError, match="available"):
        musicnn.checkpoint_prefix("MSD_vgg")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install --no-deps musicnn==0\.1\.0"):
        musicnn.checkpoint_prefix()


def test_stereo_is_its_mono_downmix(embedder):
    rng = np.random.default_rng(1)
    stereo = np.stack([clip("piano")[0], 0.3 * rng.standard_normal(49600)], axis=-1)
    stereo = stereo.astype(np.float32)
    np.testing.assert_allclose(embedder.embed(stereo, 16000),
                               embedder.embed(stereo.mean(axis=-1), 16000), rtol=0, atol=1e-6)


def test_embedding_separates_kinds_of_sound(embedder):
    """A clip with -60 dBFS noise added stays far closer to itself than to another kind of clip."""
    embeddings = {name: embedder.embed(*clip(name))[0] for name in CLIPS}
    piano, rate = clip("piano")
    noisy = piano + 1e-3 * np.random.default_rng(2).standard_normal(piano.shape)
    self_distance = np.linalg.norm(embedder.embed(noisy, rate)[0] - embeddings["piano"])
    for other in ("clicks", "noise"):
        assert self_distance < 0.2 * np.linalg.norm(embeddings[other] - embeddings["piano"])
