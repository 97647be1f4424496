"""The two-level spectrogram autoencoder (reference section 2), both variants.

Networks (Keras functional models; every number comes from ``preset.ae`` / ``preset.audio``):

- ENC  ``[B, bins, chunk, 1]`` (freq, time) -> FOLD(2) ``[2B, 1, chunk/2, latent1_dim]``, tanh.
- DEC  ``[B', 1, chunk/2, latent1_dim]`` (the caller folds a chunk in 2) -> magnitude and phase,
  each ``[B, chunk, bins]``, normalised and clipped to [-1, 1].
- ENC2 ``[B, 1, chunk, latent1_dim]`` -> FOLD(2) ``[2B, 1, G/2, latent_dim]``, tanh, with
  G = chunk / frames_per_latent groups encoded independently.
- DEC2 ``[B', 1, G/2, latent_dim]`` (the caller folds a chunk of G latents in 2) ->
  ``[B, 1, chunk, latent1_dim]``.

``preset.ae.variant`` picks the first level (v44: DEC with separate magnitude and phase branches,
no BatchNorm; v22: one shared head); ``preset.ae.frames_per_latent`` picks the second level's
layout (16 -> the v44 ENC2/DEC2 stack, 8 -> the v22 stack); ``preset.ae.batch_norm`` adds
BatchNorm to every hidden conv. Weight-bearing layers are created and wired so that
``model.layers`` lists them in the reference's order (see `musika_tf.reference`).

`Autoencoder` bundles the four networks with whole-signal paths that work on spectrogram frames:
`encode_frames` ``[channels, frames, bins] -> [channels, latents, latent_dim]`` and
`decode_latents` ``[channels, latents, latent_dim] -> (magnitude, phase) [channels, frames, bins]``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from .config import Preset
from .layers import ae_conv, fold, reseed_noise, unfold

# Second-level layouts: one (kernel, stride, padding, transposed) entry per hidden layer; the
# widths come from preset.ae.enc2_widths / dec2_widths (same length as the layout).
ENC2_LAYOUTS = {
    16: ((3, 1, "same", False), (3, 2, "valid", False), (3, 1, "same", False),
         (3, 2, "valid", False), (3, 1, "same", False), (3, 1, "valid", False),
         (1, 1, "same", False)),
    8: ((1, 1, "same", False), (3, 1, "valid", False), (3, 1, "valid", False),
        (1, 1, "same", False), (3, 1, "valid", False), (2, 1, "valid", False)),
}
DEC2_LAYOUTS = {
    16: ((3, 1, "same", False), (4, 2, "same", True), (3, 1, "same", False),
         (4, 2, "same", True), (3, 1, "same", False), (4, 2, "same", True),
         (4, 2, "same", True)),
    8: ((4, 1, "same", False), (4, 2, "same", True), (4, 2, "same", True),
        (4, 1, "same", False), (4, 2, "same", True)),
}
# DEC2 output activation per layout (v44 stack linear, v22 stack tanh).
DEC2_OUTPUT_ACTIVATION = {16: None, 8: "tanh"}


# ---------------------------------------------------------------------------------------------
# Shapes


def half_chunk(preset: Preset) -> int:
    """First-level frames seen by one DEC evaluation (chunk_frames / 2)."""
    return preset.ae.chunk_frames // 2


def latents_per_chunk(preset: Preset) -> int:
    """Second-level latents per chunk of `chunk_frames` frames (v44 8, v22 16)."""
    ae = preset.ae
    if ae.chunk_frames % (2 * ae.frames_per_latent):
        raise ValueError(f"chunk_frames={ae.chunk_frames} must be a multiple of "
                         f"2*frames_per_latent={2 * ae.frames_per_latent}")
    return ae.chunk_frames // ae.frames_per_latent


def _layout(layouts: dict, preset: Preset, widths: tuple, what: str) -> tuple:
    """The layout for ``preset.ae.frames_per_latent``, checked against the widths tuple."""
    fpl = preset.ae.frames_per_latent
    if fpl not in layouts:
        raise ValueError(f"{what}: no layout for frames_per_latent={fpl}; known: {sorted(layouts)}")
    layout = layouts[fpl]
    if len(widths) != len(layout):
        raise ValueError(f"{what}: frames_per_latent={fpl} needs {len(layout)} widths, "
                         f"got {len(widths)}: {widths}")
    return layout


def _to_float32(x):
    """Cast a network output to float32 (outputs stay float32 under mixed precision)."""
    return ops.cast(x, "float32")


# ---------------------------------------------------------------------------------------------
# First level


def build_encoder(preset: Preset) -> keras.Model:
    """ENC: ``[B, bins, chunk, 1]`` -> ``[2B, 1, chunk/2, latent1_dim]`` (FOLD(2) output).

    Frame-wise: each STFT frame becomes a ``bins``-channel vector, then k1 convs with swish
    (and BatchNorm if ``batch_norm``), a k1 conv to ``latent1_dim`` and tanh.
    """
    ae, bins = preset.ae, preset.audio.bins
    inp = keras.Input((bins, ae.chunk_frames, 1), name="spectrogram")
    x = ops.transpose(inp, (0, 3, 2, 1))  # [B, 1, chunk, bins]
    for width in ae.enc_widths:
        x = ae_conv(x, width, 1, batch_norm=ae.batch_norm)
    x = ae_conv(x, ae.latent1_dim, 1, activation=None)
    x = fold(ops.tanh(x), 2)
    return keras.Model(inp, _to_float32(x), name="encoder")


def _down_path(x, preset: Preset, widths: tuple, first_kernel: int) -> list:
    """DEC down path g0..g{L-1}: g0 stride 1, then k3 stride 2; returns every level's output."""
    ae = preset.ae
    skips = []
    for level, width in enumerate(widths):
        kernel, stride = (first_kernel, 1) if level == 0 else (3, 2)
        x = ae_conv(x, width, kernel, stride, noise=True, batch_norm=ae.batch_norm)
        skips.append(x)
    return skips


