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


def test_tempo_round_trip():
    bpm = np.array([60.0, 95.5, 137.0, 200.0])
    value = C.normalise_tempo(bpm)
    np.testing.assert_allclose(value, [0.0, 35.5 / 140, 77 / 140, 1.0], rtol=1e-6)
    np.testing.assert_allclose(C.tempo_from_normalised(value), bpm, rtol=1e-6)
    np.testing.assert_array_equal(C.normalise_tempo([10.0, 300.0]), [0.0, 1.0])


# ---------------------------------------------------------------------------------------------
# Dispatch on preset.gan.cond


def test_stored_conditions_none():
    preset = get_preset("tiny")
    audio = np.zeros((preset.samples_per_latent * 4, 2), np.float32)
    assert C.stored_conditions(preset, audio, 4) == {}
    assert C.constant_condition(preset, 3.0, 4) is None


def test_stored_density_uses_detected_onsets(monkeypatch):
    monkeypatch.setattr(C, "onset_times", lambda audio, sr: steady_clicks(4.0, 30.0, offset=0.125))
    seconds_per_frame = PIANO.samples_per_latent / PIANO.audio.sample_rate
    audio = np.zeros((PIANO.samples_per_latent * 100 + 17, 2), np.float32)
    stored = C.stored_conditions(PIANO, audio, 100)
    assert list(stored) == ["density", "onset_phase"]
    curve = stored["density"]
    assert curve.shape == (100,) and curve.dtype == np.float32
    np.testing.assert_allclose(curve[40:60], C.normalise_density(4.0), rtol=0.01)
    assert C.stored_conditions(PIANO, audio, 12)["density"].shape == (12,)
    assert 100 * seconds_per_frame < 30.0  # the fake onsets cover the whole audio
    # 4 onsets/s, a quarter cycle each: the phase runs at one cycle per second
    steps = np.diff(np.unwrap(2 * np.pi * stored["onset_phase"].astype(np.float64))) / (2 * np.pi)
    np.testing.assert_allclose(steps[1:], seconds_per_frame * 4.0 / C.ONSETS_PER_CYCLE, atol=1e-5)
    assert stored["onset_phase"][0] == 0.0  # still before the first onset (0.125 s)


def test_onset_phase_marks_every_onset_and_stands_still_outside_them():
    frame = 0.05
    onsets = np.array([1.0, 1.5, 3.5, 3.75])
    phase = C.onset_phase(onsets, 100, frame).astype(np.float64)
    times = np.arange(100) * frame
    for k, t in enumerate(onsets):  # the k-th onset at phase k / ONSETS_PER_CYCLE
        assert phase[int(round(t / frame))] == pytest.approx((k / C.ONSETS_PER_CYCLE) % 1.0, abs=1e-6)
    assert (phase[times < 1.0] == 0.0).all()
    assert np.ptp(phase[times > 3.75]) == 0.0
    unwrapped = np.unwrap(2 * np.pi * phase) / (2 * np.pi)
    assert (np.diff(unwrapped) >= -1e-9).all()  # never runs backwards
    # between onsets 1.5 s and 3.5 s a quarter cycle takes 2 s: slow where notes are sparse
    inside = (times > 1.5) & (times < 3.5)
    np.testing.assert_allclose(np.diff(unwrapped[inside]), frame / 2.0 / C.ONSETS_PER_CYCLE, atol=1e-6)
    np.testing.assert_array_equal(C.onset_phase(np.array([2.0]), 5, frame), np.zeros(5))


@pytest.mark.parametrize("late", [0.0, 0.13, 0.31])
def test_beat_offset_finds_where_the_beats_fall(late):
    """A loop whose beats start `late` seconds in has phase -late * bpm / 60 at its first sample."""
    bpm, rate = 128.0, TECHNO.audio.sample_rate
    loop = drum_loop(bpm, 12.0, rate)
    audio = np.concatenate([np.zeros((int(round(late * rate)), 2), np.float32), loop])
    offset = C.beat_offset(C.beat_activation(audio, rate), bpm)
    error = (offset - (-late * bpm / 60.0)) % 1.0
    assert min(error, 1.0 - error) < 0.04  # cycles: under 20 ms at 128 BPM


