"""Coordinate samplers: grid geometry, style sharing, truncation, determinism, endless continuation."""

from __future__ import annotations

import numpy as np
import pytest

from musika_tf import coordinates as C
from musika_tf.config import get_preset
from tests.conftest import reference_fixtures

V44, V22, TINY = get_preset("musika44"), get_preset("paper22"), get_preset("tiny")


def _kinks(path: np.ndarray, tol: float = 1e-5) -> np.ndarray:
    """Indices i where the anchor half of a (T, D) path bends between points i and i+1 (or i+1, i+2)."""
    cd = path.shape[-1] // 2
    d2 = np.abs(np.diff(path[:, :cd].astype(np.float64), 2, axis=0)).max(-1)
    return np.flatnonzero(d2 > tol)


def _concat(windows: np.ndarray) -> np.ndarray:
    return windows.reshape(-1, windows.shape[-1])


def _assert_constant_over_time(x: np.ndarray) -> None:
    """x [..., T, D] does not change along T."""
    np.testing.assert_array_equal(x, np.broadcast_to(x[..., :1, :], x.shape))


@pytest.mark.parametrize("preset", [V44, V22, TINY], ids=lambda p: p.name)
def test_inference_shapes_style_and_bound(preset):
    bound = 0.7
    out = C.inference_coordinates(preset, 5, bound, seed=11)
    cd = preset.gan.coorddepth
    assert out.shape == (5, preset.gan.latlen, 2 * cd) and out.dtype == np.float32
    style = out[..., cd:]
    _assert_constant_over_time(_concat(style))
    assert np.abs(style).max() <= bound
    anchor_bound = max(bound, 1.75) if preset.ae.variant == "v22" else bound
    assert np.abs(out[..., :cd]).max() <= anchor_bound
    if preset.ae.variant == "v22":  # anchors really use the raised bound
        assert np.abs(out[..., :cd]).max() > bound