def _up(x, width: int, preset: Preset):
    """DEC/DEC2 upsampling unit: transposed conv k4 s2 with noise (and BatchNorm)."""
    return ae_conv(x, width, 4, 2, transposed=True, noise=True, batch_norm=preset.ae.batch_norm)


def _up_path(skips: list, preset: Preset) -> tuple[list, object]:
    """Magnitude U-Net path: up_k = convT(h), h = up_k + skip (g22, g11, g00 in the reference).

    Returns the up-unit outputs (before their skip additions) and the last sum ``g00 + g0``.
    """
    h, ups = skips[-1], []
    for skip in reversed(skips[:-1]):
        up = _up(h, skip.shape[-1], preset)
        ups.append(up)
        h = up + skip
    return ups, h


def _head(x, channels: int):
    """Linear k1 output conv, clipped to [-1, 1]."""
    return ops.clip(ae_conv(x, channels, 1, activation=None), -1.0, 1.0)


def _dec_heads_v44(ups: list, top, preset: Preset) -> tuple:
    """v44: magnitude head on ``g00 + g0``; a phase branch p1 = convT(g22), p_k = convT(p + up_k)
    ending in its own head on ``p + g00``."""
    bins = preset.audio.bins
    magnitude = _head(top, bins)
    p = ups[0]
    for up in ups[1:]:
        p = _up(p, up.shape[-1], preset) + up
    return magnitude, _head(p, bins)


def _dec_heads_v22(ups: list, top, preset: Preset) -> tuple:
    """v22: one k1 unit (last dec_widths entry) on ``g00 + g0``, then one shared head of
    2*bins channels split into magnitude and phase."""
    ae, bins = preset.ae, preset.audio.bins
    x = ae_conv(top, ae.dec_widths[-1], 1, noise=True, batch_norm=ae.batch_norm)
    out = _head(x, 2 * bins)
    return out[..., :bins], out[..., bins:]


