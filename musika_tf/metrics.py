"""Signal metrics shared by tests, benchmarks and reports."""

from __future__ import annotations

import numpy as np


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Signal-to-noise ratio in dB of `estimate` against `reference` (same shape)."""
    reference = np.asarray(reference, np.float64)
    error = np.asarray(estimate, np.float64) - reference
    return float(10.0 * np.log10(np.sum(reference**2) / max(np.sum(error**2), 1e-30)))
