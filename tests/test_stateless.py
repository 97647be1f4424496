"""The stateless sampler's draws (TensorFlow ops): path geometry of the numpy sampler, blocks that
continue one path, truncation, seeds, and the tempo condition's beat phase."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from musika_tf import stateless as S
from musika_tf.conditioning import generation_condition
from musika_tf.config import get_preset
from musika_tf.coordinates import inference_coordinates
from musika_tf.graphs import BlockLayout
from tests.test_coordinates import _kinks

V44, V22, TINY = get_preset("musika44"), get_preset("paper22"), get_preset("tiny")


def _path(preset, windows: int, block: int, bound: float = 1.2, seed: int = 5) -> np.ndarray:
    return S.block_coordinates(preset, windows, seed, block, bound).numpy()


@pytest.mark.parametrize("preset", [V44, V22, TINY], ids=lambda p: p.name)
def test_blocks_continue_one_path_with_the_numpy_geometry(preset):
    whole = _path(preset, 6, 0)
    cd = preset.gan.coorddepth
    assert whole.shape == (6, preset.gan.latlen, 2 * cd) and whole.dtype == np.float32
    np.testing.assert_array_equal(np.concatenate([_path(preset, 2, b) for b in range(3)]), whole)
    np.testing.assert_array_equal(_path(preset, 3, 1), whole[3:])
    # the anchor half bends where the numpy sampler's does; the style half is one vector
    flat = whole.reshape(-1, 2 * cd)
    numpy_path = inference_coordinates(preset, 6, 1.2, seed=5).reshape(-1, 2 * cd)
    np.testing.assert_array_equal(_kinks(flat), _kinks(numpy_path))
    np.testing.assert_array_equal(flat[:, cd:], np.broadcast_to(flat[:1, cd:], flat[:, cd:].shape))
    assert not np.allclose(whole, _path(preset, 6, 0, seed=6))


@pytest.mark.parametrize("preset", [V44, V22], ids=lambda p: p.name)
def test_truncation_bounds(preset):
    bound, cd = 0.3, preset.gan.coorddepth
    out = _path(preset, 4, 0, bound=bound)
    assert np.abs(out[..., cd:]).max() <= bound
    anchor_bound = max(bound, 1.75) if preset.ae.variant == "v22" else bound
    assert np.abs(out[..., :cd]).max() <= anchor_bound
    if preset.ae.variant == "v22":
        assert np.abs(out[..., :cd]).max() > 1.0


@pytest.mark.parametrize("bound", [0.5, 1.0, 3.0])
def test_truncated_normal_has_the_truncated_moments(bound):
    x = S.truncated_normal([40000], S.stream_key(3, S.ANCHOR, 7), bound).numpy()
    assert x.dtype == np.float64 and np.abs(x).max() <= bound
    pdf, mass = math.exp(-bound ** 2 / 2) / math.sqrt(2 * math.pi), math.erf(bound / math.sqrt(2))
    variance = 1.0 - 2.0 * bound * pdf / mass
    assert abs(x.mean()) < 4 * math.sqrt(variance / len(x))
    assert x.var() == pytest.approx(variance, rel=0.03)


def test_unit_seeds_are_31_bit_and_keyed_by_stream_and_index():
    seeds = {int(S.unit_seed(9, stream, index)) for stream in (S.GENERATOR, S.DECODER)
             for index in range(50)}
    assert len(seeds) == 100 and all(0 <= s < 2 ** 31 for s in seeds)
    assert int(S.unit_seed(9, S.DECODER, 3)) == int(S.unit_seed(9, S.DECODER, 3))
    assert int(S.unit_seed(9, S.DECODER, 3)) != int(S.unit_seed(10, S.DECODER, 3))


def test_condition_features_equal_the_numpy_ones():
    values = np.linspace(0.2, 0.9, 300).astype(np.float32)
    frame = 1.0 / TINY.latent_rate
    for cond in ("density", "density_phase", "tempo"):
        features, phase = S.condition_features(cond, frame, values, np.float64(0.3))
        expected, expected_phase = generation_condition(cond, values, 0.3, frame)
        np.testing.assert_allclose(features.numpy(), expected, atol=1e-5)
        assert float(phase) == pytest.approx(expected_phase, abs=1e-9)


def test_layout_records_the_sampler():
    assert BlockLayout().sampler == "stateless"
    assert BlockLayout.from_dict(BlockLayout().to_dict()) == BlockLayout()
    old = BlockLayout.from_dict({"windows_per_block": 2, "decode_chunks": 8})  # a format-v2 card
    assert old.sampler == "numpy"
    with pytest.raises(ValueError, match="sampler"):
        BlockLayout(sampler="philox")


def test_draws_compile_once_per_engine():
    draws = S.StatelessDraws(TINY, 2)
    np.testing.assert_array_equal(draws.coordinates(5, 1, 1.2).numpy(), _path(TINY, 2, 1))
    assert draws.unit_seed(5, S.DECODER, 4).dtype == tf.int64
    assert draws._coordinates.experimental_get_tracing_count() == 1
    draws.coordinates(6, 3, 0.7)
    assert draws._coordinates.experimental_get_tracing_count() == 1