# variant -> (g0 kernel, number of trailing dec_widths used by the heads, head builder)
_DEC_VARIANTS = {"v44": (3, 0, _dec_heads_v44), "v22": (1, 1, _dec_heads_v22)}


def build_decoder(preset: Preset) -> keras.Model:
    """DEC: ``[2B, 1, chunk/2, latent1_dim]`` -> (magnitude, phase), each ``[B, chunk, bins]``.

    The input's time axis is left free (``None``): it is trained on ``chunk/2`` frames, and
    `decode_sequence` runs it over whole sequences (any multiple of ``2**(levels-1)`` frames).

    U-Net over time: g0 (stride 1), k3 stride-2 convs down, k4 stride-2 transposed convs up with
    skip additions (one level per down width); variant-specific output heads (`_dec_heads_v44`,
    `_dec_heads_v22`). Every hidden unit has noise injection. Outputs are UNFOLD(2)-ed back to
    whole chunks.
    """
    ae = preset.ae
    if ae.variant not in _DEC_VARIANTS:
        raise ValueError(f"unknown AE variant {ae.variant!r}; known: {sorted(_DEC_VARIANTS)}")
    first_kernel, head_widths, heads = _DEC_VARIANTS[ae.variant]
    down_widths = ae.dec_widths[:len(ae.dec_widths) - head_widths]
    inp = keras.Input((1, None, ae.latent1_dim), name="latent1")
    skips = _down_path(inp, preset, down_widths, first_kernel)
    ups, top = _up_path(skips, preset)
    outputs = [_to_float32(ops.squeeze(unfold(y, 2), 1)) for y in heads(ups, top, preset)]
    return keras.Model(inp, outputs, name="decoder")


# ---------------------------------------------------------------------------------------------
# Second level


def build_encoder2(preset: Preset) -> keras.Model:
    """ENC2: ``[B, 1, chunk, latent1_dim]`` -> ``[2B, 1, G/2, latent_dim]`` (FOLD(2) output).

    FOLD(G) into groups of ``frames_per_latent`` frames, the layout's convs (swish, optional BN)
    reduce each group to one frame, a k1 conv to ``latent_dim`` with tanh; UNFOLD(G), FOLD(2).
    """
    ae = preset.ae
    layout = _layout(ENC2_LAYOUTS, preset, ae.enc2_widths, "ENC2")
    groups = latents_per_chunk(preset)
    inp = keras.Input((1, ae.chunk_frames, ae.latent1_dim), name="latent1")
    x = fold(inp, groups)
    for width, (kernel, stride, padding, _) in zip(ae.enc2_widths, layout):
        x = ae_conv(x, width, kernel, stride, padding=padding, batch_norm=ae.batch_norm)
    if x.shape[2] != 1:
        raise ValueError(f"ENC2 layout leaves {x.shape[2]} frames per group instead of 1")
    x = ae_conv(x, ae.latent_dim, 1, activation="tanh", name="cbottle")
    x = fold(unfold(x, groups), 2)
    return keras.Model(inp, _to_float32(x), name="encoder2")


def build_decoder2(preset: Preset) -> keras.Model:
    """DEC2: ``[2B, 1, G/2, latent_dim]`` -> ``[B, 1, chunk, latent1_dim]``.

    The input's time axis is left free (``None``): it is trained on ``G/2`` latents, and
    `decode_sequence` runs it over whole sequences (``frames_per_latent`` frames per latent).

    The layout's convs and k4 s2 transposed convs (noise, optional BN, swish) upsample G/2 latents
    to chunk/2 frames; a k1 output conv (v44 stack linear, v22 stack tanh); UNFOLD(2).
    """
    ae = preset.ae
    layout = _layout(DEC2_LAYOUTS, preset, ae.dec2_widths, "DEC2")
    inp = keras.Input((1, None, ae.latent_dim), name="latent2")
    x = inp
    for width, (kernel, stride, padding, transposed) in zip(ae.dec2_widths, layout):
        x = ae_conv(x, width, kernel, stride, transposed=transposed, padding=padding,
                    noise=True, batch_norm=ae.batch_norm)
    probe = keras.Model(inp, x).compute_output_shape((None, 1, latents_per_chunk(preset) // 2,
                                                      ae.latent_dim))
    if probe[2] != half_chunk(preset):
        raise ValueError(f"DEC2 layout yields {probe[2]} frames instead of {half_chunk(preset)}")
    x = ae_conv(x, ae.latent1_dim, 1, activation=DEC2_OUTPUT_ACTIVATION[ae.frames_per_latent],
                name="cout")
    return keras.Model(inp, _to_float32(unfold(x, 2)), name="decoder2")


