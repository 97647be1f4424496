"""Evaluation metrics on cases with a known answer: FAD, FAD-infinity, seams, density control."""

from __future__ import annotations

import numpy as np
import pytest

from musika_tf.evaluation import control, fad, seams

RATE = 22050


def _gaussian(n, d=16, shift=0.0, scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(shift, scale, (n, d))


def test_fad_of_a_set_against_itself_is_zero_and_grows_with_noise():
    x = _gaussian(400)
    assert fad.fad(x, x) == pytest.approx(0.0, abs=1e-6)
    rng = np.random.default_rng(1)
    values = [fad.fad(x, x + rng.normal(0, s, x.shape)) for s in (0.1, 0.3, 0.6, 1.0)]
    assert all(b > a for a, b in zip(values, values[1:])), values


def test_fad_matches_the_closed_form_for_shifted_gaussians():
    # identical covariances: FAD = |mu_a - mu_b|^2 = d * shift^2 in the limit
    a, b = _gaussian(20000, d=4, seed=0), _gaussian(20000, d=4, shift=0.5, seed=1)
    assert fad.fad(a, b) == pytest.approx(4 * 0.25, rel=0.05)


def test_fad_terms_split_a_shift_from_a_change_of_spread():
    ref = fad.GaussianStats.of(_gaussian(20000, d=4, seed=0))
    shifted = fad.GaussianStats.of(_gaussian(20000, d=4, shift=0.5, seed=1))
    wider = fad.GaussianStats.of(_gaussian(20000, d=4, scale=2.0, seed=2))
    mean_term, cov_term = fad.frechet_terms(shifted, ref)
    assert mean_term == pytest.approx(1.0, rel=0.05) and cov_term < 0.02
    mean_term, cov_term = fad.frechet_terms(wider, ref)
    assert mean_term < 0.02 and cov_term == pytest.approx(4 * (2 - 1) ** 2, rel=0.05)
    assert sum(fad.frechet_terms(wider, shifted)) == pytest.approx(fad.frechet_distance(wider, shifted))


def test_fad_infinity_of_two_halves_is_below_two_different_sets():
    x = _gaussian(600, seed=2)
    same = fad.fad_infinity(x[:300], x[300:], seed=0)
    other = fad.fad_infinity(_gaussian(300, shift=0.3, seed=3), x[300:], seed=0)
    assert same.value + 3 * same.stderr < other.value
    # the extrapolation removes the generated set's 1/n bias (the fixed reference keeps its own)
    assert same.value < same.fad_full - 3 * same.stderr
    assert same.sizes[-1] == 300 and len(same.sizes) >= 3


def test_fad_infinity_compares_across_sample_sizes():
    ref = _gaussian(800, seed=4)
    gen = _gaussian(800, shift=0.2, seed=5)
    small, large = fad.fad_infinity(gen[:200], ref), fad.fad_infinity(gen, ref)
    # plain FAD depends on n; FAD-inf agrees within the uncertainties
    assert small.fad_full > large.fad_full
    assert abs(small.value - large.value) < 3 * (small.stderr + large.stderr) + 0.05


def test_sampling_spread_matches_the_fad_spread_of_other_piece_sets_and_shrinks_with_more():
    # pieces of 4 alike patches (a per-piece offset), as generated pieces are
    def pieces(n, seed):
        rng = np.random.default_rng(seed)
        return [rng.normal(0.2, 0.3, (1, 8)) + rng.normal(0, 1, (4, 8)) for _ in range(n)]

    ref = _gaussian(2000, d=8, seed=6)
    one_set = fad.sampling_spread(pieces(32, 7), ref, draws=200)
    # the truth: FAD of many independent sets of 32 pieces
    actual = np.std([fad.fad(np.concatenate(pieces(32, 100 + i)), ref) for i in range(200)])
    assert 0.6 * actual < one_set < 1.6 * actual, (one_set, actual)
    # and it is what the fit's stderr misses: far wider than it here
    assert one_set > 2 * fad.fad_infinity(np.concatenate(pieces(32, 7)), ref).stderr
    assert fad.sampling_spread(pieces(128, 8), ref, draws=200) < 0.7 * one_set
    with pytest.raises(ValueError, match="at least 2 pieces"):
        fad.sampling_spread(pieces(1, 9), ref)


def _tone(seconds, freq, seed=0):
    t = np.arange(int(seconds * RATE)) / RATE
    rng = np.random.default_rng(seed)
    x = 0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.3 * np.sin(2 * np.pi * 0.7 * t))
    return (x + 0.001 * rng.normal(size=len(t))).astype(np.float32)


