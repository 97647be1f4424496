"""Original Musika AE weights (Keras-2 .h5 fixtures) reproduce the reference's own outputs.

Fixtures: ``shared/reference-fixtures/{v44,v22}`` beside the repository (or
$MUSIKA_REFERENCE_FIXTURES); a missing folder fails the tests (see `tests/conftest.py`).
Tolerances are the README's atol, computed from ``noise.json`` by `reference_tolerance`.
"""

from __future__ import annotations

import json

import h5py
import keras
import numpy as np
import pytest

from musika_tf.autoencoder import Autoencoder, build_encoder, split_stereo_latents, stereo_latents
from musika_tf.config import get_preset
from musika_tf.layers import noise_layers
from musika_tf.reference import ReferenceWeightError, load_keras2_h5, read_keras2_h5, weight_layers
from tests.conftest import reference_tolerance

VARIANT_PRESET = {"v44": "musika44", "v22": "paper22"}


@pytest.fixture(scope="module", params=sorted(VARIANT_PRESET))
def ref(request, fixtures_dir):
    """(variant, loaded Autoencoder, io.npz arrays, meta.json) for one fixture variant."""
    variant = request.param
    folder = fixtures_dir / variant
    ae = Autoencoder.build(get_preset(VARIANT_PRESET[variant]))
    ae.load_reference(str(folder))
    io = dict(np.load(folder / "io.npz"))
    meta = json.loads((folder / "meta.json").read_text())
    return variant, ae, io, meta


def _assert_close(variant: str, array: str, ours: np.ndarray, reference: np.ndarray) -> None:
    tol = reference_tolerance(variant, array)
    assert ours.shape == reference.shape, (array, ours.shape, reference.shape)
    err = float(np.abs(ours - reference).max())
    assert err <= tol, f"{variant} {array}: max abs error {err:.3g} > atol {tol:.3g}"