# ---------------------------------------------------------------------------------------------
# Whole-signal paths


def decode_level2_sequence(decoder2: keras.Model, latents):
    """DEC2 over whole sequences: ``[N, 1, T, latent_dim] -> [N, 1, T*fpl, latent1_dim]`` (N even).

    DEC2 ends in UNFOLD(2), which joins rows b and N/2 + b along time; FOLD(2) parts them again."""
    return fold(decoder2(latents, training=False), 2)


def decode_level1_sequence(decoder: keras.Model, latent1) -> tuple:
    """DEC over whole sequences: ``[N, 1, F, latent1_dim]`` -> (magnitude, phase), each
    ``[N, F, bins]`` (N even, F a multiple of ``2**(levels-1)``; rows parted again as in
    `decode_level2_sequence`)."""
    return tuple(fold(y, 2, axis=1) for y in decoder(latent1, training=False))


def decode_sequence(preset: Preset, decoder2: keras.Model, decoder: keras.Model, latents,
                    trim: tuple = (0, 0)) -> tuple:
    """DEC2 then DEC over whole sequences: no block edges anywhere (``preset.ae.decode_context``).

    The decoders are trained on independent blocks (``chunk_frames / 2`` frames); both are
    convolutional along time, so run over a whole sequence every frame sees its real neighbours
    instead of a block edge's zero padding. `latents` ``[N, T, latent_dim]`` (N even: the
    channels of one or more pieces); ``trim = (a, b)``: the first `a` and last `b` latents are
    context only (a neighbouring decode unit's), decoded and then cut. Returns (magnitude, phase),
    each ``[N, (T - a - b) * frames_per_latent, bins]``, normalised.
    """
    fpl = preset.ae.frames_per_latent
    level1 = decode_level2_sequence(decoder2, latents[:, None])
    magnitude, phase = decode_level1_sequence(decoder, level1)
    first, last = trim[0] * fpl, ops.shape(magnitude)[1] - trim[1] * fpl
    return magnitude[:, first:last], phase[:, first:last]


def _even_rows(x: np.ndarray) -> np.ndarray:
    """``[C, ...]`` with a zero row appended when C is odd (sequence decoding pairs rows)."""
    return np.concatenate([x, np.zeros_like(x[:1])]) if len(x) % 2 else x


