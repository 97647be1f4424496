"""Differentiable augmentation of the latent critic's input (DiffAugment, Zhao et al. 2020).

On a small data set the critic learns the training windows themselves: it then scores held-out real
windows between training windows and generated ones, and the generator is pushed towards the
training windows rather than towards the music. DiffAugment applies the same random, differentiable
transformations to every window the critic sees, real and generated alike (each window its own
draw), so the critic cannot tell the two sets apart by the transformation, and its input is never
exactly a training window. Two transformations of a ``[B, 1, T, C]`` critic input (latents with the
condition channels appended, so both move together), both along time:

- *translation*: shift by a whole number of latents in ``[-round(r T), round(r T)]``, zeros shifted in
  (``gan.critic_translation`` = r);
- *cutout*: zero one span of ``round(c T)`` latents at a random position (``gan.critic_cutout`` = c).

The draws are made on the host (`draw`), from the batch's own random stream, so a resumed run sees
the same augmentations as an uninterrupted one; `apply` is the graph part.

Join-position crop (``gan.critic_crop_halves`` = n > 0), before the two above: the generator makes
n half-windows more than a window (`musika_tf.gan.generate_halves`), the real crop is as long, and
the critic sees the ``latlen`` latents from a random offset in ``[0, n * latlen/2]`` of each
(`draw_crop_offsets`, `crop`; the same offset for a real sequence, the generated one and their
conditions). Translation shifts zeros in and so hides the window's edges; the crop moves the
window over real and generated content alike, and the joins between the generator's half-windows,
the seams of every generated piece, fall anywhere in the critic's input instead of at latlen/2.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def enabled(gan_config) -> bool:
    """Whether the preset augments the critic's input at all."""
    return gan_config.critic_translation > 0 or gan_config.critic_cutout > 0


def max_shift(frames: int, translation: float) -> int:
    """Largest shift in latents for a window of `frames` latents."""
    return int(round(translation * frames))


def cutout_length(frames: int, cutout: float) -> int:
    """Length in latents of the zeroed span."""
    return int(round(cutout * frames))


def draw(rng: np.random.Generator, batch: int, frames: int, translation: float,
         cutout: float) -> np.ndarray:
    """Per-window parameters ``[batch, 3]`` int32: (shift, cutout start, cutout end), in latents;
    the cut span is ``[start, end)``."""
    limit = max_shift(frames, translation)
    length = cutout_length(frames, cutout)
    shifts = rng.integers(-limit, limit + 1, size=batch)
    starts = rng.integers(0, frames - length + 1, size=batch)
    return np.stack([shifts, starts, starts + length], axis=1).astype(np.int32)


def apply(x: tf.Tensor, params: tf.Tensor) -> tf.Tensor:
    """Translate, then cut out, each window of `x` ``[B, 1, T, C]`` by its row of `params` ``[B, 3]``
    (from `draw`); differentiable in `x`, same shape and dtype."""
    params = tf.cast(params, tf.int32)
    frames = tf.shape(x)[2]
    time = tf.range(frames)[tf.newaxis, :]  # [1, T]
    source = time - params[:, :1]  # [B, T]: output latent t comes from t - shift
    inside = (source >= 0) & (source < frames)
    moved = tf.gather(x, tf.clip_by_value(source, 0, frames - 1), axis=2, batch_dims=1)
    cut = (time >= params[:, 1:2]) & (time < params[:, 2:3])
    keep = tf.cast(inside & ~cut, x.dtype)[:, tf.newaxis, :, tf.newaxis]
    return moved * keep


def crop_length(gan_config) -> int:
    """Latents of the real and generated sequences the critic's windows are cropped from."""
    return gan_config.latlen + gan_config.critic_crop_halves * gan_config.latlen // 2


def draw_crop_offsets(rng: np.random.Generator, batch: int, gan_config) -> np.ndarray:
    """Per-example crop offsets ``[batch]`` int32, uniform in ``[0, crop_length - latlen]``."""
    return rng.integers(0, crop_length(gan_config) - gan_config.latlen + 1, size=batch).astype(np.int32)


def crop(x: tf.Tensor, offsets: tf.Tensor, frames: int) -> tf.Tensor:
    """``frames`` consecutive latents of each sequence of `x` ``[B, 1, T, C]`` (or ``[B, T, C]``)
    from its row of `offsets` ``[B]``; differentiable in `x`."""
    axis = 2 if len(x.shape) == 4 else 1
    index = tf.cast(offsets, tf.int32)[:, tf.newaxis] + tf.range(frames)[tf.newaxis, :]  # [B, frames]
    return tf.gather(x, index, axis=axis, batch_dims=1)
