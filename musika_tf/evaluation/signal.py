"""Audio preparation shared by the evaluation networks (MusiCNN, Tempo-CNN)."""

from __future__ import annotations

import numpy as np


def mono_at_rate(audio: np.ndarray, sample_rate: int, target_rate: int) -> np.ndarray:
    """Mono float32 `[samples']` at `target_rate` Hz from `[samples]` or `[samples, 2]` audio at
    `sample_rate` Hz (channel mean, then librosa's soxr_hq resampler: what `librosa.load` does)."""
    import librosa

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2 and audio.shape[1] <= 2:
        audio = librosa.to_mono(np.ascontiguousarray(audio.T))
    elif audio.ndim != 1:
        raise ValueError(f"audio must be [samples] or [samples, 2], got shape {audio.shape}")
    return librosa.resample(audio, orig_sr=sample_rate, target_sr=target_rate, res_type="soxr_hq")
