"""The stateless sampler: every random draw of the inference loop as TensorFlow ops.

What the engine's host loop draws per unit (noise seeds of generator blocks and decode units, the
latent coordinate path, the tempo beat phase) computed from ``(seed, stream, index)`` with
stateless Philox ops, so the same values come out of the host loop (`musika_tf.inference`, through
`StatelessDraws`) and of a SavedModel's ``stream_step`` signature (`musika_tf.graphs`), which runs
the whole step in the graph. The path geometry is the numpy sampler's (`musika_tf.coordinates`);
only the random numbers differ: anchors and style vector are truncated normals drawn by inverse
CDF, so any bound works in a fixed number of ops.

Model folders of format v2 without a ``sampler`` in their layout use the numpy sampler
(`coordinates.inference_coordinates`, `inference.unit_seed`), which has no graph form.
"""

from __future__ import annotations

import math
from functools import partial

import tensorflow as tf

from .conditioning import DENSITY_MAX, ONSETS_PER_CYCLE, PHASE_ARRAY, TEMPO_MAX, TEMPO_MIN, network_cond
from .config import Preset
from .coordinates import V22_MIN_ANCHOR_BOUND, inference_geometry

# Sub-streams of one user seed.
GENERATOR, DECODER, STYLE, ANCHOR = 0, 1, 2, 3
_INDEX_BITS = 40  # a sub-stream's unit index occupies the low 40 bits of the Philox counter key


def stream_key(seed, stream, index) -> tf.Tensor:
    """Philox seed ``int64 [2]`` of unit `index` of sub-stream `stream` of the user `seed`."""
    stream, index = tf.cast(stream, tf.int64), tf.cast(index, tf.int64)
    return tf.stack([tf.cast(seed, tf.int64), stream * 2 ** _INDEX_BITS + index])


def unit_seed(seed, stream, index) -> tf.Tensor:
    """31-bit noise seed ``int64 []`` of unit `index` of sub-stream `stream` (the networks'
    `reseed_noise` input)."""
    return tf.random.stateless_uniform([], stream_key(seed, stream, index), minval=0,
                                       maxval=2 ** 31, dtype=tf.int64)


def truncated_normal(shape, key, bound) -> tf.Tensor:
    """Standard normal samples conditioned on ``|x| <= bound``: float64 `shape`, by inverse CDF of
    one stateless uniform draw per sample."""
    bound = tf.cast(bound, tf.float64)
    low = 0.5 * tf.math.erfc(bound / math.sqrt(2.0))  # Phi(-bound)
    u = tf.random.stateless_uniform(shape, key, dtype=tf.float64)
    return tf.clip_by_value(tf.math.ndtri(low + u * (1.0 - 2.0 * low)), -bound, bound)


def block_coordinates(preset: Preset, windows: int, seed, block, bound) -> tf.Tensor:
    """Block `block` of `windows` windows (windows ``block*windows ..``) of the seeded path:
    float32 ``[windows, latlen, 2cd]``.

    Same geometry as `coordinates.inference_coordinates` (v22 anchors truncated at
    ``max(bound, 1.75)``); anchor k is drawn from its own key ``(seed, ANCHOR, k)``, the style
    vector from ``(seed, STYLE, 0)``, so consecutive blocks continue one path.
    """
    geo, cd = inference_geometry(preset), preset.gan.coorddepth
    length = windows * geo.latlen
    first_position = geo.offset + length * tf.cast(block, tf.float64)
    u = (first_position + tf.range(length, dtype=tf.float64)) / geo.spacing  # in anchor spacings
    first = tf.cast(tf.floor(u[0]), tf.int64)
    count = (length - 1) // geo.spacing + 3  # anchors any block of this length can span
    bound = tf.cast(bound, tf.float64)
    anchor_b = tf.maximum(bound, V22_MIN_ANCHOR_BOUND) if preset.ae.variant == "v22" else bound
    anchors = tf.stack([truncated_normal([cd], stream_key(seed, ANCHOR, first + i), anchor_b)
                        for i in range(count)])  # [count, cd]
    k = tf.cast(tf.floor(u), tf.int64)
    low, high = tf.gather(anchors, k - first), tf.gather(anchors, k - first + 1)
    path = low + (u - tf.cast(k, tf.float64))[:, None] * (high - low)  # [length, cd]
    style = truncated_normal([cd], stream_key(seed, STYLE, 0), bound)
    coords = tf.concat([path, tf.broadcast_to(style, [length, cd])], axis=-1)
    return tf.reshape(tf.cast(coords, tf.float32), [windows, geo.latlen, 2 * cd])


