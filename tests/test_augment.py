"""DiffAugment of the latent critic's input: what each transformation does, its gradient, and
that a training step draws and uses it reproducibly."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from musika_tf import config
from musika_tf.training import augment
from musika_tf.training import gan as G
from musika_tf.training import loop
from tests.test_gan_training import TINY, TINY22, write_store

AUGMENTED = TINY.with_overrides(critic_translation=0.125, critic_cutout=0.25)


def _windows(batch=3, frames=16, channels=2) -> np.ndarray:
    values = np.arange(1, batch * frames * channels + 1, dtype=np.float32)
    return values.reshape(batch, 1, frames, channels)


def test_translation_shifts_each_window_by_its_own_amount_with_zeros_shifted_in():
    x = _windows()
    params = np.array([[2, 0, 0], [-3, 0, 0], [0, 0, 0]], np.int32)
    out = augment.apply(tf.constant(x), params).numpy()
    np.testing.assert_array_equal(out[0, :, 2:], x[0, :, :-2])
    np.testing.assert_array_equal(out[0, :, :2], 0)
    np.testing.assert_array_equal(out[1, :, :-3], x[1, :, 3:])
    np.testing.assert_array_equal(out[1, :, -3:], 0)
    np.testing.assert_array_equal(out[2], x[2])


def test_cutout_zeros_its_span_after_the_shift():
    x = _windows(batch=2)
    params = np.array([[0, 5, 9], [1, 0, 4]], np.int32)  # 4 of 16 latents
    out = augment.apply(tf.constant(x), params).numpy()
    kept = np.ones(16, bool)
    kept[5:9] = False
    np.testing.assert_array_equal(out[0, :, ~kept], 0)
    np.testing.assert_array_equal(out[0, :, kept], x[0, :, kept])
    np.testing.assert_array_equal(out[1, :, :4], 0)  # latent 0 shifted in, 1..3 from x[0..2] cut
    np.testing.assert_array_equal(out[1, :, 4:], x[1, :, 3:-1])


def test_the_gradient_flows_to_every_kept_latent_and_to_no_other():
    x = tf.constant(_windows(batch=1))
    params = np.array([[2, 8, 12]], np.int32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(augment.apply(x, params))
    grad = tape.gradient(total, x).numpy()[0, 0, :, 0]
    # output t takes x[t - 2]; outputs 8..11 are cut, so x[6..9] and the shifted-out x[14..15] get 0
    expected = np.ones(16)
    expected[[6, 7, 8, 9, 14, 15]] = 0
    np.testing.assert_array_equal(grad, expected)


def test_draws_stay_inside_their_ranges_and_cover_them():
    rng = np.random.default_rng(0)
    params = augment.draw(rng, 4000, frames=128, translation=0.125, cutout=0.25)
    assert params.shape == (4000, 3) and params.dtype == np.int32
    assert params[:, 0].min() == -16 and params[:, 0].max() == 16
    assert params[:, 1].min() == 0 and params[:, 1].max() == 128 - 32
    np.testing.assert_array_equal(params[:, 2] - params[:, 1], 32)  # round(0.25 * 128) latents


def test_batches_carry_augmentation_only_when_enabled_and_it_is_seeded(tmp_path):
    store = write_store(tmp_path / "store", TINY, chunks=2)
    crops = G.LatentCrops.from_store(store, TINY)
    assert "aug_real" not in G.make_batch(TINY, crops, 3)
    a, b = G.make_batch(AUGMENTED, crops, 3), G.make_batch(AUGMENTED, crops, 3)
    np.testing.assert_array_equal(a["aug_real"], b["aug_real"])
    np.testing.assert_array_equal(a["aug_fake"], b["aug_fake"])
    assert not np.array_equal(a["aug_real"], a["aug_fake"])
    plain = G.make_batch(TINY, crops, 3)  # switching augmentation on changes no other draw
    for key in plain:
        np.testing.assert_array_equal(a[key], plain[key])


def test_an_augmented_step_uses_its_draws(tmp_path):
    store = write_store(tmp_path / "store", TINY, chunks=2)
    trainer = G.GANTrainer(AUGMENTED, str(tmp_path / "run"), store)
    batch = G.make_batch(AUGMENTED, trainer.crops, 0)
    real = tf.expand_dims(tf.constant(batch["real"]), 1)
    plain = trainer._critic(real, None).numpy()
    same = trainer._critic(real, None, batch["aug_real"]).numpy()
    again = trainer._critic(real, None, batch["aug_real"]).numpy()
    np.testing.assert_array_equal(same, again)
    assert not np.allclose(plain, same)
    logs = loop.fit(trainer, steps=2, progress=False, preview=False)
    assert all(np.isfinite(v) for v in logs.values())


def test_augmentation_with_the_reconstruction_head_is_refused(tmp_path):
    preset = TINY22.with_overrides(critic_cutout=0.25)
    store = write_store(tmp_path / "store", preset, chunks=2)
    with pytest.raises(ValueError, match="critic reconstruction head"):
        G.GANTrainer(preset, str(tmp_path / "run"), store)


def test_the_preset_fields_reach_the_command_line():
    import argparse

    parser = argparse.ArgumentParser()
    config.add_preset_arguments(parser)
    args = parser.parse_args(["--preset", "tiny", "--critic-translation", "0.125",
                              "--critic-cutout", "0.25"])
    preset = config.preset_from_args(args)
    assert (preset.gan.critic_translation, preset.gan.critic_cutout) == (0.125, 0.25)


# ---------------------------------------------------------------------------------------------
# Join-position crop (gan.critic_crop_halves)

CROPPED = TINY.with_overrides(critic_crop_halves=1, cond="density")


def test_crop_takes_each_sequence_from_its_own_offset_and_passes_gradients_there_only():
    x = tf.constant(_windows(batch=2, frames=24))
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = augment.crop(x, np.array([0, 8], np.int32), 16)
        total = tf.reduce_sum(out)
    np.testing.assert_array_equal(out.numpy()[0], x.numpy()[0, :, :16])
    np.testing.assert_array_equal(out.numpy()[1], x.numpy()[1, :, 8:])
    grad = tape.gradient(total, x).numpy()[:, 0, :, 0]
    np.testing.assert_array_equal(grad[0], np.r_[np.ones(16), np.zeros(8)])
    np.testing.assert_array_equal(grad[1], np.r_[np.zeros(8), np.ones(16)])
    curves = np.arange(2 * 24 * 3, dtype=np.float32).reshape(2, 24, 3)  # [B, T, K] conditions
    np.testing.assert_array_equal(augment.crop(curves, np.array([3, 5]), 16).numpy()[1],
                                  curves[1, 5:21])


def test_crop_offsets_cover_every_join_position_and_no_more():
    g = CROPPED.gan
    assert augment.crop_length(g) == g.latlen * 3 // 2
    offsets = augment.draw_crop_offsets(np.random.default_rng(0), 4000, g)
    assert offsets.dtype == np.int32
    assert offsets.min() == 0 and offsets.max() == g.latlen // 2
    assert augment.crop_length(TINY.gan) == TINY.gan.latlen  # off: the plain window


def test_longer_training_paths_continue_the_default_one():
    from musika_tf import coordinates

    short = coordinates.training_coordinates(CROPPED, 3, (0, 7))
    for length in (CROPPED.gan.latlen * 3 // 2, CROPPED.gan.latlen * 4):
        long = coordinates.training_coordinates(CROPPED, 3, (0, 7), length)
        assert long.shape == (3, length, short.shape[-1])
        np.testing.assert_array_equal(long[:, :CROPPED.gan.latlen], short)
        steps = np.abs(np.diff(long[..., :CROPPED.gan.coorddepth], axis=1)).max()
        assert steps < 0.2  # one continuous piecewise-linear path, no jump into extra anchors


def test_generated_halves_are_the_generators_own_half_windows():
    from musika_tf import gan
    from musika_tf.layers import reseed_noise

    preset = TINY
    generator = gan.build_generator(preset)
    for layer in generator.layers:  # noise off: the halves must match exactly
        if hasattr(layer, "noise_weight"):
            layer.noise_weight.assign([0.0])
    rng = np.random.default_rng(0)
    half, width = preset.gan.latlen // 2, gan.coordinate_channels(preset)
    coords = rng.standard_normal((2, 3 * half, width)).astype(np.float32)
    reseed_noise(generator, 0)
    out = gan.generate_halves(generator, coords, training=False).numpy()
    assert out.shape == (2, 1, 3 * half, preset.stereo_latent_dim)
    for b in range(2):
        for h in range(3):  # each half as the generator makes it inside a window of its own
            window = np.concatenate([coords[b, h * half:(h + 1) * half]] * 2)[None]
            alone = generator(window, training=False).numpy()[0, 0, :half]
            np.testing.assert_allclose(out[b, 0, h * half:(h + 1) * half], alone, atol=1e-5)


def test_a_cropped_step_trains_and_its_batches_are_seeded(tmp_path):
    store = write_store(tmp_path / "store", CROPPED, chunks=2)
    trainer = G.GANTrainer(CROPPED, str(tmp_path / "run"), store)
    a, b = G.make_batch(CROPPED, trainer.crops, 5), G.make_batch(CROPPED, trainer.crops, 5)
    length = augment.crop_length(CROPPED.gan)
    assert a["real"].shape[1] == a["coords"].shape[1] == a["cond"].shape[1] == length
    np.testing.assert_array_equal(a["crop_offsets"], b["crop_offsets"])
    logs = loop.fit(trainer, steps=2, progress=False, preview=False)
    assert all(np.isfinite(v) for v in logs.values())


def test_an_odd_number_of_half_windows_per_batch_is_refused(tmp_path):
    preset = CROPPED.with_overrides(batch_size=3)
    store = write_store(tmp_path / "store", preset, chunks=2)
    with pytest.raises(ValueError, match="even"):
        G.GANTrainer(preset, str(tmp_path / "run"), store)
