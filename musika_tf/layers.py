"""Building blocks shared by all networks (reference sections 2, 3 and the notation block).

Every network works on channels-last tensors ``[batch, 1, time, channels]`` (a dummy height of 1,
time on the width axis). Contents:

- `fold` / `unfold`: FOLD(n) / UNFOLD(n) of the reference notation (batch index = piece*B + b).
- `NoiseInjection`: ``x + w * n`` with one trainable scalar ``w`` (init 0) and fresh ``n ~ N(0, 1)``
  of shape ``[batch, 1, time, 1]`` on every call, inference included; `reseed_noise` makes the
  noise of a whole model a deterministic function of one integer seed.
- `ae_conv`: the autoencoder conv block, conv/transposed conv -> [noise] -> [BatchNorm] -> swish.
- `ConvSN2D` / `DenseSN`: conv and dense layers with spectral normalisation by power iteration.

Weight-order rule (see `musika_tf.reference`): builders apply these blocks in the functional API so
that the model's flat `model.layers` list holds only leaf layers (no composite layers), in the same
order as the reference's Keras-2 models.
"""

from __future__ import annotations

import contextlib
import threading

import keras
import tensorflow as tf
from keras import ops

__all__ = [
    "fold", "unfold", "NoiseInjection", "reseed_noise", "noise_layers", "replica_batch", "ae_conv",
    "ConvSN2D", "DenseSN", "spectral_normalize",
]


# ---------------------------------------------------------------------------------------------
# FOLD / UNFOLD


def fold(x, n: int, axis: int = 2):
    """FOLD(n): ``[B, H, T, C] -> [n*B, H, T/n, C]``; time piece p of sample b goes to row p*B + b.

    `axis`: the time axis (2; 1 for ``[B, T, C]`` tensors such as DEC's squeezed outputs).
    Works on eager tensors, inside `tf.function`, and on Keras symbolic tensors (functional API).
    """
    if n == 1:
        return x
    return ops.concatenate(ops.split(x, n, axis=axis), axis=0)


def unfold(x, n: int):
    """UNFOLD(n), the exact inverse of `fold`: ``[n*B, H, T, C] -> [B, H, n*T, C]``."""
    if n == 1:
        return x
    return ops.concatenate(ops.split(x, n, axis=0), axis=2)


# ---------------------------------------------------------------------------------------------
# Noise injection


@keras.saving.register_keras_serializable(package="musika_tf")
@contextlib.contextmanager
def dtype_policy(name: str):
    """Build layers under Keras dtype policy `name` (e.g. ``mixed_float16``), then restore the old one."""
    old = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(old)


class NoiseInjection(keras.layers.Layer):
    """``x + w * n``: trainable scalar ``w`` (init 0), ``n ~ N(0, 1)`` of shape ``[B, 1, T, 1]``.

    Input/output ``[B, H, T, C]``; the noise is shared over channels (and drawn per height row).
    Noise is drawn on every call, training or not, from a stateless generator whose state (a
    Keras `SeedGenerator`, int64 ``[2]``) advances by one per call. That state is a variable but
    not a weight: it is excluded from `layer.weights` and `count_params()`, and it is saved and
    restored with the model, so a live model and its SavedModel copy continue the same noise
    sequence. `seed=None` draws the initial seed from Python's `random` (seeded by
    `keras.utils.set_random_seed`); use `reseed_noise` for a deterministic restart. In a
    `tf.distribute` step each replica adds its rows of the noise drawn for the global batch, so
    N replicas add the noise one device would.
    """

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name=f"{self.name}_seed")

    def build(self, input_shape):
        self.noise_weight = self.add_weight(
            shape=(1,), initializer="zeros", trainable=True, name="noise_weight")

    def call(self, x):
        shape = ops.shape(x)
        replica, replicas = _replica()
        if replicas > 1:
            noise = self._replica_noise(shape, replica, replicas)
        else:
            noise = keras.random.normal(  # float32 draws: reduced precision rounds the same noise
                (shape[0], shape[1], shape[2], 1), dtype="float32", seed=self.seed_generator)
        return x + ops.cast(self.noise_weight, x.dtype) * ops.cast(noise, x.dtype)

    def _replica_noise(self, shape, replica, replicas):
        """This replica's rows of the noise one device draws for the global batch. The batch axis
        holds ``pieces`` folded pieces (`fold`: row ``p * B + b``) of the replica's batch
        (`replica_batch`; one piece when unset)."""
        rows = getattr(_REPLICA, "rows", None)
        rows = shape[0] if rows is None else rows
        pieces = shape[0] // rows
        noise = keras.random.normal((shape[0] * replicas, shape[1], shape[2], 1), dtype="float32",
                                    seed=self.seed_generator)
        noise = ops.reshape(noise, (pieces, replicas, rows, shape[1], shape[2], 1))[:, replica]
        return ops.reshape(noise, (shape[0], shape[1], shape[2], 1))

    def reseed(self, seed):
        """Restart the noise sequence at ``seed`` (python int or int64 scalar tensor)."""
        state = self.seed_generator.state
        seed = ops.cast(seed, state.dtype)
        state.assign(ops.stack([seed, ops.zeros_like(seed)]))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


_REPLICA = threading.local()  # per replica thread: the replica's batch size (`replica_batch`)


@contextlib.contextmanager
def replica_batch(rows):
    """Networks called in this block run in a `tf.distribute` replica step on a per-replica batch
    of `rows` samples (int or scalar tensor), so `NoiseInjection` can find the replica's rows of the
    global noise also on folded inputs. Not needed (and without effect) on one replica."""
    previous = getattr(_REPLICA, "rows", None)
    _REPLICA.rows = rows
    try:
        yield
    finally:
        _REPLICA.rows = previous


