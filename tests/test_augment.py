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
