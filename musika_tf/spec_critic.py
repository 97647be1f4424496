"""The autoencoder's adversarial critic: 2-D convolutions over log-magnitude spectrograms.

The paper trains both autoencoder levels against a critic that sees spectrograms recomputed from
the decoded waveform, with 2-D convolutions and spectral normalisation. The reference never released
it, so the design is ours: a PatchGAN-style stack of spectrally normalised stride-2 2-D convolutions
(kernel 4x4, LeakyReLU 0.2), widths ``preset.train.spec_critic_widths``, and a final 3x3 convolution
to one channel. Its output is a map of patch logits; losses average over it.

Input ``[B, frames, bins]`` normalised log-magnitude (time x frequency image) -> logits
``[B, frames / 2^n, bins / 2^n, 1]`` (n = number of widths).
"""

from __future__ import annotations

import keras
from keras import layers as L

from .config import Preset
from .layers import ConvSN2D


def build_spec_critic(preset: Preset) -> keras.Model:
    """Spectrogram critic for chunks of ``preset.ae.chunk_frames`` frames x ``bins`` bins."""
    frames, bins = preset.ae.chunk_frames, preset.audio.bins
    spec = keras.Input((frames, bins), name="log_magnitude")
    x = L.Reshape((frames, bins, 1))(spec)
    for i, width in enumerate(preset.train.spec_critic_widths):
        x = ConvSN2D(width, 4, strides=2, padding="same", kernel_initializer="he_uniform",
                     name=f"spec_critic_{i}")(x)
        x = L.LeakyReLU(0.2)(x)
    logits = ConvSN2D(1, 3, padding="same", name="spec_critic_out")(x)
    return keras.Model(spec, L.Activation("linear", dtype="float32")(logits), name="spec_critic")
