"""Autoencoder reconstruction quality per level, with measures that do not need phase alignment.

Level 1 is ENC -> DEC (log-magnitude frames -> magnitude and phase -> iSTFT); level 2 is the whole
path ENC -> ENC2 -> DEC2 -> DEC, i.e. what the GAN's latents can at best sound like. For each: the
multi-scale spectral distance (the paper's L_ms, log units, lower is better), the log-spectral
distance (dB) and the spectral convergence, averaged over FFT sizes 2048..128 (hop size/4).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from .. import audio as audio_lib
from .. import losses
from ..autoencoder import Autoencoder
from ..encoding import padded_length, reconstruct

FFT_SIZES = (2048, 1024, 512, 256, 128)


def reconstruct_level1(ae: Autoencoder, audio: np.ndarray, seed: int = 0) -> np.ndarray:
    """ENC -> DEC -> iSTFT of stereo ``[samples, 2]`` audio; same length as the input."""
    from ..autoencoder import reseed_decoders

    preset = ae.preset
    padded = np.pad(audio, [(0, padded_length(len(audio), preset) - len(audio)), (0, 0)])
    spec = audio_lib.stereo_log_magnitude(padded.astype(np.float32), preset.audio).numpy()
    reseed_decoders(ae.decoder2, ae.decoder, seed)
    magnitude, phase = ae.decode_level1(ae.encode_level1(spec))
    wave = audio_lib.stereo_istft(magnitude, phase, preset.audio).numpy()
    return np.clip(wave, -1.0, 1.0)[: len(audio)]


def distances(real: np.ndarray, fake: np.ndarray) -> dict:
    """Spectral distances of two equal-length stereo waveforms ``[samples, 2]`` (channels as batch)."""
    a = tf.constant(np.asarray(real, np.float32).T)
    b = tf.constant(np.asarray(fake, np.float32).T)
    return {"multiscale_spectral_distance": float(losses.multiscale_spectral_distance(a, b, FFT_SIZES)),
            "log_spectral_distance_db": float(losses.log_spectral_distance(a, b, FFT_SIZES)),
            "spectral_convergence": float(losses.spectral_convergence(a, b, FFT_SIZES))}


def reconstruction_quality(ae: Autoencoder, excerpts: list) -> dict:
    """Mean distances over stereo excerpts for level 1 and level 2 (full path)."""
    out = {}
    for level, fn in (("level1", reconstruct_level1), ("level2", reconstruct)):
        rows = [distances(x, fn(ae, x)) for x in excerpts]
        out[level] = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    return out
