"""The structured multi-class sampler's per-point loop on the CPU, one compiled (numba) kernel per block.

:class:`pacbayes.evidence.multiclass_sampler.ConditionalProposal` draws the C - 1 centred logits
v_k of the m points point by point. All coordinates share the prior's factor L (K = L L^T in the
sampling order): with z the whitened draws (z_ik = (v_ik - mu_ik) / L_ii), the prior conditional
mean of v_ik given the earlier points is mu_ik = sum_{j<i} L_ij z_jk. The earlier blocks' part
arrives as one GEMM (``carried``); :func:`advance_block` adds the in-block part, then at each point
draws the differences g = T v from the point's Gaussian N(T (F mu + e), T S T^T) restricted to g > 0
by the EP-cavity sampler of :mod:`pacbayes.evidence.ep_cavity` in C - 1 dimensions (the point's own
EP sites; module docstring of :mod:`pacbayes.evidence.multiclass_sampler`), and adds the point's
draw-dependent log weight. One uniform per coordinate, point and draw comes from the caller's seeded
torch generator; the kernel holds no Python object, so it runs without the GIL and the caller
splits the draws over threads.
"""

import math
from typing import Any

import numba
import numpy as np

from pacbayes.evidence._sampler_kernel import TILE, _in_block, truncated_normal

_KERNEL: dict[str, Any] = dict(nogil=True, boundscheck=False, fastmath={"contract"}, cache=True)
# per-point matrices: F, T F, (T S T^T)^-1, Sigma_Q, its Cholesky factor, T^-1
GAIN, CENTRE_GAIN, PRECISION, SIGMA_Q, FACTOR_Q, INVERSE_MAP = range(6)
# per-point vectors: e, T e, the sites (tau, nu) on g, the cavity variances w, the conditional sds s of Q
OFFSET, CENTRE_OFFSET, TAU, NU, CAVITY, SD_Q = range(6)
MATRICES = VECTORS = 6


@numba.njit(**_KERNEL)
def _point(scale, mats, vecs, linear, uniforms, z, log_w, s, work):
    """Draw s at one point given the prior conditional means mu = ``linear[:, s]``; ``work`` (5, C-1) scratch."""
    dims = mats.shape[1]
    centre, h, mean_q, eps, g = work[0], work[1], work[2], work[3], work[4]
    for j in range(dims):
        value = vecs[CENTRE_OFFSET, j]
        for k in range(dims):
            value += mats[CENTRE_GAIN, j, k] * linear[k, s]
        centre[j] = value
    quad = 0.0
    for j in range(dims):
        value = 0.0
        for k in range(dims):
            value += mats[PRECISION, j, k] * centre[k]
        quad += centre[j] * value
        h[j] = value + vecs[NU, j]
    total = -0.5 * quad
    for j in range(dims):
        value = 0.0
        for k in range(dims):
            value += mats[SIGMA_Q, j, k] * h[k]
        mean_q[j] = value
        total += 0.5 * h[j] * value
    for j in range(dims):
        c = mean_q[j]
        for k in range(j):
            c += mats[FACTOR_Q, j, k] * eps[k]
        sd_q, w = vecs[SD_Q, j], vecs[CAVITY, j]
        a = w * (c / (sd_q * sd_q) - vecs[NU, j])
        sd = math.sqrt(w)
        x, log_mass = truncated_normal(-a / sd, uniforms[j, s])
        g[j] = a + sd * x
        eps[j] = (g[j] - c) / sd_q
        total += log_mass + math.log(sd / sd_q) + 0.5 * (a * a / w - c * c / (sd_q * sd_q))
    quad = 0.0
    for j in range(dims):
        value = 0.0
        for k in range(dims):
            value += mats[PRECISION, j, k] * (g[k] - centre[k])
        quad += (g[j] - centre[j]) * value
    total += 0.5 * quad
    for k in range(dims):
        value = 0.0
        for j in range(dims):
            value += mats[INVERSE_MAP, k, j] * g[j]
        step = (value - linear[k, s]) / scale
        z[k, s] = step
        total -= 0.5 * step * step
    log_w[s] += total


@numba.njit(**_KERNEL)
def advance_block(L, Z, carried, uniforms, log_w, scales, mats, vecs, start, first, last):
    """Points start .. start + carried.shape[0] - 1 of draws first .. last - 1, in place in Z and log_w.

    L (m, m): the prior's factor (strict lower triangle read); Z (m, C-1, draws): whitened draws;
    ``carried`` (block, C-1, draws): sum_{j < start} L[i, j] Z[j]; ``uniforms`` like ``carried``;
    ``scales`` (m,) L_ii; ``mats`` (m, MATRICES, C-1, C-1) and ``vecs`` (m, VECTORS, C-1) per point."""
    dims = Z.shape[1]
    linear = np.empty((dims, TILE))
    z = np.empty((dims, TILE))
    work = np.empty((5, dims))
    for tile in range(first, last, TILE):
        end = min(tile + TILE, last)
        width = end - tile
        for row in range(carried.shape[0]):
            i = start + row
            for k in range(dims):
                out = linear[k, :width]
                out[:] = carried[row, k, tile:end]
                _in_block(L[i], Z[:, k, :], start, i, tile, end, out)
            for s in range(width):
                _point(scales[i], mats[i], vecs[i], linear, uniforms[row, :, tile:end], z, log_w[tile:end], s, work)
            for k in range(dims):
                Z[i, k, tile:end] = z[k, :width]


__all__ = ["MATRICES", "VECTORS", "advance_block"]