def run_batched(fn, x: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Apply ``fn`` to ``x`` in mini-batches along axis 0 (the last one may be short; none is
    dropped) and return the per-output concatenations as numpy arrays."""
    if len(x) == 0:
        raise ValueError("nothing to process: zero chunks")
    parts = []
    for start in range(0, len(x), batch_size):
        out = fn(x[start:start + batch_size])
        parts.append([np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])])
    return [np.concatenate(p, axis=0) for p in zip(*parts)]


def to_chunks(x: np.ndarray, size: int, value: float = 0.0) -> np.ndarray:
    """``[C, T, D] -> [C*K, 1, size, D]``, K = ceil(T / size); the tail is padded with ``value``.

    Chunk k of channel c is row ``c*K + k`` (channels outermost, as `from_chunks` expects).
    """
    x = np.asarray(x, np.float32)
    pad = -x.shape[1] % size
    if pad:
        x = np.pad(x, [(0, 0), (0, pad), (0, 0)], constant_values=value)
    return x.reshape(-1, 1, size, x.shape[-1])


def from_chunks(z: np.ndarray, channels: int, length: int) -> np.ndarray:
    """Chunk outputs ``[C*K, ..., T_chunk, D] -> [C, length, D]``: time joined, padding cropped."""
    return z.reshape(channels, -1, z.shape[-1])[:, :length]


def _compiled(fn, shape: tuple):
    """``fn`` as a `tf.function` over float32 batches ``[None, *shape]`` (one trace serves every
    batch size, so files of any length do not retrace)."""
    return tf.function(fn, input_signature=[tf.TensorSpec((None, *shape), tf.float32)])


@dataclass
class Autoencoder:
    """The four AE networks of one preset plus whole-signal encode/decode over spectrogram frames.

    Networks run in inference mode (BatchNorm moving statistics) on mini-batches of
    ``batch_size`` chunks; the last mini-batch may be short (nothing is dropped).
    """

    preset: Preset
    encoder: keras.Model
    decoder: keras.Model
    encoder2: keras.Model
    decoder2: keras.Model
    batch_size: int = 32

    def __post_init__(self):
        # Chunk-level inference functions: chunks [n, ...] in, whole-chunk outputs [n, ...] out.
        ae, bins = self.preset.ae, self.preset.audio.bins
        chunk, groups = ae.chunk_frames, latents_per_chunk(self.preset)
        self._enc = _compiled(lambda x: unfold(self.encoder(x, training=False), 2),
                              (bins, chunk, 1))
        self._enc2 = _compiled(lambda x: unfold(self.encoder2(x, training=False), 2),
                               (1, chunk, ae.latent1_dim))
        self._dec2 = _compiled(lambda x: self.decoder2(fold(x, 2), training=False),
                               (1, groups, ae.latent_dim))
        self._dec = _compiled(lambda x: self.decoder(fold(x, 2), training=False),
                              (1, chunk, ae.latent1_dim))
        # Whole-sequence decoding (preset.ae.decode_context > 0): rows [N, 1, any length, D].
        self._dec2_whole = _compiled(lambda x: decode_level2_sequence(self.decoder2, x),
                                     (1, None, ae.latent_dim))
        self._dec_whole = _compiled(lambda x: decode_level1_sequence(self.decoder, x),
                                    (1, None, ae.latent1_dim))

    @classmethod
    def build(cls, preset: Preset, batch_size: int = 32) -> "Autoencoder":
        return cls(preset, build_encoder(preset), build_decoder(preset),
                   build_encoder2(preset), build_decoder2(preset), batch_size)

    @property
    def models(self) -> dict[str, keras.Model]:
        """``{"enc", "dec", "enc2", "dec2"}`` -> network (the reference's file stems)."""
        return {"enc": self.encoder, "dec": self.decoder,
                "enc2": self.encoder2, "dec2": self.decoder2}

    def load_reference(self, folder: str) -> None:
        """Load the original Musika ``{enc,dec,enc2,dec2}.h5`` weight files from ``folder``."""
        from .keras2_h5 import load_keras2_h5

        for stem, model in self.models.items():
            load_keras2_h5(model, os.path.join(folder, f"{stem}.h5"))

    # -- encoding ---------------------------------------------------------------------------

    def encode_level1(self, log_mag: np.ndarray) -> np.ndarray:
        """ENC: normalised log-magnitude ``[channels, frames, bins]`` -> ``[channels, frames, D1]``
        (D1 = latent1_dim).

        Frames are padded with -1 (silence) to whole chunks; ENC is frame-wise, so the padding
        does not affect the returned frames.
        """
        channels, frames, _ = np.shape(log_mag)
        x = to_chunks(log_mag, self.preset.ae.chunk_frames, value=-1.0)
        x = x[:, 0].transpose(0, 2, 1)[..., None]  # [C*K, bins, chunk, 1] (freq, time)
        (z,) = run_batched(self._enc, x, self.batch_size)
        return from_chunks(z, channels, frames)

    def encode_level2(self, latent1: np.ndarray) -> np.ndarray:
        """ENC2: ``[channels, frames, latent1_dim]`` -> ``[channels, frames // fpl, latent_dim]``.

        Groups of ``frames_per_latent`` (fpl) frames are encoded independently, so zero padding
        to whole chunks does not affect the kept latents; a trailing partial group is dropped.
        """
        channels, frames, _ = np.shape(latent1)
        x = to_chunks(latent1, self.preset.ae.chunk_frames)
        (z,) = run_batched(self._enc2, x, self.batch_size)
        return from_chunks(z, channels, frames // self.preset.ae.frames_per_latent)

    def encode_frames(self, log_mag: np.ndarray) -> np.ndarray:
        """``[channels, frames, bins]`` -> latents ``[channels, frames // fpl, latent_dim]``."""
        return self.encode_level2(self.encode_level1(log_mag))

    # -- decoding ---------------------------------------------------------------------------

    def decode_level2(self, latents: np.ndarray) -> np.ndarray:
        """DEC2: ``[channels, latents, latent_dim]`` -> ``[channels, latents * fpl, latent1_dim]``.

        Latents are zero-padded to whole chunks of `latents_per_chunk` (each chunk is decoded as
        two independent halves); the output is cropped to ``latents * frames_per_latent``. With
        ``preset.ae.decode_context`` the whole sequence is decoded at once (`decode_sequence`).
        """
        channels, length, _ = np.shape(latents)
        if self.preset.ae.decode_context:
            rows = _even_rows(np.asarray(latents, np.float32))[:, None]
            return self._dec2_whole(rows).numpy()[:channels, 0]
        x = to_chunks(latents, latents_per_chunk(self.preset))
        (z,) = run_batched(self._dec2, x, self.batch_size)
        return from_chunks(z, channels, length * self.preset.ae.frames_per_latent)

    def decode_level1(self, latent1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """DEC: ``[channels, frames, D1]`` -> (magnitude, phase), each ``[channels, frames, bins]``.

        Frames are zero-padded to whole chunks; each chunk is decoded as two folded halves, or,
        with ``preset.ae.decode_context``, all of them as one sequence (`decode_sequence`).
        """
        channels, frames, _ = np.shape(latent1)
        if self.preset.ae.decode_context:
            x = to_chunks(latent1, half_chunk(self.preset)).reshape(channels, 1, -1, latent1.shape[-1])
            mag, phase = self._dec_whole(_even_rows(x))
            return mag.numpy()[:channels, :frames], phase.numpy()[:channels, :frames]
        x = to_chunks(latent1, self.preset.ae.chunk_frames)
        mag, phase = run_batched(self._dec, x, self.batch_size)
        return from_chunks(mag, channels, frames), from_chunks(phase, channels, frames)

    def decode_latents(self, latents: np.ndarray, seed: int | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
        """``[channels, latents, latent_dim]`` -> normalised (magnitude, phase), each
        ``[channels, frames, bins]`` with ``frames = latents * frames_per_latent``.

        ``seed`` restarts the injected noise of DEC2 and DEC deterministically (`reseed_noise`);
        None continues their running noise state.
        """
        if seed is not None:
            reseed_decoders(self.decoder2, self.decoder, seed)
        return self.decode_level1(self.decode_level2(latents))


def reseed_decoders(decoder2: keras.Model, decoder: keras.Model, seed) -> None:
    """Restart the decoders' injected noise from one seed (DEC2: ``seed``, DEC: ``seed + 1``);
    `seed` may be a Python int or an int64 scalar tensor (inside a `tf.function`)."""
    reseed_noise(decoder2, seed)
    reseed_noise(decoder, seed + 1)


def stereo_latents(per_channel: np.ndarray) -> np.ndarray:
    """``[channels, T, D] -> [T, channels*D]`` (the GAN's ``[L || R]`` layout)."""
    return np.concatenate(list(per_channel), axis=-1)


def split_stereo_latents(stereo: np.ndarray, channels: int = 2) -> np.ndarray:
    """Inverse of `stereo_latents`: ``[T, channels*D] -> [channels, T, D]``."""
    return np.stack(np.split(np.asarray(stereo), channels, axis=-1))
