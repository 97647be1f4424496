"""Autoencoder networks and their building blocks: shapes, parameter counts, batching, noise."""

from __future__ import annotations


import keras
import numpy as np
import pytest
import tensorflow as tf

from musika_tf.autoencoder import (
    Autoencoder, build_decoder, build_decoder2, build_encoder, build_encoder2, decode_sequence,
    latents_per_chunk, split_stereo_latents, stereo_latents,
)
from musika_tf.config import PRESETS, get_preset
from musika_tf.layers import (
    ConvSN2D, DenseSN, NoiseInjection, ae_conv, fold, noise_layers, reseed_noise,
    spectral_normalize, unfold,
)

# Reference section 10 (instantiated reference definitions, default settings).
REFERENCE_PARAMS = {
    "musika44": {"enc": 4_790_336, "dec": 12_673_291, "enc2": 3_984_960, "dec2": 6_639_303},
    "paper22": {"enc": 2_066_880, "dec": 7_409_226, "enc2": 4_539_968, "dec2": 6_683_781},
}
BUILDERS = {"enc": build_encoder, "dec": build_decoder, "enc2": build_encoder2,
            "dec2": build_decoder2}


def _rng(seed=0):
    return np.random.default_rng(seed)


def _set_noise(model, value: float) -> None:
    for layer in noise_layers(model):
        layer.noise_weight.assign([value])


# ---------------------------------------------------------------------------------------------
# Building blocks


def test_fold_unfold_index_convention():
    x = np.arange(3 * 1 * 8 * 2, dtype="float32").reshape(3, 1, 8, 2)
    folded = np.asarray(fold(x, 4))
    assert folded.shape == (12, 1, 2, 2)
    for piece in range(4):
        for b in range(3):  # batch index = piece * B + b
            np.testing.assert_array_equal(folded[piece * 3 + b], x[b, :, 2 * piece:2 * piece + 2])
    np.testing.assert_array_equal(np.asarray(unfold(fold(x, 4), 4)), x)
    inp = keras.Input((1, 8, 2))  # symbolic tensors too, with a free batch size
    assert unfold(fold(inp, 2), 2).shape == (None, 1, 8, 2)


def test_noise_injection_weights_and_noise():
    inp = keras.Input((1, 6, 4))
    model = keras.Model(inp, NoiseInjection(seed=1)(inp))
    assert model.count_params() == 1  # the RNG state is not a weight
    assert [w.name for w in model.weights] == ["noise_weight"]
    x = _rng().standard_normal((2, 1, 6, 4)).astype("float32")
    np.testing.assert_array_equal(np.asarray(model(x)), x)  # w initialised to 0
    _set_noise(model, 1.0)
    first, second = np.asarray(model(x)) - x, np.asarray(model(x)) - x
    assert not np.allclose(first, second)  # fresh noise on every call
    np.testing.assert_allclose(first, np.broadcast_to(first[..., :1], first.shape), atol=1e-6)
    reseed_noise(model, 7)
    a = np.asarray(model(x))
    reseed_noise(model, 7)
    np.testing.assert_array_equal(np.asarray(model(x)), a)


def test_noise_is_bit_identical_after_savedmodel_reload(tmp_path):
    preset = get_preset("tiny")
    model = build_decoder2(preset)
    _set_noise(model, 0.5)
    spec = [tf.TensorSpec((None,) + model.input_shape[1:], tf.float32), tf.TensorSpec((), tf.int64)]

    def decode(x, seed):
        reseed_noise(model, seed)
        return model(x, training=False)

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("decode", decode, input_signature=spec)
    archive.write_out(str(tmp_path / "dec2"), verbose=False)
    reloaded = tf.saved_model.load(str(tmp_path / "dec2"))
    x = _rng().uniform(-1, 1, (2, 1, 4, preset.ae.latent_dim)).astype("float32")
    seed = tf.constant(11, tf.int64)
    live = np.asarray(tf.function(decode, input_signature=spec)(x, seed))
    np.testing.assert_array_equal(np.asarray(reloaded.decode(x, seed)), live)
    assert not np.array_equal(np.asarray(reloaded.decode(x, seed + 1)), live)


@pytest.mark.parametrize("kernel,stride,padding,transposed,frames", [
    (3, 1, "same", False, 16), (3, 2, "same", False, 8), (3, 2, "valid", False, 7),
    (4, 2, "same", True, 32), (2, 1, "valid", False, 15),
])
def test_ae_conv_time_lengths(kernel, stride, padding, transposed, frames):
    inp = keras.Input((1, 16, 5))
    out = ae_conv(inp, 6, kernel, stride, padding=padding, transposed=transposed,
                  noise=True, batch_norm=True)
    assert out.shape == (None, 1, frames, 6)
    model = keras.Model(inp, out)
    kinds = [type(layer).__name__ for layer in model.layers if layer.weights]
    assert kinds[1:] == ["NoiseInjection", "BatchNormalization"]  # the reference's weight order


