"""Latent coordinate paths: the generator's only input (reference sections 4.2 and 4.3).

A coordinate vector has ``2*coorddepth`` dims: ``[anchor part || style part]``. The style part is one
vector shared by the whole sequence; the anchor part moves linearly between random anchor vectors placed
every ``spacing`` latents along a *path*. A path position ``p`` (in latents) lies between anchors
``k = floor(p / spacing)`` and ``k + 1``; generator windows are ``latlen`` consecutive positions.

Geometry per variant (``preset.ae.variant``):

- v44: anchors every ``coordlen = 3*latlen/2`` latents; coordinates are *centred* (point ``j`` sits at
  position ``j + 0.5``, the mean of two neighbouring grid points), and inference window ``w`` starts at
  path position ``latlen/4 + w*latlen``, so every half-window is centred on an anchor or 1/3, 2/3 of the
  way between two anchors; training draws one of the three crops ``latlen/4 + f*latlen/2``, f in {0,1,2}.
- v22: no centring; inference anchors every ``latlen`` latents, window ``w`` starts exactly on anchor
  ``w``; training interpolates two segments of ``latlen - 1`` steps and crops ``latlen`` points at a random
  offset. Inference anchors are truncated at ``max(bound, 1.75)``, the style vector at ``bound``.

Every function is pure: randomness comes only from the ``seed`` argument (an int or a sequence of ints,
as accepted by ``numpy.random.default_rng``). Inference anchor ``k`` is drawn from its own stream keyed by
``(seed, k)``, so any window of a path can be produced on its own: windows made in blocks by
`CoordinateStream` equal windows made all at once, in constant memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np

from musika_tf.config import Preset

Seed = Union[int, Sequence[int]]

V22_MIN_ANCHOR_BOUND = 1.75  # v22 inference: anchors are truncated at max(bound, 1.75)

# Stream keys: independent random streams derived from one seed.
_CROP, _TRAIN_NOISE, _STYLE, _ANCHOR, _TRAIN_EXTRA_ANCHORS = 0, 1, 2, 3, 4


def _rng(seed: Seed, *key: int) -> np.random.Generator:
    """A generator for the sub-stream `key` of `seed`."""
    base = [int(s) for s in np.atleast_1d(np.asarray(seed, dtype=np.int64))]
    if any(s < 0 for s in base):
        raise ValueError(f"seeds must be non-negative, got {seed!r}")
    return np.random.default_rng(base + list(key))


def truncated_normal(rng: np.random.Generator, shape: tuple, bound: float) -> np.ndarray:
    """Standard normal samples conditioned on |x| <= bound (rejection sampling), float64 `shape`."""
    if not bound > 0:
        raise ValueError(f"truncation bound must be > 0, got {bound}")
    n = int(np.prod(shape))
    accept = math.erf(bound / math.sqrt(2.0))
    out = np.empty(0)
    while out.size < n:
        draw = rng.standard_normal(int((n - out.size) / accept * 1.2) + 16)
        out = np.concatenate([out, draw[np.abs(draw) <= bound]])
    return out[:n].reshape(shape)


def interpolate(anchors: np.ndarray, positions: np.ndarray, spacing: float, first: int = 0) -> np.ndarray:
    """Piecewise-linear path through `anchors` placed every `spacing` latents.

    anchors: (..., K, D), anchor i sits at path position (first + i) * spacing.
    positions: (N,) path positions in latents, within the anchors' span.
    Returns (..., N, D) float64.
    """
    u = np.asarray(positions, dtype=np.float64) / spacing
    k = np.minimum(np.floor(u).astype(np.int64), first + anchors.shape[-2] - 2)
    if k.min() < first:
        raise ValueError("positions lie before the first anchor")
    frac = (u - k)[:, None]
    lo = np.take(anchors, k - first, axis=-2)
    hi = np.take(anchors, k - first + 1, axis=-2)
    return lo + frac * (hi - lo)


def _with_style(anchor_part: np.ndarray, style: np.ndarray) -> np.ndarray:
    """(..., N, cd) anchor part and (..., cd) style -> (..., N, 2*cd) float32 coordinates."""
    style = np.broadcast_to(style[..., None, :], anchor_part.shape)
    return np.concatenate([anchor_part, style], -1).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Inference: a deterministic, endless path


@dataclass(frozen=True)
class PathGeometry:
    """Where inference windows lie on the anchor path (all in latents)."""

    latlen: int  # window length
    spacing: int  # distance between consecutive anchors
    offset: float  # path position of the first latent of window 0

    def positions(self, start: int, n_windows: int) -> np.ndarray:
        """Path positions of windows start..start+n_windows-1: (n_windows * latlen,)."""
        first = self.offset + self.latlen * start
        return first + np.arange(n_windows * self.latlen, dtype=np.float64)


def inference_geometry(preset: Preset) -> PathGeometry:
    """Inference window placement for the preset's variant."""
    latlen = preset.gan.latlen
    if preset.ae.variant == "v44":
        return PathGeometry(latlen, spacing=3 * latlen // 2, offset=latlen // 4 + 0.5)
    return PathGeometry(latlen, spacing=latlen, offset=0.0)


def anchor_bound(preset: Preset, bound: float) -> float:
    """Truncation bound of the anchor parts (v22 raises it to at least 1.75)."""
    return max(bound, V22_MIN_ANCHOR_BOUND) if preset.ae.variant == "v22" else bound


def style_vector(preset: Preset, bound: float, seed: Seed) -> np.ndarray:
    """The path's shared style vector: (coorddepth,) truncated normal."""
    return truncated_normal(_rng(seed, _STYLE), (preset.gan.coorddepth,), bound)


def anchor_vectors(preset: Preset, bound: float, seed: Seed, first: int, count: int) -> np.ndarray:
    """Anchor parts first..first+count-1 of the path: (count, coorddepth), each from its own stream."""
    b = anchor_bound(preset, bound)
    cd = preset.gan.coorddepth
    return np.stack([truncated_normal(_rng(seed, _ANCHOR, k), (cd,), b) for k in range(first, first + count)])


def inference_coordinates(
    preset: Preset, n_windows: int, bound: float, seed: Seed, start: int = 0
) -> np.ndarray:
    """Windows start..start+n_windows-1 of the seeded path: (n_windows, latlen, 2*coorddepth) float32.

    Consecutive windows continue each other seamlessly (concatenated along time they are one path).
    `bound` truncates the style vector and the anchors (v22 anchors: max(bound, 1.75)).
    """
    geo = inference_geometry(preset)
    pos = geo.positions(start, n_windows)
    first = int(pos[0] // geo.spacing)
    last = int(pos[-1] // geo.spacing) + 1
    anchors = anchor_vectors(preset, bound, seed, first, last - first + 1)
    path = interpolate(anchors, pos, geo.spacing, first)
    coords = _with_style(path, style_vector(preset, bound, seed))
    return coords.reshape(n_windows, geo.latlen, -1)


class CoordinateStream:
    """Endless continuation of one seeded coordinate path, window by window, in constant memory.

    ``stream.next(n)`` returns the next n windows (n, latlen, 2*coorddepth); any split into blocks gives
    the same windows as one `inference_coordinates(preset, total, bound, seed)` call.
    """

    def __init__(self, preset: Preset, bound: float, seed: Seed, start: int = 0):
        self.preset, self.bound, self.seed = preset, float(bound), seed
        self.position = int(start)  # index of the next window

    def next(self, n_windows: int = 1) -> np.ndarray:
        out = inference_coordinates(self.preset, n_windows, self.bound, self.seed, self.position)
        self.position += n_windows
        return out

    def __iter__(self):
        while True:
            yield self.next(1)[0]


# ---------------------------------------------------------------------------------------------
# Training: fresh random paths, one per batch element


def _training_layout(preset: Preset) -> tuple[int, int, float, int]:
    """(spacing, number of crops, position of crop 0, crop step) of the training sampler."""
    latlen = preset.gan.latlen
    if preset.ae.variant == "v44":
        coordlen = 3 * latlen // 2
        return coordlen, coordlen // (latlen // 2), latlen // 4 + 0.5, latlen // 2
    spacing = latlen - 1
    return spacing, 2 * spacing + 1 - latlen + 1, 0.0, 1


def training_crop(preset: Preset, seed: Seed) -> int:
    """Index of the crop the training sampler picks for this seed (shared by the whole batch).

    v44: f in {0, 1, 2} (window starts at latlen/4 + f*latlen/2 on the centred path); v22: the offset.
    """
    _, n_crops, _, _ = _training_layout(preset)
    return int(_rng(seed, _CROP).integers(n_crops))


def training_window_start(preset: Preset, seed: Seed) -> float:
    """Path position (latents from the first anchor) of the first latent of this seed's windows."""
    _, _, crop0, step = _training_layout(preset)
    return crop0 + step * training_crop(preset, seed)


def training_coordinates(preset: Preset, batch_size: int, seed: Seed,
                         length: int | None = None) -> np.ndarray:
    """Training coordinates: (batch_size, length, 2*coorddepth) float32 (`length` default latlen).

    Per element: a style vector and three anchors (left, centre, right), all N(0, I) of coorddepth dims;
    anchors at path positions 0, spacing, 2*spacing. One crop for the whole batch (`training_crop`).
    A `length` beyond the three anchors' span continues the path through further anchors from
    their own stream; the first latlen coordinates are those of the default length.
    """
    spacing = _training_layout(preset)[0]
    cd = preset.gan.coorddepth
    noise = _rng(seed, _TRAIN_NOISE).standard_normal((batch_size, 4, cd))
    style, anchors = noise[:, 0], noise[:, 1:]
    pos = training_window_start(preset, seed) + np.arange(length or preset.gan.latlen, dtype=np.float64)
    extra = int(pos[-1] // spacing) + 2 - anchors.shape[1]
    if extra > 0:
        more = _rng(seed, _TRAIN_EXTRA_ANCHORS).standard_normal((batch_size, extra, cd))
        anchors = np.concatenate([anchors, more], axis=1)
    return _with_style(interpolate(anchors, pos, spacing), style)