def test_stored_tempo_prefers_ground_truth_and_keeps_the_beat_phase(monkeypatch):
    calls = []
    real_estimate = C.estimate_tempo
    monkeypatch.setattr(C, "estimate_tempo", lambda *a, **k: calls.append(1) or real_estimate(*a, **k))
    rate = TECHNO.audio.sample_rate
    audio = drum_loop(124.0, 12.0, rate)
    frames = len(audio) // TECHNO.samples_per_latent
    stored = C.stored_conditions(TECHNO, audio, frames, tempo_bpm=124.0)
    assert calls == [] and stored["tempo_bpm"] == 124.0
    assert stored["tempo"] == C.normalise_tempo(124.0)
    step = 124.0 / 60.0 / TECHNO.latent_rate  # beats per latent frame
    np.testing.assert_allclose(np.diff(np.unwrap(2 * np.pi * stored["beat_phase"])) / (2 * np.pi),
                               (step + 0.5) % 1.0 - 0.5, atol=1e-5)
    assert abs((stored["beat_phase"][0] + 0.5) % 1.0 - 0.5) < 0.04  # the loop starts on a beat
    estimated = C.stored_conditions(TECHNO, audio, frames)
    assert calls == [1] and abs(float(estimated["tempo_bpm"]) - 124.0) < 2.0
    with pytest.raises(C.NoBeatsError):
        C.stored_conditions(TECHNO, np.zeros_like(audio), frames, tempo_bpm=124.0)


def test_network_condition_channels():
    values = np.array([[0.2, 0.4, 0.6]], np.float32)
    assert C.network_condition("density", values).shape == (1, 3, 1)
    tempo = C.network_condition("tempo", values, np.array([[0.0, 0.25, 0.5]]))
    np.testing.assert_allclose(tempo[0], [[0.2, 1, 0], [0.4, 0, 1], [0.6, -1, 0]], atol=1e-6)
    assert [C.condition_channels(c) for c in ("none", "density", "density_phase", "tempo")] \
        == [0, 1, 3, 3]
    with pytest.raises(ValueError, match="phase"):
        C.network_condition("tempo", values)
    with pytest.raises(ValueError, match="phase"):
        C.network_condition("density_phase", values)
    assert C.network_cond(PIANO) == "density" and C.network_cond(TECHNO) == "tempo"
    assert C.network_cond(PIANO.with_overrides(density_phase=True)) == "density_phase"
    assert C.network_cond(TECHNO.with_overrides(density_phase=True)) == "tempo"


def test_beat_phase_runs_on_across_calls_and_follows_the_tempo():
    frame = 0.1
    values = C.normalise_tempo(np.r_[np.full(7, 120.0), np.full(5, 150.0)])
    whole, end = C.advance_phase("tempo", values, 0.3, frame)
    first, middle = C.advance_phase("tempo", values[:4], 0.3, frame)
    second, end2 = C.advance_phase("tempo", values[4:], middle, frame)
    np.testing.assert_allclose(np.r_[first, second], whole, atol=1e-9)
    assert end == pytest.approx(end2)
    steps = np.diff(np.unwrap(2 * np.pi * whole)) / (2 * np.pi)
    np.testing.assert_allclose(steps, np.r_[np.full(7, 0.2), np.full(4, 0.25)], atol=1e-9)
    features, after = C.generation_condition("tempo", values, 0.3, frame)
    assert features.shape == (12, 3) and after == pytest.approx(end)
    density, phase = C.generation_condition("density", values, 0.3, frame)
    assert density.shape == (12, 1) and phase == 0.3


def test_onset_phase_advances_at_the_requested_density():
    frame = 0.1
    values = C.normalise_density(np.r_[np.full(6, 2.0), np.full(6, 8.0)])
    features, after = C.generation_condition("density_phase", values, 0.1, frame)
    assert features.shape == (12, 3)
    np.testing.assert_allclose(features[:, 0], values)
    unwrapped = np.unwrap(np.arctan2(features[:, 2], features[:, 1])) / (2 * np.pi)
    np.testing.assert_allclose(np.diff(unwrapped), np.r_[np.full(6, 0.05), np.full(5, 0.2)], atol=1e-6)
    assert after == pytest.approx((0.1 + 6 * 0.05 + 6 * 0.2) % 1.0)


def test_constant_condition_normalises_user_values():
    np.testing.assert_array_equal(C.constant_condition(PIANO, 4.0, 5), np.full(5, C.normalise_density(4.0)))
    np.testing.assert_array_equal(C.constant_condition(TECHNO, 130.0, 2), [0.5, 0.5])
    assert C.denormalise_condition("tempo", 0.5) == pytest.approx(130.0)
    assert C.denormalise_condition("density", C.normalise_condition("density", 6.0)) == pytest.approx(6.0)
