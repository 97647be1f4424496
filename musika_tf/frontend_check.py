"""Spectrogram -> waveform round trip with the true phase: the front end's self-check."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from . import audio as audio_lib
from .config import AudioConfig
from .metrics import snr_db


def true_phase_round_trip(audio: np.ndarray, cfg: AudioConfig) -> np.ndarray:
    """Stereo ``[samples, 2]`` -> log-magnitude + true phase -> iSTFT -> ``[samples', 2]``.

    samples' = (frames - 1) * hop + 4 * hop <= samples (the tail that fills no frame is dropped).
    """
    channels = tf.transpose(tf.convert_to_tensor(audio, tf.float32))
    log_mag = audio_lib.log_magnitude(channels, cfg)
    phase = audio_lib.normalised_phase(channels, cfg)
    return audio_lib.stereo_istft(log_mag, phase, cfg).numpy()


def round_trip_snr(audio: np.ndarray, cfg: AudioConfig) -> float:
    """SNR (dB) of the true-phase round trip, ignoring the first and last 3*hop samples, where
    fewer than four windows overlap and the inverse STFT cannot be exact."""
    rebuilt = true_phase_round_trip(audio, cfg)
    edge = 3 * cfg.hop
    inner = slice(edge, len(rebuilt) - edge)
    return snr_db(audio[: len(rebuilt)][inner], rebuilt[inner])
