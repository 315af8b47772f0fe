"""Post-training quantisation of the subspace coordinates z to L levels (torch-free).

Levels are either ``uniform`` (L equally spaced values over [min z, max z]) or ``kmeans`` (Lloyd's
algorithm in one dimension, started from the quantiles of z, deterministic; Lloyd 1982). Lotfi et
al. (2022, Section 4) quantise z with learned levels initialised by k-means; quantisation-aware
fine-tuning of those levels lives in :mod:`pacbayes.subspace.training`.

Levels are snapped to a dyadic grid n 2^-e whose step is at most 1/RESOLUTION of the smallest
gap between levels (:func:`snap_levels`): the message codes the integers n, not 16-bit floats
(:mod:`pacbayes.subspace.coding`), and the decoder reproduces the float32 levels bit for bit.
Each coordinate is assigned to its nearest level.
"""

import numpy as np

from pacbayes.errors import InputError
from pacbayes.subspace.coding import MAX_EXPONENT, grid_values

METHODS = ("kmeans", "uniform")
RESOLUTION = 16
"""Grid steps per smallest gap between levels: snapping moves a level by at most 1/32 of a gap."""
LARGEST_LEVEL = 65504.0


def _check(z, levels: int) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64).reshape(-1)
    if z.size == 0 or not np.all(np.isfinite(z)):
        raise InputError("z must be a non-empty vector of finite numbers")
    if isinstance(levels, bool) or int(levels) != levels or levels < 1:
        raise InputError(f"the number of quantisation levels must be an integer >= 1, got {levels!r}")
    return z


def snap_levels(values) -> np.ndarray:
    """Sorted levels rounded to the grid n 2^-e, e the smallest exponent in 0..31 whose step is at
    most (smallest positive gap, or largest magnitude for one level) / RESOLUTION; float32."""
    values = np.sort(np.asarray(values, dtype=np.float64).reshape(-1))
    if np.any(np.abs(values) > LARGEST_LEVEL):
        raise InputError(f"a quantisation level exceeds {LARGEST_LEVEL:g}; z has diverged")
    gaps = np.diff(values)
    gaps = gaps[gaps > 0]
    scale = gaps.min() if gaps.size else np.abs(values).max()
    exponent = MAX_EXPONENT if scale == 0 else int(np.clip(np.ceil(np.log2(RESOLUTION / scale)), 0, MAX_EXPONENT))
    return grid_values(exponent, np.round(np.ldexp(values, exponent)).astype(np.int64).tolist())


def uniform_levels(z, levels: int) -> np.ndarray:
    """L equally spaced levels over [min z, max z], snapped (:func:`snap_levels`)."""
    z = _check(z, levels)
    return snap_levels(np.linspace(z.min(), z.max(), int(levels)))


def kmeans_levels(z, levels: int, iterations: int = 100) -> np.ndarray:
    """One-dimensional k-means (Lloyd) levels of z, started at its quantiles, snapped (:func:`snap_levels`)."""
    z = _check(z, levels)
    centres = np.quantile(z, (np.arange(int(levels)) + 0.5) / int(levels))
    for _ in range(iterations):
        symbols = assign(z, centres)
        sums = np.bincount(symbols, weights=z, minlength=centres.size)
        counts = np.bincount(symbols, minlength=centres.size)
        updated = np.where(counts > 0, sums / np.maximum(counts, 1), centres)
        if np.array_equal(updated, centres):
            break
        centres = updated
    return snap_levels(centres)


def assign(z, codebook) -> np.ndarray:
    """Index of the nearest level for every coordinate (ties go to the lower index)."""
    z = np.asarray(z, dtype=np.float64).reshape(-1)
    codebook = np.asarray(codebook, dtype=np.float64)
    return np.argmin(np.abs(z[:, None] - codebook[None, :]), axis=1).astype(np.int64)


def make_levels(z, levels: int, method: str = "kmeans") -> np.ndarray:
    if method == "kmeans":
        return kmeans_levels(z, levels)
    if method == "uniform":
        return uniform_levels(z, levels)
    raise InputError(f"unknown quantisation method {method!r}; choose one of {', '.join(METHODS)}")
