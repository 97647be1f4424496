"""The install step: patched madmom imports, finds onsets, and a second install does nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def test_madmom_install_is_idempotent():
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "install_madmom.py")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "already installed" in result.stdout


def test_patched_madmom_detects_onsets_and_tempo():
    from madmom.audio.signal import Signal
    from madmom.features.onsets import CNNOnsetProcessor, OnsetPeakPickingProcessor

    rate, bpm, seconds = 44100, 120.0, 8.0
    wave = np.zeros(int(rate * seconds), np.float32)
    click = np.exp(-np.arange(2000) / 150.0) * np.sin(2 * np.pi * 1500 * np.arange(2000) / rate)
    beats = np.arange(0.5, seconds - 0.5, 60.0 / bpm)
    for t in beats:
        start = int(t * rate)
        wave[start: start + len(click)] += 0.5 * click.astype(np.float32)
    activations = CNNOnsetProcessor()(Signal(wave, sample_rate=rate, num_channels=1))
    onsets = OnsetPeakPickingProcessor(fps=100)(activations)
    assert len(onsets) == len(beats)
    assert np.max(np.abs(onsets - beats)) < 0.03