def phase_rate(cond: str, values):
    """Graph form of `conditioning.phase_rate`: normalised values float64 ``[T]`` -> cycles/s."""
    values = tf.clip_by_value(values, 0.0, 1.0)
    if cond == "tempo":
        return (TEMPO_MIN + values * (TEMPO_MAX - TEMPO_MIN)) / 60.0
    if cond == "density_phase":
        return tf.math.expm1(values * math.log1p(DENSITY_MAX)) / ONSETS_PER_CYCLE
    raise ValueError(f"cond={cond!r} has no phase")


def condition_features(cond: str, frame_seconds: float, values, start_phase) -> tuple:
    """Graph form of `conditioning.generation_condition` for a `conditioning.network_cond`:
    normalised values float32 ``[T]`` and the beat or onset phase float64 ``[]`` of the first frame
    -> ``(network condition float32 [T, K], phase after the last frame)``; density (without phase)
    passes the phase through."""
    values = tf.convert_to_tensor(values, tf.float32)
    start_phase = tf.convert_to_tensor(start_phase, tf.float64)
    if cond == "density":
        return values[:, None], start_phase
    if cond not in PHASE_ARRAY:
        raise ValueError(f"no network condition for cond={cond!r}")
    value64 = tf.cast(values, tf.float64)
    phase = start_phase + tf.concat([tf.zeros([1], tf.float64),
                                     tf.cumsum(phase_rate(cond, value64) * frame_seconds)], axis=0)
    angle = 2.0 * math.pi * tf.math.floormod(phase[:-1], 1.0)
    features = tf.stack([value64, tf.cos(angle), tf.sin(angle)], axis=-1)
    return tf.cast(features, tf.float32), tf.math.floormod(phase[-1], 1.0)


class StatelessDraws:
    """The draws of one preset and block layout as compiled functions for the host loop (the same
    ops ``stream_step`` runs inside its graph):

    - ``coordinates(seed int64 [], block int64 [], bound float32 []) -> [W, latlen, 2cd]``
    - ``unit_seed(seed, stream int64 [], index int64 []) -> int64 []``
    - ``condition(values float32 [T], phase float64 []) -> (features [T, K], phase [])``
    """

    def __init__(self, preset: Preset, windows_per_block: int):
        scalar = partial(tf.TensorSpec, [])
        self._coordinates = tf.function(
            partial(block_coordinates, preset, windows_per_block), autograph=False,
            input_signature=[scalar(tf.int64), scalar(tf.int64), scalar(tf.float32)])
        self._unit_seed = tf.function(unit_seed, autograph=False,
                                      input_signature=[scalar(tf.int64)] * 3)
        self.cond = network_cond(preset)
        if self.cond != "none":
            self.condition = tf.function(
                partial(condition_features, self.cond, 1.0 / preset.latent_rate), autograph=False,
                input_signature=[tf.TensorSpec([None], tf.float32), scalar(tf.float64)])

    def coordinates(self, seed: int, block: int, bound: float) -> tf.Tensor:
        return self._coordinates(tf.constant(seed, tf.int64), tf.constant(block, tf.int64),
                                 tf.constant(bound, tf.float32))

    def unit_seed(self, seed: int, stream: int, index: int) -> tf.Tensor:
        return self._unit_seed(*(tf.constant(v, tf.int64) for v in (seed, stream, index)))
