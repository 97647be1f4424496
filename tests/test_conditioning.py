"""Conditioning curves on synthetic click tracks and drum loops (madmom onsets and tempo)."""

from __future__ import annotations

import numpy as np
import pytest

from musika_tf import conditioning as C
from musika_tf.config import get_preset

PIANO = get_preset("piano", cond="density")  # 22.05 kHz: exercises the resampling to 44.1 kHz
TECHNO = get_preset("techno", cond="tempo")


def _burst(sample_rate: int, seconds: float, decay: float, seed: int) -> np.ndarray:
    """Exponentially decaying white noise ``[seconds * sample_rate]``."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return np.random.default_rng(seed).standard_normal(len(t)) * np.exp(-t / decay)


def _place(out: np.ndarray, times: np.ndarray, sound: np.ndarray, sample_rate: int) -> None:
    """Add `sound` into `out` starting at each time in seconds (cut at the end)."""
    for time in times:
        start = int(round(time * sample_rate))
        piece = sound[: len(out) - start]
        out[start:start + len(piece)] += piece


def click_track(times: np.ndarray, seconds: float, sample_rate: int, stereo: bool = True) -> np.ndarray:
    """Noise clicks (10 ms decay) at `times` -> float32 ``[samples, 2]`` (or ``[samples]``)."""
    mono = np.zeros(int(seconds * sample_rate))
    _place(mono, times, 0.5 * _burst(sample_rate, 0.05, 0.01, seed=0), sample_rate)
    mono = mono.astype(np.float32)
    return np.stack([mono, mono], axis=1) if stereo else mono


def steady_clicks(rate: float, seconds: float, offset: float = 0.113) -> np.ndarray:
    """Click times in seconds at `rate` per second, off the 10 ms onset-frame grid."""
    return np.arange(offset, seconds - 0.1, 1.0 / rate)


def drum_loop(bpm: float, seconds: float, sample_rate: int) -> np.ndarray:
    """Kick on every beat, snare on 2 and 4, hi-hat on the off-beats -> float32 ``[samples, 2]``."""
    beat = 60.0 / bpm
    t = np.arange(int(0.3 * sample_rate)) / sample_rate
    kick = np.sin(2 * np.pi * (50 * t + 3.0 * (1 - np.exp(-t / 0.03)))) * np.exp(-t / 0.12)
    hat = np.diff(_burst(sample_rate, 0.06, 0.015, seed=1), prepend=0.0)
    tone = np.sin(2 * np.pi * 190 * t) * np.exp(-t / 0.05)
    snare = 0.5 * _burst(sample_rate, 0.3, 0.06, seed=2) + 0.3 * tone
    beats = np.arange(0.0, seconds, beat)
    mix = np.zeros(int(seconds * sample_rate))
    _place(mix, beats, 0.8 * kick, sample_rate)
    _place(mix, beats + beat / 2, 0.3 * hat, sample_rate)
    _place(mix, beats[1::2], snare, sample_rate)
    mix = (mix / (1.1 * np.abs(mix).max())).astype(np.float32)
    return np.stack([mix, mix], axis=1)


def _max_miss(found: np.ndarray, truth: np.ndarray) -> float:
    """Largest distance in seconds from a true onset to the nearest found one."""
    return float(np.abs(found[:, None] - truth[None, :]).min(axis=0).max())


# ---------------------------------------------------------------------------------------------
# Onsets and note density


def test_onsets_of_120_bpm_click_track_within_30_ms():
    truth = steady_clicks(2.0, 8.0)
    found = C.onset_times(click_track(truth, 8.0, 44100), 44100)
    assert len(found) == len(truth)
    assert _max_miss(found, truth) < 0.03


def test_onsets_of_mono_audio_at_another_rate():
    truth = steady_clicks(3.0, 5.0)
    found = C.onset_times(click_track(truth, 5.0, 22050, stereo=False), 22050)
    assert len(found) == len(truth)
    assert _max_miss(found, truth) < 0.03


def test_note_density_is_a_rate_in_onsets_per_second():
    frame = 0.1
    density = C.note_density(steady_clicks(4.0, 20.0, offset=0.125), 200, frame, 1.0)
    assert density.shape == (200,) and density.dtype == np.float32
    np.testing.assert_allclose(density[50:150], 4.0, rtol=0.01)
    np.testing.assert_allclose(density[[0, -1]], 4.0, rtol=0.1)  # edge corrected
    single = C.note_density([10.0], 200, frame, 1.0)
    assert single.sum() * frame == pytest.approx(1.0, rel=1e-3)
    assert np.argmax(single) in (99, 100)
    np.testing.assert_array_equal(C.note_density([], 10, frame, 1.0), np.zeros(10, np.float32))


def test_note_density_blocks_match_direct_evaluation():
    onsets = np.sort(np.random.default_rng(0).uniform(0, 300, 900))
    frames = 3000
    centres = (np.arange(frames) + 0.5) * 0.1
    z = (centres[:, None] - onsets[None, :]) / 0.5
    direct = np.exp(-0.5 * z**2).sum(1) / (0.5 * np.sqrt(2 * np.pi))
    density = C.note_density(onsets, frames, 0.1, 0.5)
    inner = slice(60, -60)  # 6 bandwidths from the ends, where the edge correction is ~1
    np.testing.assert_allclose(density[inner], direct[inner], rtol=1e-5, atol=1e-6)


def test_density_curve_follows_click_rate():
    seconds = 8.0
    sample_rate = PIANO.audio.sample_rate
    middles, normalised = [], []
    for rate in (2.0, 4.0, 8.0):
        audio = click_track(steady_clicks(rate, seconds + 0.1), seconds, sample_rate)
        raw = C.density_curve(audio, PIANO, normalised=False)
        assert raw.shape == (len(audio) // PIANO.samples_per_latent,)
        middles.append(raw[len(raw) // 2])
        normalised.append(C.normalise_density(raw)[len(raw) // 2])
    np.testing.assert_allclose(middles, [2.0, 4.0, 8.0], rtol=0.1)
    assert 0.0 < normalised[0] < normalised[1] < normalised[2] < 1.0


def test_density_round_trip_and_range():
    density = np.array([0.0, 0.5, 1.0, 4.0, 16.0], np.float32)
    value = C.normalise_density(density)
    assert value[0] == 0.0 and value[-1] == pytest.approx(1.0) and np.all(np.diff(value) > 0)
    np.testing.assert_allclose(C.density_to_onsets_per_second(value), density, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(C.normalise_density([-1.0, 100.0]), [0.0, 1.0])


# ---------------------------------------------------------------------------------------------
# Tempo


@pytest.mark.parametrize("bpm", [120.0, 137.0, 174.0])
def test_tempo_of_drum_loop_within_2_bpm(bpm):
    sample_rate = TECHNO.audio.sample_rate
    assert C.estimate_tempo(drum_loop(bpm, 10.0, sample_rate), sample_rate) == pytest.approx(bpm, abs=2.0)


def test_silence_has_no_tempo():
    with pytest.raises(ValueError, match="no beats"):
        C.estimate_tempo(np.zeros((44100 * 4, 2), np.float32), 44100)


def test_fold_tempo():
    assert C.fold_tempo(45.0) == 90.0
    assert C.fold_tempo(240.0) == 120.0
    assert C.fold_tempo(199.0) == 199.0
    with pytest.raises(ValueError):
        C.fold_tempo(100.0, 90.0, 150.0)


def test_tempo_round_trip_and_curve():
    bpm = np.array([60.0, 95.5, 137.0, 200.0])
    value = C.normalise_tempo(bpm)
    np.testing.assert_allclose(value, [0.0, 35.5 / 140, 77 / 140, 1.0], rtol=1e-6)
    np.testing.assert_allclose(C.tempo_from_normalised(value), bpm, rtol=1e-6)
    np.testing.assert_array_equal(C.normalise_tempo([10.0, 300.0]), [0.0, 1.0])
    curve = C.tempo_curve(130.0, 7)
    assert curve.shape == (7,) and curve.dtype == np.float32 and np.all(curve == 0.5)


# ---------------------------------------------------------------------------------------------
# Dispatch on preset.gan.cond


def test_condition_curve_none():
    preset = get_preset("tiny")
    audio = np.zeros((preset.samples_per_latent * 4, 2), np.float32)
    assert C.condition_curve(preset, audio) is None
    assert C.constant_condition(preset, 3.0, 4) is None


def test_condition_curve_density_uses_detected_onsets(monkeypatch):
    monkeypatch.setattr(C, "onset_times", lambda audio, sr: steady_clicks(4.0, 30.0, offset=0.125))
    seconds_per_frame = PIANO.samples_per_latent / PIANO.audio.sample_rate
    audio = np.zeros((PIANO.samples_per_latent * 100 + 17, 2), np.float32)
    curve = C.condition_curve(PIANO, audio)
    assert curve.shape == (100,) and curve.dtype == np.float32
    np.testing.assert_allclose(curve[40:60], C.normalise_density(4.0), rtol=0.01)
    assert C.condition_curve(PIANO, audio, num_frames=12).shape == (12,)
    assert 100 * seconds_per_frame < 30.0  # the fake onsets cover the whole audio
    with pytest.raises(ValueError):
        C.condition_curve(PIANO, num_frames=5)


def test_condition_curve_tempo_prefers_ground_truth(monkeypatch):
    calls = []
    monkeypatch.setattr(C, "estimate_tempo", lambda audio, sr: calls.append(sr) or 130.0)
    audio = np.zeros((TECHNO.samples_per_latent * 9, 2), np.float32)
    np.testing.assert_array_equal(C.condition_curve(TECHNO, audio, tempo_bpm=95.0), C.tempo_curve(95.0, 9))
    without_audio = C.condition_curve(TECHNO, num_frames=3, tempo_bpm=95.0)
    np.testing.assert_array_equal(without_audio, C.tempo_curve(95.0, 3))
    assert calls == []
    np.testing.assert_array_equal(C.condition_curve(TECHNO, audio), np.full(9, 0.5, np.float32))
    assert calls == [TECHNO.audio.sample_rate]
    with pytest.raises(ValueError):
        C.condition_curve(TECHNO, num_frames=3)


def test_constant_condition_normalises_user_values():
    np.testing.assert_array_equal(C.constant_condition(PIANO, 4.0, 5), np.full(5, C.normalise_density(4.0)))
    np.testing.assert_array_equal(C.constant_condition(TECHNO, 130.0, 2), [0.5, 0.5])
    assert C.denormalise_condition("tempo", 0.5) == pytest.approx(130.0)
    assert C.denormalise_condition("density", C.normalise_condition("density", 6.0)) == pytest.approx(6.0)