def _replica() -> tuple:
    """``(replica id, replicas)`` of the `tf.distribute` replica step being traced; ``(0, 1)``
    outside one. Replica ``r`` holds rows ``[r b, (r+1) b)`` of the global batch."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return 0, 1
    return ctx.replica_id_in_sync_group, ctx.num_replicas_in_sync


def noise_layers(model: keras.layers.Layer) -> list[NoiseInjection]:
    """All `NoiseInjection` layers of `model` (recursively), in a stable traversal order."""
    return [layer for layer in model._flatten_layers(include_self=True, recursive=True)
            if isinstance(layer, NoiseInjection)]


def reseed_noise(model: keras.layers.Layer, seed) -> None:
    """Make every later noise draw of `model` a deterministic function of ``seed``.

    The i-th noise layer restarts at seed ``seed * 1_000_003 + i`` (int64), so layers draw
    different noise. `seed` may be a Python int or an int64 scalar tensor, so this also works
    inside a `tf.function` (e.g. a SavedModel signature that reseeds before decoding).
    """
    seed = ops.cast(seed, "int64")
    for i, layer in enumerate(noise_layers(model)):
        layer.reseed(seed * 1_000_003 + i)


# ---------------------------------------------------------------------------------------------
# Autoencoder conv block


def ae_conv(x, filters: int, kernel: int, stride: int = 1, *, transposed: bool = False,
            padding: str = "same", noise: bool = False, batch_norm: bool = False,
            activation: str | None = "silu", name: str | None = None):
    """Reference AEconv: conv (or transposed conv) over time with bias -> [noise] -> [BN] -> swish.

    ``x``: ``[B, 1, T, C]`` -> ``[B, 1, T', filters]`` with T' = T*stride (transposed), T/stride
    ("same") or (T-kernel)//stride + 1 ("valid"). The layers are created in the reference's order
    (conv, noise, BatchNorm), which is also their weight order. `activation=None` skips the swish.
    """
    conv_cls = keras.layers.Conv2DTranspose if transposed else keras.layers.Conv2D
    x = conv_cls(filters, (1, kernel), strides=(1, stride), padding=padding,
                 kernel_initializer="he_uniform", name=name)(x)
    if noise:
        x = NoiseInjection(name=f"{name}_noise" if name else None)(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(name=f"{name}_bn" if name else None)(x)
    if activation:
        x = keras.layers.Activation(activation, name=f"{name}_act" if name else None)(x)
    return x


# ---------------------------------------------------------------------------------------------
# Spectral normalisation


def _l2_normalize(v):
    """``v / (||v|| + 1e-12)`` over all elements (reference `l2n`)."""
    return v / (ops.sqrt(ops.sum(ops.square(v))) + 1e-12)


def spectral_normalize(kernel, u):
    """One power iteration (reference section 3); returns ``(kernel / sigma, new_u)``.

    ``kernel``: any shape ``[..., out]``, viewed as ``W = [-1, out]``; ``u``: ``[1, out]``.
    ``v = l2n(u W^T)``, ``u' = l2n(v W)``, ``sigma = v W u'^T`` (float32; u' and v are constants
    for the gradient). Returns the kernel in its own dtype and u' as float32 ``[1, out]``.
    """
    w = ops.cast(ops.reshape(kernel, (-1, kernel.shape[-1])), "float32")
    v = _l2_normalize(ops.matmul(ops.cast(u, "float32"), ops.transpose(w)))
    new_u = ops.stop_gradient(_l2_normalize(ops.matmul(v, w)))
    sigma = ops.sum(ops.matmul(ops.stop_gradient(v), w) * new_u)
    return kernel / ops.cast(sigma, kernel.dtype), new_u


class _SpectralNormMixin:
    """Adds the persistent power-iteration vector ``sn_u`` ``[1, out]`` (non-trainable, N(0, 1))."""

    def _build_sn(self, out_channels: int) -> None:
        self.sn_u = self.add_weight(shape=(1, out_channels),
                                    initializer=keras.initializers.RandomNormal(stddev=1.0),
                                    trainable=False, name="sn_u")

    def _normalized_kernel(self, training):
        """Kernel divided by its spectral norm; ``sn_u`` is stored back only when training."""
        kernel, new_u = spectral_normalize(self.kernel, self.sn_u)
        if training:
            self.sn_u.assign(ops.cast(new_u, self.sn_u.dtype))
        return kernel


@keras.saving.register_keras_serializable(package="musika_tf")
class ConvSN2D(_SpectralNormMixin, keras.layers.Conv2D):
    """`Conv2D` whose kernel is divided by its spectral norm (one power iteration per call)."""

    def build(self, input_shape):
        super().build(input_shape)
        self._build_sn(self.filters)

    def call(self, inputs, training=None):
        x = self.convolution_op(inputs, self._normalized_kernel(training))
        if self.use_bias:
            x = ops.add(x, ops.reshape(self.bias, (1,) * (x.ndim - 1) + (-1,)))
        return self.activation(x) if self.activation is not None else x


@keras.saving.register_keras_serializable(package="musika_tf")
class DenseSN(_SpectralNormMixin, keras.layers.Dense):
    """`Dense` whose kernel is divided by its spectral norm (one power iteration per call)."""

    def build(self, input_shape):
        super().build(input_shape)
        self._build_sn(self.units)

    def call(self, inputs, training=None):
        x = ops.matmul(inputs, self._normalized_kernel(training))
        if self.use_bias:
            x = ops.add(x, self.bias)
        return self.activation(x) if self.activation is not None else x