def test_spectral_norm_layers():
    w = _rng().standard_normal((12, 5)).astype("float32")
    u = _rng(1).standard_normal((1, 5)).astype("float32")
    for _ in range(60):
        normalised, u = spectral_normalize(w, u)
    assert abs(np.linalg.svd(np.asarray(normalised), compute_uv=False)[0] - 1.0) < 1e-4

    conv, dense = ConvSN2D(4, (1, 3), padding="same"), DenseSN(3)
    x = _rng().standard_normal((2, 1, 8, 6)).astype("float32")
    assert conv(x).shape == (2, 1, 8, 4) and dense(x[:, 0, 0]).shape == (2, 3)
    assert [w.name for w in conv.weights] == ["kernel", "bias", "sn_u"]
    u_before = np.asarray(conv.sn_u).copy()
    conv(x, training=False)
    np.testing.assert_array_equal(np.asarray(conv.sn_u), u_before)  # inference leaves u alone
    conv(x, training=True)
    assert not np.allclose(np.asarray(conv.sn_u), u_before)


# ---------------------------------------------------------------------------------------------
# Networks


def _expected_shapes(preset):
    """(input, output) shapes per network, from the reference tables (batch dims omitted)."""
    ae, bins = preset.ae, preset.audio.bins
    half, groups = ae.chunk_frames // 2, ae.chunk_frames // ae.frames_per_latent
    return {
        "enc": ((bins, ae.chunk_frames, 1), (1, half, ae.latent1_dim)),
        "dec": ((1, half, ae.latent1_dim), [(ae.chunk_frames, bins)] * 2),
        "enc2": ((1, ae.chunk_frames, ae.latent1_dim), (1, groups // 2, ae.latent_dim)),
        "dec2": ((1, groups // 2, ae.latent_dim), (1, ae.chunk_frames, ae.latent1_dim)),
    }


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_network_shapes_every_preset(name):
    preset = get_preset(name)
    for stem, (in_shape, out_shape) in _expected_shapes(preset).items():
        model = BUILDERS[stem](preset)
        free = stem in ("dec", "dec2")  # decoders: time axis left free (whole-sequence decoding)
        assert model.input_shape[1:] == ((1, None, in_shape[2]) if free else in_shape), stem
        x = _rng().uniform(-1, 1, (2,) + in_shape).astype("float32")
        outs = model(x, training=False)
        fold_factor = 2 if stem in ("enc", "enc2") else 1  # ENC/ENC2 return FOLD(2) outputs
        unfold_factor = 2 if stem in ("dec", "dec2") else 1  # DEC/DEC2 take FOLD(2) inputs
        for out, shape in zip(outs if isinstance(outs, list) else [outs],
                              out_shape if isinstance(out_shape, list) else [out_shape]):
            assert tuple(out.shape) == (2 * fold_factor // unfold_factor,) + shape, stem
            assert out.dtype == "float32" and np.all(np.isfinite(np.asarray(out)))


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_parameter_counts_match_reference(name):
    preset = get_preset(name)
    for stem, expected in REFERENCE_PARAMS[name].items():
        assert BUILDERS[stem](preset).count_params() == expected, stem


def test_second_level_layout_follows_frames_per_latent():
    piano = get_preset("piano")  # v22 first level, 16-frame second level
    assert piano.ae.variant == "v22" and latents_per_chunk(piano) == 8
    enc2 = build_encoder2(piano)
    assert enc2.output_shape == (None, 1, 4, piano.ae.latent_dim)
    assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in enc2.layers)
    with pytest.raises(ValueError, match="widths"):
        build_encoder2(get_preset("paper22").with_overrides(frames_per_latent=16))
    with pytest.raises(ValueError, match="frames_per_latent=4"):
        build_decoder2(get_preset("tiny").with_overrides(frames_per_latent=4))


def test_tiny_is_small():
    ae = Autoencoder.build(get_preset("tiny"))
    assert sum(m.count_params() for m in ae.models.values()) < 500_000


# ---------------------------------------------------------------------------------------------
# Whole-signal paths


@pytest.fixture(scope="module")
def tiny_ae():
    keras.utils.set_random_seed(0)
    return Autoencoder.build(get_preset("tiny"), batch_size=2)


def test_encode_frames_shapes_and_batch_invariance(tiny_ae):
    preset = tiny_ae.preset
    chunk, fpl = preset.ae.chunk_frames, preset.ae.frames_per_latent
    frames = 2 * chunk + 3 * fpl + 5  # 3 chunks, the last one partial: 2 mini-batches of 2 and 1
    spec = _rng().uniform(-1, 1, (2, frames, preset.audio.bins)).astype("float32")
    latents = tiny_ae.encode_frames(spec)
    assert latents.shape == (2, frames // fpl, preset.ae.latent_dim)
    whole = Autoencoder(preset, *tiny_ae.models.values(), batch_size=64)
    np.testing.assert_allclose(whole.encode_frames(spec), latents, atol=1e-6)
    # Frame-wise ENC and group-wise ENC2: the kept latents do not depend on what follows.
    head = tiny_ae.encode_frames(spec[:, :chunk + fpl])
    np.testing.assert_allclose(head, latents[:, :chunk // fpl + 1], atol=1e-6)


def test_decode_latents_shapes_and_no_dropped_batch(tiny_ae):
    preset = tiny_ae.preset
    _set_noise(tiny_ae.decoder, 0.0)
    _set_noise(tiny_ae.decoder2, 0.0)
    per_chunk = latents_per_chunk(preset)
    length = 2 * per_chunk + 1  # 3 chunks with bs 2: the reference's ((n-2)//bs)+1 would drop one
    latents = _rng().uniform(-1, 1, (2, length, preset.ae.latent_dim)).astype("float32")
    mag, phase = tiny_ae.decode_latents(latents)
    frames = length * preset.ae.frames_per_latent
    assert mag.shape == phase.shape == (2, frames, preset.audio.bins)
    assert np.abs(mag).max() <= 1.0 and np.abs(phase).max() <= 1.0
    whole = Autoencoder(preset, *tiny_ae.models.values(), batch_size=64)
    mag64, phase64 = whole.decode_latents(latents)
    np.testing.assert_allclose(mag, mag64, atol=1e-6)
    np.testing.assert_allclose(phase, phase64, atol=1e-6)


def test_decode_latents_seeded_noise(tiny_ae):
    preset = tiny_ae.preset
    latents = _rng().uniform(-1, 1, (2, latents_per_chunk(preset), preset.ae.latent_dim))
    _set_noise(tiny_ae.decoder, 0.3)
    _set_noise(tiny_ae.decoder2, 0.3)
    try:
        a, _ = tiny_ae.decode_latents(latents, seed=5)
        b, _ = tiny_ae.decode_latents(latents, seed=5)
        c, _ = tiny_ae.decode_latents(latents, seed=6)
    finally:
        _set_noise(tiny_ae.decoder, 0.0)
        _set_noise(tiny_ae.decoder2, 0.0)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_stereo_latent_layout():
    per_channel = _rng().standard_normal((2, 5, 3))
    stereo = stereo_latents(per_channel)
    np.testing.assert_array_equal(stereo[:, :3], per_channel[0])
    np.testing.assert_array_equal(stereo[:, 3:], per_channel[1])
    np.testing.assert_array_equal(split_stereo_latents(stereo), per_channel)


def test_mixed_precision_outputs_float32():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        ae = Autoencoder.build(get_preset("tiny"))
        preset = ae.preset
        latents = _rng().uniform(-1, 1, (2, latents_per_chunk(preset), preset.ae.latent_dim))
        mag, _ = ae.decode_latents(latents)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert mag.dtype == np.float32 and np.all(np.isfinite(mag))


def test_sequence_decoding_removes_block_independence(tiny_ae):
    """``decode_context``: DEC2 and DEC run over whole sequences. Frames away from the ends equal
    those of a longer sequence around them (context latents decoded, then trimmed), while chunk
    decoding makes the two halves of a chunk boundary independent of each other."""
    preset = tiny_ae.preset
    _set_noise(tiny_ae.decoder, 0.0)
    _set_noise(tiny_ae.decoder2, 0.0)
    per_chunk = latents_per_chunk(preset)
    latents = _rng().uniform(-1, 1, (2, 4 * per_chunk, preset.ae.latent_dim)).astype("float32")
    seq = Autoencoder(preset.with_overrides(decode_context=2), *tiny_ae.models.values())
    mag, phase = seq.decode_latents(latents)
    frames = latents.shape[1] * preset.ae.frames_per_latent
    assert mag.shape == phase.shape == (2, frames, preset.audio.bins)
    a, b = per_chunk, 2 * per_chunk  # decode latents a..b with 8 latents of context either side
    trimmed, _ = decode_sequence(preset, seq.decoder2, seq.decoder,
                                 tf.constant(latents[:, a - 8:b + 8]), trim=(8, 8))
    fpl = preset.ae.frames_per_latent
    np.testing.assert_allclose(trimmed.numpy(), mag[:, a * fpl:b * fpl], atol=1e-5)
    # Chunk decoding: the first chunk's frames ignore the second chunk; sequence decoding does not.
    changed = latents.copy()
    changed[:, per_chunk:] = 0.0
    first = slice(0, per_chunk * fpl)
    np.testing.assert_allclose(tiny_ae.decode_latents(changed)[0][:, first],
                               tiny_ae.decode_latents(latents)[0][:, first], atol=1e-6)
    assert np.abs(seq.decode_latents(changed)[0][:, first] - mag[:, first]).max() > 1e-4
    # One channel (odd row count) decodes like the same channel in a pair.
    np.testing.assert_allclose(seq.decode_latents(latents[:1])[0], mag[:1], atol=1e-5)
    # Level 1 alone: any frame count (padded internally); away from the cut end, the same frames.
    latent1 = seq.decode_level2(latents)
    short, _ = seq.decode_level1(latent1[:, :frames - 5])
    assert short.shape == (2, frames - 5, preset.audio.bins)
    np.testing.assert_allclose(short[:, :frames - 128], mag[:, :frames - 128], atol=1e-5)
