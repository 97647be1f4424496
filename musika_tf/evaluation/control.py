"""Does a conditioned model do what it is asked? Note density and tempo control metrics.

- Note density: onsets per second of each generated piece, detected by madmom's CNN onset detector
  (`musika_tf.conditioning.onset_times`, the same detector that made the training labels: the
  quantity asked for is "onsets as madmom hears them"), against the requested onsets per second;
  Spearman rank correlation over the grid and mean absolute error in onsets/s. Beside it the
  autoencoder's ceiling (`density_ceiling`): the same detector on held-out real excerpts and on
  their reconstructions, so a weak Spearman can be told apart from an autoencoder that loses onsets.
  And a second, independent detector (`flux_onset_rate`: librosa's spectral-flux onset strength and
  peak picking), which shares nothing with madmom's networks: madmom made the training labels and,
  with condition feedback (`musika_tf.training.feedback`), measures generated audio during
  training, so a model could learn what madmom hears without playing notes; the independent
  Spearman would show it.
- Tempo: the BPM of each generated piece estimated by Tempo-CNN (`musika_tf.evaluation.tempo`), NOT
  the madmom beat tracker that may have made training labels, against the requested BPM: mean
  absolute error, Accuracy1 (within 2 %) and Accuracy2 (also octave errors x2, x3, /2, /3), split
  into requests inside and outside the training range.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from .. import conditioning


def onset_rate(audio: np.ndarray, sample_rate: int) -> float:
    """Onsets per second of stereo or mono audio (madmom CNN onsets)."""
    seconds = len(audio) / sample_rate
    return float(len(conditioning.onset_times(audio, sample_rate)) / seconds)


def flux_onset_rate(audio: np.ndarray, sample_rate: int) -> float:
    """Onsets per second of stereo or mono audio by librosa's onset detector (mel spectral flux,
    its default peak picking): independent of the madmom networks of training."""
    import librosa

    mono = np.ascontiguousarray(conditioning.to_mono(audio), dtype=np.float32)
    onsets = librosa.onset.onset_detect(y=mono, sr=sample_rate, units="time")
    return float(len(onsets) / (len(audio) / sample_rate))


def density_control(requested: np.ndarray, measured: np.ndarray) -> dict:
    """Spearman correlation and mean absolute error (onsets/s) of measured vs requested rates."""
    requested, measured = np.asarray(requested, float), np.asarray(measured, float)
    rho = stats.spearmanr(requested, measured).statistic if np.ptp(measured) > 0 else 0.0
    grid = np.unique(requested)
    return {
        "spearman": float(rho),
        "mae_onsets_per_s": float(np.abs(measured - requested).mean()),
        "grid_onsets_per_s": grid.tolist(),
        "measured_mean_per_grid": [float(measured[requested == g].mean()) for g in grid],
        "n": int(len(requested)),
    }


def density_ceiling(real: np.ndarray, reconstructed: np.ndarray) -> dict:
    """What the autoencoder leaves of note density: onset rates of real excerpts vs their
    reconstructions (onsets/s). Spearman correlation, and the least-squares slope of the
    reconstructed rate on the real one (1 = every onset kept; below 1 the autoencoder compresses the
    range a generator's output can span, as heard by the same detector)."""
    real, reconstructed = np.asarray(real, float), np.asarray(reconstructed, float)
    rho = (stats.spearmanr(real, reconstructed).statistic
           if np.ptp(real) > 0 and np.ptp(reconstructed) > 0 else 0.0)
    slope = float(np.polyfit(real, reconstructed, 1)[0]) if np.ptp(real) > 0 else 0.0
    return {"spearman": float(rho), "slope": slope, "real_mean": float(real.mean()),
            "reconstructed_mean": float(reconstructed.mean()), "n": int(len(real))}


def tempo_control(requested: np.ndarray, estimated: np.ndarray, train_range: tuple) -> dict:
    """Tempo metrics overall and inside / outside ``train_range = (low, high)`` BPM."""
    from .tempo import accuracy1, accuracy2

    requested, estimated = np.asarray(requested, float), np.asarray(estimated, float)
    inside = (requested >= train_range[0]) & (requested <= train_range[1])

    def summary(mask) -> dict | None:
        if not mask.any():
            return None
        req, est = requested[mask], estimated[mask]
        return {"mae_bpm": float(np.abs(est - req).mean()),
                "accuracy1": float(np.mean(accuracy1(est, req))),
                "accuracy2": float(np.mean(accuracy2(est, req))), "n": int(mask.sum())}

    grid = np.unique(requested)
    return {"all": summary(np.ones_like(inside)), "inside_training_range": summary(inside),
            "outside_training_range": summary(~inside), "training_range_bpm": list(train_range),
            "grid_bpm": grid.tolist(),
            "estimated_median_per_grid": [float(np.median(estimated[requested == g])) for g in grid]}