def test_seam_ratio_flags_hard_cuts_not_continuous_audio():
    join = int(1.5 * RATE)
    continuous = _tone(9.0, 330.0)
    joins = seams.window_joins(len(continuous), join)
    assert seams.seam_ratio(continuous, joins) == pytest.approx(1.0, abs=0.15)
    pieces = [_tone(1.5, f, seed=i) * (0.5 + i % 2) for i, f in enumerate((220, 523, 311, 740, 196, 415))]
    cut = np.concatenate(pieces)
    assert seams.seam_ratio(cut, seams.window_joins(len(cut), join)) > 1.5
    with pytest.raises(ValueError, match="no join"):
        seams.seam_ratio(continuous[:join // 2], [join])


def _notes(rate_per_s, seconds=8.0, seed=0):
    """Piano-like decaying tones, `rate_per_s` onsets per second, random pitches."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * RATE), np.float32)
    t = np.arange(int(0.6 * RATE)) / RATE
    for start in np.arange(0.25, seconds - 0.6, 1.0 / rate_per_s):
        f = 110 * 2 ** (rng.integers(0, 36) / 12)
        note = np.exp(-6 * t) * sum(np.sin(2 * np.pi * k * f * t) / k for k in (1, 2, 3))
        i = int(start * RATE)
        out[i:i + len(note)] += 0.3 * note
    return np.stack([out, out], axis=1)


def test_density_metric_ranks_excerpts_of_known_onset_rate():
    rates = np.array([0.5, 1.0, 2.0, 4.0, 6.0])
    measured = np.array([control.onset_rate(_notes(r, seed=i), RATE) for i, r in enumerate(rates)])
    result = control.density_control(rates, measured)
    assert result["spearman"] == pytest.approx(1.0)
    assert result["mae_onsets_per_s"] < 0.5, measured


def test_the_independent_flux_detector_also_counts_notes_of_known_rate():
    rates = np.array([0.5, 1.0, 2.0, 4.0, 6.0])
    measured = np.array([control.flux_onset_rate(_notes(r, seed=i), RATE)
                         for i, r in enumerate(rates)])
    assert control.density_control(rates, measured)["spearman"] == pytest.approx(1.0)
    # its own scale (it also hears the abrupt end of these test notes), but the same order
    assert np.all(measured >= 0.5 * rates) and np.all(measured <= 2.5 * rates), measured


def test_density_grid_spans_the_training_excerpts_frame_densities():
    """Training excerpts at 1 and 5 notes/s: the grid's 10th-90th percentile reaches both."""
    from types import SimpleNamespace

    from musika_tf.config import get_preset
    from musika_tf.evaluation.harness import Excerpt, training_density_range

    engine = SimpleNamespace(preset=get_preset("tiny", cond="density"))
    training = [Excerpt(_notes(rate, seed=i), "x.wav", None) for i, rate in enumerate([1.0, 5.0] * 2)]
    low, high = training_density_range(engine, training)
    assert 0.6 < low < 1.5 and 4.0 < high < 6.0, (low, high)


def test_density_ceiling_tells_a_range_keeping_autoencoder_from_one_that_flattens_it():
    rates = np.array([0.5, 1.0, 2.0, 4.0, 6.0])
    real = np.array([control.onset_rate(_notes(r, seed=i), RATE) for i, r in enumerate(rates)])
    kept = control.density_ceiling(real, real)
    assert kept["spearman"] == pytest.approx(1.0) and kept["slope"] == pytest.approx(1.0)
    # an "autoencoder" that turns every excerpt into the same 2-notes/s music keeps no order
    flat = np.array([control.onset_rate(_notes(2.0, seed=10 + i), RATE) for i in range(len(real))])
    lost = control.density_ceiling(real, flat)
    assert abs(lost["slope"]) < 0.2 and lost["n"] == len(real)
    assert lost["spearman"] < 0.9