def test_v44_inference_grid():
    latlen, spacing = 256, 384
    path = _concat(C.inference_coordinates(V44, 6, 2.0, seed=3)).astype(np.float64)
    # window w starts at path position 64 + 256 w + 0.5: anchor k (position 384 k) falls between points
    # 384 k - 65 and 384 k - 64, so the second difference is non-zero at those two points only.
    expected = [i for k in range(1, 6) for i in (spacing * k - 66, spacing * k - 65) if i < len(path) - 2]
    np.testing.assert_array_equal(_kinks(path), expected)
    # centring: the point before anchor 1 sits half a step before it, window 0 starts 64.5 steps
    # after anchor 0
    step = (path[255] - path[0]) / 255
    a1 = path[383 - 64] + 0.5 * step
    np.testing.assert_allclose(path[0] - 64.5 * step + spacing * step, a1, atol=1e-5)
    # half-window centres are at an anchor or at 1/3, 2/3 between anchors
    centres = 64 + 0.5 + np.arange(12) * (latlen // 2) + (latlen // 4 - 0.5)
    np.testing.assert_allclose((centres % spacing) / spacing * 3 % 1, 0, atol=1e-9)


def test_v22_inference_windows_start_on_anchors():
    bound = 0.3
    out = C.inference_coordinates(V22, 4, bound, seed=9).astype(np.float64)
    np.testing.assert_array_equal(_kinks(_concat(out)), [255, 511, 767])
    # window w runs from anchor w towards anchor w + 1 in 256 equal steps
    steps = np.diff(out[..., :64], axis=1)
    np.testing.assert_allclose(steps, np.broadcast_to(steps[:, :1], steps.shape), atol=1e-5)
    np.testing.assert_allclose(out[:-1, -1, :64] + steps[:-1, -1], out[1:, 0, :64], atol=1e-5)
    assert np.abs(out[..., :64]).max() > 1.0 > bound  # anchors truncated at 1.75, not at 0.3


def test_same_seed_same_path_other_seed_other_path():
    a = C.inference_coordinates(V44, 2, 1.5, seed=[4, 2])
    np.testing.assert_array_equal(a, C.inference_coordinates(V44, 2, 1.5, seed=[4, 2]))
    assert not np.allclose(a, C.inference_coordinates(V44, 2, 1.5, seed=[4, 3]))
    t = C.training_coordinates(V44, 3, seed=8)
    np.testing.assert_array_equal(t, C.training_coordinates(V44, 3, seed=8))
    assert not np.allclose(t, C.training_coordinates(V44, 3, seed=9))


@pytest.mark.parametrize("preset", [V44, V22, TINY], ids=lambda p: p.name)
def test_blockwise_equals_all_at_once(preset):
    stream = C.CoordinateStream(preset, 1.2, seed=21)
    blocks = np.concatenate([stream.next(1), stream.next(4), stream.next(2), next(iter(stream))[None]])
    np.testing.assert_array_equal(blocks, C.inference_coordinates(preset, 8, 1.2, seed=21))
    assert stream.position == 8
    np.testing.assert_array_equal(C.inference_coordinates(preset, 3, 1.2, 21, start=5), blocks[5:])


def test_v44_training_grid_and_centring():
    latlen = 256
    seen = set()
    for seed in range(12):
        coords = C.training_coordinates(V44, 4, seed=seed).astype(np.float64)
        f = C.training_crop(V44, seed)
        seen.add(f)
        start = latlen // 4 + f * latlen // 2
        assert C.training_window_start(V44, seed) == start + 0.5
        assert coords.shape == (4, latlen, 128)
        # centre anchor at path position 384: between points 383 - start and 384 - start (crops 1, 2)
        expected = [382 - start, 383 - start] if f else []
        for path in coords:
            np.testing.assert_array_equal(_kinks(path), expected)
        _assert_constant_over_time(coords[:, :, 64:])
        assert not np.allclose(coords[0], coords[1])  # fresh per element
        if f == 1:  # the anchor is the exact centre of the second half-window (points 128..255)
            for path in coords[:, :, :64]:
                s0, s1 = (path[191] - path[128]) / 63, (path[255] - path[192]) / 63
                anchor = path[191] + 0.5 * s0
                half = np.arange(64)[:, None] + 0.5
                np.testing.assert_allclose(path[191::-1][:64], anchor - half * s0, atol=1e-5)
                np.testing.assert_allclose(path[192:], anchor + half * s1, atol=1e-5)
    assert seen == {0, 1, 2}


def test_v22_training_spacing_and_crop():
    offsets = set()
    for seed in range(6):
        coords = C.training_coordinates(V22, 2, seed=seed).astype(np.float64)
        off = C.training_crop(V22, seed)
        offsets.add(off)
        assert 0 <= off <= 255 and coords.shape == (2, 256, 128)
        kink = 255 - off  # centre anchor at position 255 (spacing latlen - 1)
        expected = [kink - 1] if 1 <= kink <= 255 else []
        for path in coords:
            np.testing.assert_array_equal(_kinks(path), expected)
    assert len(offsets) > 1


def test_small_and_tiny_geometry():
    assert C.inference_geometry(TINY) == C.PathGeometry(128, 192, 32.5)
    path = _concat(C.inference_coordinates(TINY, 4, 1.0, seed=1)).astype(np.float64)
    np.testing.assert_array_equal(_kinks(path, 1e-6), [190 - 32, 191 - 32, 382 - 32, 383 - 32])


def test_reference_gen_in_has_our_v44_grid():
    """The fixture's coordinates (TF RNG) follow the same grid as ours (numpy RNG)."""
    ref = np.load(reference_fixtures() / "v44" / "io.npz")["gen_in"]
    ours = C.inference_coordinates(V44, ref.shape[0], 2.0, seed=0)
    assert ref.shape == ours.shape
    ref_path, our_path = _concat(ref).astype(np.float64), _concat(ours).astype(np.float64)
    np.testing.assert_array_equal(_kinks(ref_path), _kinks(our_path))
    _assert_constant_over_time(ref_path[:, 64:])
    assert np.abs(ref).max() <= 2.0
    # linear between anchors at 384-latent spacing: anchor 1 is the midpoint of points 319 and 320, and
    # extrapolating window 0's line by 384 latents from anchor 0 lands on it
    step = (ref_path[255, :64] - ref_path[0, :64]) / 255
    line = ref_path[0, :64] + np.arange(320)[:, None] * step
    np.testing.assert_allclose(ref_path[:320, :64], line, atol=5e-5)
    a0 = ref_path[0, :64] - 64.5 * step
    a1 = ref_path[319, :64] + 0.5 * step
    np.testing.assert_allclose(a0 + 384 * step, a1, atol=1e-5)


def test_reference_v22_gen_in_has_our_v22_grid():
    ref = np.load(reference_fixtures() / "v22" / "io.npz")["gen_in"]
    ours = C.inference_coordinates(V22, ref.shape[0], 0.885, seed=0)
    np.testing.assert_array_equal(_kinks(_concat(ref)), _kinks(_concat(ours)))
    assert np.abs(ref[..., 64:]).max() <= 0.885 and np.abs(ref[..., :64]).max() <= 1.75


def test_truncated_normal_respects_tiny_bounds():
    x = C.truncated_normal(np.random.default_rng(0), (1000,), 0.05)
    assert np.abs(x).max() <= 0.05 and x.std() > 0.02
    with pytest.raises(ValueError):
        C.truncated_normal(np.random.default_rng(0), (3,), 0.0)
