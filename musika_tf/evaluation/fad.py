"""Frechet Audio Distance between two sets of embeddings, and its sample-size-free FAD-infinity.

FAD (Kilgour et al. 2019) fits a Gaussian to each set of embedding vectors ``[n, d]`` and measures

    FAD = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)).

The estimate is biased upwards by an amount that shrinks like 1/n with the number of generated
embeddings n, so values from different sample counts do not compare. FAD-infinity (Chong & Forsyth
2020, "Effectively unbiased FID") computes FAD on random subsets of several sizes n_i, fits the line
``FAD(n) = FAD_inf + k / n`` by least squares and reports its intercept; its uncertainty here is the
intercept's standard error from that fit (residual-based), reported beside the value.

That standard error only says how well the line fits the subsets of one generated set. Another set
of as many generated pieces (other seeds) gives another FAD; `sampling_spread` estimates how far,
by resampling the pieces (each piece's patches together, since they are alike) with replacement.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import linalg


@dataclass(frozen=True)
class GaussianStats:
    """Mean ``[d]`` and covariance ``[d, d]`` (float64) of a set of embeddings."""

    mean: np.ndarray
    cov: np.ndarray

    @classmethod
    def of(cls, embeddings: np.ndarray) -> "GaussianStats":
        x = np.asarray(embeddings, np.float64)
        if x.ndim != 2 or len(x) < 2:
            raise ValueError(f"need embeddings [n >= 2, d], got shape {x.shape}")
        return cls(x.mean(axis=0), np.cov(x, rowvar=False))


def frechet_terms(a: GaussianStats, b: GaussianStats) -> tuple[float, float]:
    """The two terms of the Frechet distance: ``(|mu_a - mu_b|^2, tr(S_a + S_b - 2 (S_a S_b)^(1/2)))``.
    The first says how far the sets lie apart on average, the second how differently they spread."""
    diff = a.mean - b.mean
    covmean, _ = linalg.sqrtm(a.cov @ b.cov, disp=False)
    if not np.isfinite(covmean).all():  # near-singular product: regularise as in the FID code
        eps = 1e-6 * np.eye(len(a.cov))
        covmean = linalg.sqrtm((a.cov + eps) @ (b.cov + eps))
    covmean = np.real(covmean)
    return float(diff @ diff), float(np.trace(a.cov) + np.trace(b.cov) - 2.0 * np.trace(covmean))


def frechet_distance(a: GaussianStats, b: GaussianStats) -> float:
    """Frechet distance between two Gaussians (squared-embedding units, >= 0)."""
    return float(max(sum(frechet_terms(a, b)), 0.0))


def fad(embeddings_a: np.ndarray, embeddings_b: np.ndarray) -> float:
    """FAD between two embedding sets ``[n_a, d]`` and ``[n_b, d]``."""
    return frechet_distance(GaussianStats.of(embeddings_a), GaussianStats.of(embeddings_b))


@dataclass(frozen=True)
class FadInfinity:
    """FAD extrapolated to infinitely many samples, with the fit it came from."""

    value: float  # intercept of FAD(n) = value + slope / n
    stderr: float  # standard error of the intercept from the least-squares fit
    slope: float
    sizes: tuple  # subset sizes n_i used
    fads: tuple  # FAD at each size (mean over the repeats)
    fad_full: float  # plain FAD with every sample

    def to_dict(self) -> dict:
        return asdict(self)


def subset_sizes(n: int, count: int = 8, smallest_fraction: float = 0.3) -> np.ndarray:
    """`count` distinct subset sizes spread over [smallest_fraction * n, n]."""
    low = max(2, int(round(smallest_fraction * n)))
    sizes = np.unique(np.linspace(low, n, count).round().astype(int))
    if len(sizes) < 3:
        raise ValueError(f"FAD-infinity needs at least 3 subset sizes; {n} samples give {len(sizes)}")
    return sizes


def fad_infinity(generated: np.ndarray, reference: np.ndarray, *, seed: int = 0,
                 sizes: np.ndarray | None = None, repeats: int = 3) -> FadInfinity:
    """FAD-infinity of `generated` ``[n, d]`` against all of `reference` ``[m, d]``.

    For every size n_i (default `subset_sizes(n)`) FAD is averaged over `repeats` random subsets of
    the generated set (without replacement); the reference statistics use every reference sample.
    """
    generated = np.asarray(generated, np.float64)
    ref = GaussianStats.of(reference)
    sizes = subset_sizes(len(generated)) if sizes is None else np.asarray(sizes, int)
    rng = np.random.default_rng(seed)
    means = []
    for size in sizes:
        values = [frechet_distance(GaussianStats.of(generated[rng.choice(len(generated), size, replace=False)]), ref)
                  for _ in range(1 if size == len(generated) else repeats)]
        means.append(float(np.mean(values)))
    design = np.stack([np.ones(len(sizes)), 1.0 / sizes], axis=1)
    coef, *_ = np.linalg.lstsq(design, np.asarray(means), rcond=None)
    residual = np.asarray(means) - design @ coef
    dof = max(len(sizes) - 2, 1)
    cov = (residual @ residual / dof) * np.linalg.inv(design.T @ design)
    return FadInfinity(value=float(coef[0]), stderr=float(np.sqrt(max(cov[0, 0], 0.0))),
                       slope=float(coef[1]), sizes=tuple(int(s) for s in sizes),
                       fads=tuple(means), fad_full=frechet_distance(GaussianStats.of(generated), ref))


def sampling_spread(pieces: list, reference: np.ndarray, *, seed: int = 0, draws: int = 100) -> float:
    """Standard deviation of the FAD against `reference` ``[m, d]`` over `draws` bootstrap
    resamples of `pieces` (a list of ``[patches_i, d]`` embeddings, one entry per generated piece,
    drawn with replacement and concatenated): how much the FAD moves from one set of as many pieces
    to another (squared-embedding units). Needs at least 2 pieces."""
    if len(pieces) < 2:
        raise ValueError(f"sampling_spread needs at least 2 pieces, got {len(pieces)}")
    ref = GaussianStats.of(reference)
    rng = np.random.default_rng(seed)
    values = [frechet_distance(GaussianStats.of(np.concatenate(
        [pieces[i] for i in rng.integers(0, len(pieces), len(pieces))])), ref) for _ in range(draws)]
    return float(np.std(values, ddof=1))
