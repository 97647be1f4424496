"""Seam continuity: is a join between generated windows audible as a jump in the spectrum?

Spectral distance between adjacent, non-overlapping frames of the log-magnitude spectrogram ``S``
(dB, mono, FFT `N_FFT`, hop `HOP`; frames ``LAG = N_FFT / HOP`` apart do not overlap):

    d[t] = mean_bins |S[t + LAG] - S[t]|

For a join at sample j, the pair whose first frame ends at j and whose second frame starts there
spans the join exactly; everywhere else d measures how much the music itself changes over the same
distance. Then

    seam ratio = mean d across joins / mean d away from joins (pairs not touching any join).

A ratio near 1 means a join changes the spectrum no more than the music does; a hard cut between
unrelated material gives clearly more. Controls, for the report: real audio cut at the same positions
(continuous, so ~1) and independently generated windows concatenated (the seams the coordinate
system exists to avoid).
"""

from __future__ import annotations

import numpy as np

N_FFT = 1024
HOP = 128
GUARD = 2  # extra frames either side of the pairs touching a join, left out of "away"
FLOOR_DB = -100.0


def log_spectrogram(audio: np.ndarray) -> np.ndarray:
    """Mono log-magnitude spectrogram ``[frames, N_FFT/2+1]`` in dB of ``[samples]`` or
    ``[samples, channels]`` audio; frame t is centred on sample ``t * HOP``."""
    x = np.asarray(audio, np.float64)
    x = x.mean(axis=1) if x.ndim == 2 else x
    x = np.pad(x, N_FFT // 2, mode="reflect")
    n = 1 + (len(x) - N_FFT) // HOP
    frames = np.lib.stride_tricks.as_strided(x, (n, N_FFT), (x.strides[0] * HOP, x.strides[0]))
    mag = np.abs(np.fft.rfft(frames * np.hanning(N_FFT), axis=1))
    return np.maximum(20.0 * np.log10(mag + 1e-10), FLOOR_DB)


LAG = N_FFT // HOP  # frames between the two frames of a pair: adjacent, non-overlapping windows


def pair_distance(spec: np.ndarray) -> np.ndarray:
    """``d[t] = mean |S[t + LAG] - S[t]|`` in dB for t = 0..frames-LAG-1."""
    return np.abs(spec[LAG:] - spec[:-LAG]).mean(axis=1)


def join_pairs(joins_samples, num_pairs: int) -> np.ndarray:
    """Index t of the pair spanning each join: frame t ends and frame t + LAG starts at the join
    (to the nearest hop); joins without a whole pair inside the audio are dropped."""
    t = np.round((np.asarray(joins_samples, np.float64) - N_FFT / 2) / HOP).astype(int)
    return t[(t >= 0) & (t < num_pairs)]


def seam_ratio(audio: np.ndarray, joins_samples) -> float:
    """Mean pair distance across the joins over the mean away from them (see module doc)."""
    d = pair_distance(log_spectrogram(audio))
    at = join_pairs(joins_samples, len(d))
    if len(at) == 0:
        raise ValueError("no join lies inside the audio; generate more than one window")
    touching = np.zeros(len(d), bool)
    for t in at:  # pairs whose frames overlap the join
        touching[max(0, t - LAG - GUARD): t + LAG + GUARD + 1] = True
    if touching.all():
        raise ValueError("joins are too close together to leave frames between them")
    return float(d[at].mean() / max(d[~touching].mean(), 1e-12))


def window_joins(num_samples: int, join_every: int, start: int = 0) -> np.ndarray:
    """Sample positions ``start + k * join_every`` (k >= 1) inside ``[0, num_samples)``."""
    return np.arange(start + join_every, num_samples, join_every)