def _encoder_chunks(variant: str, num_samples: int, hop: int, chunk: int) -> int:
    """Chunks the reference encode path makes from ``num_samples`` (fixture README rules)."""
    window, block = 4 * hop, hop * chunk
    if variant == "v44":  # whole-file mode: pad by rem (sic) zeros
        length = num_samples + (num_samples - 3 * hop) % block
    else:  # chunked mode: crop (offset 0) to whole chunks plus 3 hops
        length = (num_samples - 3 * hop) // block * block + 3 * hop
    return (1 + (length - window) // hop) // chunk


def _enc_in(variant, ae, io) -> np.ndarray:
    """The encoder's input frames ``[2, K*chunk, bins]``: the stored reference spectrogram cut to
    the frames the encode path uses (those frames never see the v44 zero padding)."""
    hop, chunk = ae.preset.audio.hop, ae.preset.ae.chunk_frames
    num_samples = len(io["frontend_wave"])
    frames = _encoder_chunks(variant, num_samples, hop, chunk) * chunk
    assert io["frontend_spec"].shape[1] == 1 + (num_samples - 4 * hop) // hop  # unpadded STFT
    assert (frames - 1) * hop + 4 * hop <= num_samples  # last used frame lies inside the signal
    return io["frontend_spec"][:, :frames]


def test_parameter_counts_match_fixture(ref):
    _, ae, _, meta = ref
    for stem, model in ae.models.items():
        assert model.count_params() == meta["params"][stem], stem


def test_fixture_noise_weights_are_zero(ref):
    _, ae, _, _ = ref
    weights = [float(layer.noise_weight.numpy()[0])
               for model in (ae.decoder, ae.decoder2) for layer in noise_layers(model)]
    assert weights and all(w == 0.0 for w in weights)


def test_encoder_reproduces_enc_out(ref):
    variant, ae, io, _ = ref
    _assert_close(variant, "enc_out", ae.encode_level1(_enc_in(variant, ae, io)), io["enc_out"])


def test_encoder2_reproduces_enc2_out(ref):
    variant, ae, io, _ = ref
    _assert_close(variant, "enc2_out", stereo_latents(ae.encode_level2(io["enc_out"])),
                  io["enc2_out"])


def test_encode_frames_whole_path(ref):
    variant, ae, io, _ = ref
    _assert_close(variant, "enc2_out", stereo_latents(ae.encode_frames(_enc_in(variant, ae, io))),
                  io["enc2_out"])


def test_decoder2_reproduces_dec2_out(ref):
    variant, ae, io, _ = ref
    ours = np.stack([np.asarray(ae.decoder2(x, training=False)) for x in io["dec2_in"]])
    _assert_close(variant, "dec2_out", ours, io["dec2_out"])
    # dec2_in is the reference's folding of dec_latent_in; decode_level2 must do the same.
    latents = split_stereo_latents(io["dec_latent_in"])
    _assert_close(variant, "dec2_out", ae.decode_level2(latents).reshape(io["dec2_out"].shape),
                  io["dec2_out"])


def test_decoder_reproduces_dec_out(ref):
    variant, ae, io, _ = ref
    chunks = io["dec2_out"]  # [2, n, 1, chunk, D1]
    mag, phase = ae.decode_level1(chunks.reshape(2, -1, chunks.shape[-1]))
    _assert_close(variant, "dec_out_mag", mag.reshape(io["dec_out_mag"].shape), io["dec_out_mag"])
    _assert_close(variant, "dec_out_phase", phase.reshape(io["dec_out_phase"].shape),
                  io["dec_out_phase"])


def test_decode_latents_whole_path(ref):
    variant, ae, io, _ = ref
    mag, phase = ae.decode_latents(split_stereo_latents(io["dec_latent_in"]))
    assert mag.shape[1] == len(io["dec_latent_in"]) * ae.preset.ae.frames_per_latent
    _assert_close(variant, "dec_out_mag", mag.reshape(io["dec_out_mag"].shape), io["dec_out_mag"])
    _assert_close(variant, "dec_out_phase", phase.reshape(io["dec_out_phase"].shape),
                  io["dec_out_phase"])


def test_loaded_weights_equal_file(ref, fixtures_dir):
    variant, ae, _, _ = ref
    groups = read_keras2_h5(str(fixtures_dir / variant / "dec.h5"))
    layers = weight_layers(ae.decoder)
    assert len(groups) == len(layers)
    for layer, group in zip(layers, groups):
        for var, value in zip(layer.weights, group.values):
            np.testing.assert_array_equal(np.asarray(var), value)


# ---------------------------------------------------------------------------------------------
# Loader errors (generic model + file)


def _write_keras2_h5(path, groups) -> None:
    """Write ``[(layer_name, [(weight_name, array), ...]), ...]`` in the Keras-2 weights layout."""
    with h5py.File(path, "w") as fh:
        fh.attrs["layer_names"] = np.array([name.encode() for name, _ in groups])
        fh.attrs["backend"], fh.attrs["keras_version"] = b"tensorflow", b"2.15.0"
        for name, weights in groups:
            group = fh.create_group(name)
            group.attrs["weight_names"] = np.array([f"{name}/{w}:0".encode() for w, _ in weights])
            for weight, value in weights:
                group.create_dataset(f"{name}/{weight}:0", data=value)


def _mlp():
    inp = keras.Input((3,))
    out = keras.layers.Dense(2, name="second")(keras.layers.Dense(4, name="first")(inp))
    return keras.Model(inp, out)


def _mlp_groups(rng):
    return [("input_1", []),
            ("dense", [("kernel", rng.standard_normal((3, 4))), ("bias", rng.standard_normal(4))]),
            ("dense_1", [("kernel", rng.standard_normal((4, 2))),
                         ("bias", rng.standard_normal(2))])]


def test_loader_assigns_by_order(tmp_path):
    groups = _mlp_groups(np.random.default_rng(0))
    _write_keras2_h5(tmp_path / "w.h5", groups)
    model = _mlp()
    load_keras2_h5(model, str(tmp_path / "w.h5"))
    np.testing.assert_allclose(np.asarray(model.layers[2].bias), groups[2][1][1][1], rtol=1e-6)


def test_loader_errors_name_the_first_mismatch(tmp_path, fixtures_dir):
    rng = np.random.default_rng(0)
    groups = _mlp_groups(rng)
    bad_shape = groups[:2] + [("dense_1", [("kernel", rng.standard_normal((4, 3))),
                                           ("bias", rng.standard_normal(3))])]
    _write_keras2_h5(tmp_path / "shape.h5", bad_shape)
    with pytest.raises(ReferenceWeightError, match=r"'second'/kernel: expected \(4, 2\).*\(4, 3\)"):
        load_keras2_h5(_mlp(), str(tmp_path / "shape.h5"))
    _write_keras2_h5(tmp_path / "short.h5", groups[:2])
    with pytest.raises(ReferenceWeightError, match="missing weights.*'second'"):
        load_keras2_h5(_mlp(), str(tmp_path / "short.h5"))
    _write_keras2_h5(tmp_path / "long.h5", groups + [("dense_2", [("kernel", np.ones((2, 2)))])])
    with pytest.raises(ReferenceWeightError, match="surplus group #2 'dense_2'"):
        load_keras2_h5(_mlp(), str(tmp_path / "long.h5"))
    model = _mlp()
    before = [np.asarray(w).copy() for w in model.weights]
    with pytest.raises(ReferenceWeightError):
        load_keras2_h5(model, str(tmp_path / "shape.h5"))
    for w, b in zip(model.weights, before):  # nothing assigned on failure
        np.testing.assert_array_equal(np.asarray(w), b)
    # A real fixture into the wrong variant's network.
    with pytest.raises(ReferenceWeightError, match="expected"):
        load_keras2_h5(build_encoder(get_preset("paper22")), str(fixtures_dir / "v44" / "enc.h5"))
