"""The structured multi-class sampler's per-point loop on the CPU, one compiled (numba) kernel per block.

:class:`pacbayes.evidence.multiclass_sampler.StructuredProposal` draws the C - 1 centred logits
v_k = sum_c V_ck f_c of the m points point by point, coordinate k through its own lower-triangular
factor L_k (the Gaussian Q_k in the common point order): the linear form sum_{j<i} L_k[i, j] e_k[j]
of the earlier points' whitened draws gives Q_k's conditional mean at point i. The earlier blocks'
part arrives as one batched GEMM (``carried``); :func:`advance_block` adds the in-block part (the
binary kernel's :func:`~pacbayes.evidence._sampler_kernel._in_block`), forms the cavity means, and
draws the point's C - 1 values jointly from the cavity Gaussian restricted to the point's
constraints g_i = T_i v_i > 0, exactly, by GHK in the point's C - 1 dimensions: one truncated normal
per constraint by inversion (:func:`~pacbayes.evidence._sampler_kernel.truncated_normal`). One
uniform per coordinate, point and draw comes from the caller's seeded torch generator. It holds no
Python object, so it runs without the GIL and the caller splits the draws over threads.
"""

import numba
import numpy as np

from pacbayes.evidence._sampler_kernel import TILE, _in_block, truncated_normal

_KERNEL = dict(nogil=True, boundscheck=False, fastmath={"contract"}, cache=True)
# columns of the per-(coordinate, point) table: Q_k's mean, its conditional sd s, the site (precision d,
# natural mean b), the cavity variance w, and ln(sqrt(w) / s)
OFFSET, SCALE, SITE_PRECISION, SITE_MEAN, CAVITY_VARIANCE, HALF_LOG_RATIO = range(6)
COLUMNS = 6


@numba.njit(**_KERNEL)
def _point(rows, linear, maps, chol, root, uniforms, z, log_w, s, a, x):
    """Draw s at one point: cavity means a_k, the GHK draw of g = T v > 0 (T ``maps``, T W T^T = ``chol``
    chol^T, v = a + ``root`` x for the whitened draws x), whitened v stored in z; ln w grows by
    sum_k [ln(sqrt(w_k)/s_k) + a_k^2/(2 w_k) - c_k^2/(2 s_k^2)] + sum_j ln Pr[x_j >= lower_j]; ``a``, ``x``
    scratch vectors of length C - 1."""
    dims = rows.shape[0]
    total = 0.0
    for k in range(dims):
        c = rows[k, OFFSET] + linear[k, s]
        scale2 = rows[k, SCALE] * rows[k, SCALE]
        w = rows[k, CAVITY_VARIANCE]
        a[k] = w * (c / scale2 - rows[k, SITE_MEAN])
        total += rows[k, HALF_LOG_RATIO] + 0.5 * (a[k] * a[k] / w - c * c / scale2)
    for j in range(dims):
        centre = 0.0
        for k in range(dims):
            centre += maps[j, k] * a[k]
        for k in range(j):
            centre += chol[j, k] * x[k]
        x[j], log_mass = truncated_normal(-centre / chol[j, j], uniforms[j, s])
        total += log_mass
    for k in range(dims):
        value = a[k]
        for j in range(dims):
            value += root[k, j] * x[j]
        z[k, s] = (value - rows[k, OFFSET] - linear[k, s]) / rows[k, SCALE]
    log_w[s] += total


@numba.njit(**_KERNEL)
def advance_block(L, Z, carried, uniforms, log_w, table, maps, chol, root, start, first, last):
    """Points start .. start + carried.shape[1] - 1 of draws first .. last - 1, in place in Z and log_w.

    L (C-1, m, m): the coordinates' factors (strict lower triangles read); Z (C-1, m, draws): whitened
    draws; ``carried`` (C-1, block, draws): sum_{j < start} L_k[i, j] Z[k, j]; ``uniforms`` like
    ``carried``; ``table`` (m, C-1, COLUMNS); ``maps``, ``chol``, ``root`` (m, C-1, C-1) per point."""
    dims = L.shape[0]
    linear = np.empty((dims, TILE))
    z = np.empty((dims, TILE))
    a = np.empty(dims)
    x = np.empty(dims)
    for tile in range(first, last, TILE):
        end = min(tile + TILE, last)
        width = end - tile
        for row in range(carried.shape[1]):
            i = start + row
            for k in range(dims):
                out = linear[k, :width]
                out[:] = carried[k, row, tile:end]
                _in_block(L[k, i], Z[k], start, i, tile, end, out)
            for s in range(width):
                _point(
                    table[i], linear, maps[i], chol[i], root[i], uniforms[:, row, tile:end], z, log_w[tile:end], s, a, x
                )
            for k in range(dims):
                Z[k, i, tile:end] = z[k, :width]


__all__ = ["COLUMNS", "advance_block"]
