"""Latent GAN networks: shapes, parameter counts, conditioning, blocks, reference parity."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from musika_tf import conditioning
from musika_tf import coordinates as C
from musika_tf import gan
from musika_tf.config import PRESETS, get_preset
from tests.conftest import reference_fixtures, reference_tolerance


def _params(model) -> int:
    return int(model.count_params())


def _inputs(preset, batch: int = 2, seed: int = 0):
    """Generator coordinates (+ condition channel) and a critic input window for `preset`."""
    coords = C.inference_coordinates(preset, batch, 1.5, seed=seed)
    latents = np.random.default_rng(seed).uniform(-1, 1, (batch, 1, preset.gan.latlen,
                                                          preset.stereo_latent_dim)).astype(np.float32)
    if gan.condition_channels(preset):
        values = np.linspace(0, 1, batch * preset.gan.latlen, dtype=np.float32).reshape(batch, -1)
        kind = conditioning.network_cond(preset)
        curve = conditioning.network_condition(
            kind, values, None if kind == "density" else np.cumsum(values, axis=-1) * 0.1)
        coords = gan.append_condition(coords, curve).numpy()
        latents = gan.append_condition(latents, curve).numpy()
    return coords, latents


# ---------------------------------------------------------------------------------------------
# Parameter counts (reference section 10)


@pytest.mark.parametrize("overrides, gen_count, critic_count", [
    ({}, 15_499_530, 20_786_689),
    ({"small": True, "latlen": 128}, 12_009_738, 16_770_817),
])
def test_v44_parameter_counts(overrides, gen_count, critic_count):
    preset = get_preset("musika44", **overrides)
    assert _params(gan.build_generator(preset)) == gen_count
    assert _params(gan.build_critic(preset)) == critic_count


def test_v22_parameter_counts():
    preset = get_preset("paper22", critic_reconstruction=True)
    gen, critic, rec = gan.build_gan(preset)
    assert _params(gen) == 14_059_018  # the 128-channel input the reference sampler feeds
    assert _params(critic) == 15_854_849
    trainable = sum(int(np.prod(w.shape)) for w in critic.trainable_weights)
    assert trainable == 15_822_081  # the 1x1 projection is frozen
    assert critic.get_layer("proj").trainable is False
    assert _params(rec) == 4_745_408
    # a one-channel conditional generator has the reference's 129-channel count
    assert _params(gan.build_generator(get_preset("paper22", cond="density"))) == 14_071_946


# ---------------------------------------------------------------------------------------------
# Shapes for every preset, with and without conditioning


@pytest.mark.parametrize("cond", ["none", "density"])
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_shapes_every_preset(name, cond):
    preset = get_preset(name, cond=cond)
    gen, critic, rec = gan.build_gan(preset.with_overrides(critic_reconstruction=True))
    coords, latents = _inputs(preset)
    latlen, stereo = preset.gan.latlen, preset.stereo_latent_dim
    assert coords.shape == (2, latlen, 2 * preset.gan.coorddepth + gan.condition_channels(preset))
    assert gan.condition_channels(preset) == {"none": 0, "density": 1, "density_phase": 3}[
        conditioning.network_cond(preset)]
    out = gen(coords, training=False)
    assert out.shape == (2, 1, latlen, stereo) and np.isfinite(out.numpy()).all()
    logit, feats = critic(latents, training=False)
    assert logit.shape == (2, 1) and np.isfinite(logit.numpy()).all()
    assert rec(feats).shape == (2, 1, latlen, stereo)
    plain = gan.build_critic(preset)  # v44 without the reconstruction option: logit only
    assert (len(plain.outputs) == 2) == (preset.ae.variant == "v22")


def test_tiny_builds_and_runs():
    preset = get_preset("tiny")
    gen, critic, _ = gan.build_gan(preset)
    coords, latents = _inputs(preset, batch=1)
    assert gen(coords).shape == (1, 1, 128, 32)
    assert critic(latents).shape == (1, 1)


# ---------------------------------------------------------------------------------------------
# Conditioning


def _logit(critic, x) -> np.ndarray:
    out = critic(x, training=False)
    return np.asarray(out[0] if isinstance(out, (list, tuple)) else out)


@pytest.mark.parametrize("name", ["tiny", "paper22"])
def test_output_follows_the_condition(name):
    preset = get_preset(name, cond="density")
    gen, critic = gan.build_generator(preset), gan.build_critic(preset)
    coords = C.inference_coordinates(preset, 1, 1.0, seed=4)
    latents = np.random.default_rng(1).uniform(
        -1, 1, (1, 1, preset.gan.latlen, preset.stereo_latent_dim)).astype(np.float32)
    ramp = np.linspace(0, 1, preset.gan.latlen, dtype=np.float32)[None]

    def run(curve):
        return (gen(gan.append_condition(coords, curve), training=False).numpy(),
                _logit(critic, gan.append_condition(latents, curve)))

    first, again, flipped = run(ramp), run(ramp), run(1 - ramp)
    for a, b, c in zip(first, again, flipped):
        np.testing.assert_array_equal(a, b)  # noise weights start at 0: deterministic
        assert np.abs(a - c).max() > 1e-4


def test_append_condition_is_the_last_channel():
    x = np.zeros((2, 1, 8, 3), np.float32)
    curve = np.arange(16, dtype=np.float32).reshape(2, 8)
    y = gan.append_condition(x, curve).numpy()
    assert y.shape == (2, 1, 8, 4)
    np.testing.assert_array_equal(y[:, 0, :, -1], curve)
    assert gan.append_condition(x[:, 0], curve).shape == (2, 8, 4)


# ---------------------------------------------------------------------------------------------
# Blocks


def test_pixel_shuffle_interleaves_channel_pairs():
    x = np.arange(2 * 3 * 6, dtype=np.float32).reshape(2, 1, 3, 6)
    y = gan.pixel_shuffle(x).numpy()
    assert y.shape == (2, 1, 6, 3)
    for t in range(3):
        for f in range(2):
            np.testing.assert_array_equal(y[:, 0, 2 * t + f], x[:, 0, t, f::2])


def test_modulation_is_scale_only_over_time():
    import keras

    x = keras.Input((1, 16, 4))
    emb = keras.Input((1, 16, 3))
    model = keras.Model([x, emb], gan.modulate(x, emb, 1e-5, name="ai"))
    rng = np.random.default_rng(0)
    xv, ev = rng.normal(2.0, 3.0, (2, 1, 16, 4)), rng.normal(size=(2, 1, 16, 3))
    kernel, bias = model.get_layer("ai").get_weights()
    bias[:] = rng.normal(size=bias.shape)
    model.get_layer("ai").set_weights([kernel, bias])
    scale = ev @ kernel[0, 0] + bias
    expected = xv / (xv.std(axis=2, keepdims=True) + 1e-5) * scale  # no mean subtraction, no shift
    np.testing.assert_allclose(model([xv, ev]).numpy(), expected, rtol=1e-4, atol=1e-5)


def test_each_layer_has_its_own_initial_kernel():
    gen = gan.build_generator(get_preset("tiny"))
    a, b = gen.get_layer("2ai").get_weights()[0], gen.get_layer("3ai").get_weights()[0]
    assert a.shape == b.shape and not np.allclose(a, b)


def test_halves_are_generated_independently():
    """FOLD(2): the first half-window's output does not depend on the second half's coordinates."""
    preset = get_preset("tiny")
    gen = gan.build_generator(preset)
    coords = C.inference_coordinates(preset, 1, 1.0, seed=2)
    other = coords.copy()
    other[:, 64:] = C.inference_coordinates(preset, 1, 1.0, seed=3)[:, 64:]
    a, b = gen(coords).numpy(), gen(other).numpy()
    np.testing.assert_array_equal(a[:, :, :64], b[:, :, :64])
    assert not np.allclose(a[:, :, 64:], b[:, :, 64:])


# ---------------------------------------------------------------------------------------------
# Reference fixtures


def _h5_weighted_layers(path) -> list[tuple[str, list[tuple]]]:
    """(group name, weight shapes) of the weight-bearing layers of a Keras-2 .h5, in file order."""
    with h5py.File(path, "r") as f:
        out = []
        for name in f.attrs["layer_names"]:
            name = name.decode() if isinstance(name, bytes) else name
            weights = [w.decode() if isinstance(w, bytes) else w for w in f[name].attrs["weight_names"]]
            if weights:
                out.append((name, [tuple(f[name][w].shape) for w in weights]))
        return out


def _our_weighted_layers(model) -> list[tuple[str, list[tuple]]]:
    return [(layer.name, [tuple(w.shape) for w in layer.weights]) for layer in model.layers if layer.weights]


def _fixture_presets():
    return {"v44": get_preset("musika44", base_channels=32), "v22": get_preset("paper22")}


@pytest.mark.parametrize("variant, stem", [("v44", "gen_ema"), ("v44", "critic"), ("v22", "gen_ema")])
def test_layer_order_matches_reference_files(variant, stem):
    preset = _fixture_presets()[variant]
    model = (gan.build_generator if stem == "gen_ema" else gan.build_critic)(preset)
    ref = _h5_weighted_layers(reference_fixtures() / variant / f"{stem}.h5")
    ours = _our_weighted_layers(model)
    assert [s for _, s in ours] == [s for _, s in ref]
    if variant == "v44":  # v44 files carry the reference's meaningful layer names: ours are the same
        assert [n for n, _ in ours] == [n for n, _ in ref]


@pytest.mark.parametrize("variant", ["v44", "v22"])
def test_generator_reproduces_reference(variant):
    from musika_tf.reference import load_keras2_h5

    folder = reference_fixtures() / variant
    io = np.load(folder / "io.npz")
    gen = gan.build_generator(_fixture_presets()[variant])
    load_keras2_h5(gen, str(folder / "gen_ema.h5"))
    out = gen(io["gen_in"], training=False).numpy()
    assert out.shape == io["gen_out"].shape
    err = np.abs(out - io["gen_out"]).max()
    assert err <= reference_tolerance(variant, "gen_out"), f"{variant} gen_out max abs err {err}"


def test_v44_critic_reproduces_reference():
    from musika_tf.reference import load_keras2_h5

    folder = reference_fixtures() / "v44"
    io = np.load(folder / "io.npz")
    critic = gan.build_critic(_fixture_presets()["v44"])
    load_keras2_h5(critic, str(folder / "critic.h5"))
    out = critic(io["critic_in"], training=False).numpy()
    err = np.abs(out - io["critic_out"]).max()
    assert err <= reference_tolerance("v44", "critic_out"), f"critic_out max abs err {err}"


# ---------------------------------------------------------------------------------------------
# Mixed precision numerics


def _half_model(build):
    import keras

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        return build()
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_modulation_std_does_not_overflow_in_float16():
    """Activations above 256 square past float16's range; the std is taken in float32."""
    import keras

    def build():
        x, emb = keras.Input((1, 16, 4)), keras.Input((1, 16, 3))
        return keras.Model([x, emb], gan.modulate(x, emb, 1e-5, name="m"))

    half = _half_model(build)
    full = build()
    full.set_weights(half.get_weights())
    rng = np.random.default_rng(0)
    x = (2000.0 * rng.standard_normal((2, 1, 16, 4))).astype(np.float32)
    emb = rng.standard_normal((2, 1, 16, 3)).astype(np.float32)
    out = np.asarray(half([x, emb]), np.float32)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, np.asarray(full([x, emb])), rtol=2e-2, atol=2e-2)


def test_r1_penalty_does_not_underflow_in_float16():
    """Input gradients of 1e-8 (below float16's smallest subnormal, 6e-8) that arise inside a
    float16 critic: weights of 1e-4, then a float32 factor 1e-4 after the output cast."""
    import keras
    import tensorflow as tf

    from musika_tf import losses

    def build():
        x = keras.Input((1, 8, 4))
        y = keras.layers.Dense(1, kernel_initializer=keras.initializers.Constant(1e-4),
                               use_bias=False)(keras.layers.Flatten()(x))
        return keras.Model(x, keras.ops.cast(y, "float32") * 1e-4)

    half, full = _half_model(build), build()
    real = tf.random.stateless_normal((4, 1, 8, 4), (1, 2))
    expected = float(losses.r1_penalty(full, real))
    assert expected == pytest.approx(32 * (1e-8) ** 2, rel=1e-3, abs=0)
    assert float(losses.r1_penalty(half, real)) == pytest.approx(expected, rel=2e-2, abs=0)
