"""The samplers' per-coordinate loop on the CPU, fused into one compiled (numba) kernel per block.

:func:`pacbayes.evidence.sequential.sequential_log_weights` advances ``SAMPLE_BLOCK`` coordinates
of every draw at a time: the earlier blocks' contribution arrives as one GEMM (``carried``), and
:func:`advance_block` does the rest for a range of draws, a tile of ``TILE`` draws at a time so that
the block's rows of that tile stay in the core's cache: the in-block part of the linear form (four
rows of the block per pass over the tile), then the step of :class:`pacbayes.evidence.sequential.Steps`
and the truncated-normal draw, all in float64. It holds no Python object, so it runs without the
GIL: the caller splits the draws over threads.

Why numba: it compiles this loop at run time with no compiler on the user's machine (its wheels
bundle LLVM, on Linux, macOS and Windows), it is a long-maintained NumFOCUS project, and it works
on torch's CPU memory through NumPy views, without a copy (docs/evidence.md, "How the draws are
made, and how many").

The truncated normal is drawn by inversion from one uniform u in [0, 1) per coordinate and draw:
Pr[X >= x] = (1 - u) Pr[X >= lower] (:func:`truncated_normal`). ln Phi and the inverse of Phi are
written here (:func:`log_ndtr`, :func:`ndtri_exp`, the latter from a logarithm, so nothing
underflows where Phi(-lower) is below the smallest float64) so that they inline into the kernel:
SciPy's, called through ``cython_special``, cost twice as much and keep the kernel out of numba's
on-disk cache. The tests hold them to SciPy's to 1e-13. The uniforms come from the caller's seeded
torch generator, so a seed gives the same draws whatever the threads. The kernel is compiled on
first use (seconds) and cached on disk by numba.
"""

import math
from typing import Any

import numba
import numpy as np

TILE = 128  # draws per tile: a 128-row block of them is 128 KiB, within a core's L2
_KERNEL: dict[str, Any] = dict(nogil=True, boundscheck=False, fastmath={"contract"}, cache=True)
_SQRT_HALF = math.sqrt(0.5)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_ASYMPTOTIC_BELOW = -25.0  # ln Phi(t) from its asymptotic series below this (8 terms: error < 1e-16)
_ASYMPTOTIC_TERMS = (1.0, -1.0, 3.0, -15.0, 105.0, -945.0, 10395.0, -135135.0)  # (-1)^k (2k-1)!!
# Wichura's AS241 (Applied Statistics 37, 1988), PPND16: Phi^-1 to about 1e-16, coefficients a0 .. a7 etc.
_A = (
    3.3871328727963666080, 1.3314166789178437745e2, 1.9715909503065514427e3, 1.3731693765509461125e4,
    4.5921953931549871457e4, 6.7265770927008700853e4, 3.3430575583588128105e4, 2.5090809287301226727e3,
)  # fmt: skip
_B = (
    1.0, 4.2313330701600911252e1, 6.8718700749205790830e2, 5.3941960214247511077e3,
    2.1213794301586595867e4, 3.9307895800092710610e4, 2.8729085735721942674e4, 5.2264952788528545610e3,
)  # fmt: skip
_C = (
    1.42343711074968357734, 4.63033784615654529590, 5.76949722146069140550, 3.64784832476320460504,
    1.27045825245236838258, 2.41780725177450611770e-1, 2.27238449892691845833e-2, 7.74545014278341407640e-4,
)  # fmt: skip
_D = (
    1.0, 2.05319162663775882187, 1.67638483018380384940, 6.89767334985100004550e-1,
    1.48103976427480074590e-1, 1.51986665636164571966e-2, 5.47593808499534494600e-4, 1.05075007164441684324e-9,
)  # fmt: skip
_E = (
    6.65790464350110377720, 5.46378491116411436990, 1.78482653991729133580, 2.96560571828504891230e-1,
    2.65321895265761230930e-2, 1.24266094738807843860e-3, 2.71155556874348757815e-5, 2.01033439929228813265e-7,
)  # fmt: skip
_F = (
    1.0, 5.99832206555887937690e-1, 1.36929880922735805310e-1, 1.48753612908506148525e-2,
    7.86869131145613259100e-4, 1.84631831751005468180e-5, 1.42151175831644588870e-7, 2.04426310338993978564e-15,
)  # fmt: skip
_AS241_RANGE = 27.0  # sqrt(-ln p) up to which AS241 is fitted (p >= ~1e-316); Newton from the asymptote beyond


@numba.njit(**_KERNEL)
def _polynomial(coefficients, x):
    """sum_i coefficients[i] x^i (Horner)."""
    value = 0.0
    for i in range(len(coefficients) - 1, -1, -1):
        value = value * x + coefficients[i]
    return value


@numba.njit(**_KERNEL)
def log_ndtr(t):
    """ln Phi(t): through erfc above _ASYMPTOTIC_BELOW (log1p for t >= 0), the asymptotic series below."""
    if t >= 0.0:
        return math.log1p(-0.5 * math.erfc(t * _SQRT_HALF))
    if t > _ASYMPTOTIC_BELOW:
        return math.log(0.5 * math.erfc(-t * _SQRT_HALF))
    return -0.5 * t * t - math.log(-t) - _HALF_LOG_2PI + math.log(_polynomial(_ASYMPTOTIC_TERMS, 1.0 / (t * t)))


@numba.njit(**_KERNEL)
def ndtri_exp(log_p):
    """Phi^-1(exp(log_p)) for log_p <= 0, without underflow (AS241 in the middle, :func:`_lower_tail` outside)."""
    if log_p >= 0.0:
        return math.inf
    q = math.exp(log_p) - 0.5
    if abs(q) <= 0.425:
        return _central(q)
    if q > 0.0:
        return -_lower_tail(math.log(-math.expm1(log_p)))  # Phi^-1(p) = -Phi^-1(1 - p)
    return _lower_tail(log_p)


@numba.njit(**_KERNEL)
def _central(q):
    """Phi^-1(0.5 + q) for |q| <= 0.425 (AS241)."""
    r = 0.180625 - q * q
    return q * _polynomial(_A, r) / _polynomial(_B, r)


@numba.njit(**_KERNEL)
def _lower_tail(log_p):
    """Phi^-1(exp(log_p)) for p < 0.075: AS241 with sqrt(-ln p) taken from log_p; beyond its fitted range,
    three Newton steps on ln Phi from the asymptote x^2 = -2 ln p - ln(-4 pi ln p)."""
    if log_p == -math.inf:
        return -math.inf
    r = math.sqrt(-log_p)
    if r <= 5.0:
        return -_polynomial(_C, r - 1.6) / _polynomial(_D, r - 1.6)
    if r <= _AS241_RANGE:
        return -_polynomial(_E, r - 5.0) / _polynomial(_F, r - 5.0)
    x = -math.sqrt(-2.0 * log_p - math.log(-4.0 * math.pi * log_p))
    for _ in range(3):
        log_phi = log_ndtr(x)
        x -= (log_phi - log_p) * math.exp(log_phi + 0.5 * x * x + _HALF_LOG_2PI)  # f / f', f = ln Phi - ln p
    return x


@numba.njit(**_KERNEL)
def truncated_normal(lower, uniform):
    """(x, ln Pr[X >= lower]): x the standard normal X conditioned on X >= lower, by inversion of ``uniform``:
    Pr[X >= x] = p = (1 - u) Pr[X >= lower]. One erfc gives Pr[X >= lower] and its complement, both
    to full relative accuracy, so x = -Phi^-1(p) needs one logarithm at most (of p, or of 1 - p =
    complement + u Pr[X >= lower]); above -_ASYMPTOTIC_BELOW, where the mass is below ~1e-138, all in logs."""
    if lower > -_ASYMPTOTIC_BELOW:
        log_mass = log_ndtr(-lower)
        return max(-ndtri_exp(math.log(1.0 - uniform) + log_mass), lower), log_mass  # 1 - u: exact for torch.rand
    tail = 0.5 * math.erfc(abs(lower) * _SQRT_HALF)  # Phi(-|lower|), as log_ndtr computes it
    if lower >= 0.0:
        mass, log_mass, complement = tail, math.log(tail), 1.0 - tail
    else:
        mass, log_mass, complement = 1.0 - tail, math.log1p(-tail), tail
    p = (1.0 - uniform) * mass
    q = p - 0.5
    if abs(q) <= 0.425:
        x = -_central(q)
    elif q < 0.0:
        x = -_lower_tail(math.log(p))
    else:
        x = _lower_tail(math.log(complement + uniform * mass))
    return max(x, lower), log_mass


@numba.njit(**_KERNEL)
def _step(coefficients, linear, uniforms, z, log_w):
    """Coordinate k of a tile of draws: ``coefficients`` the k-th row of a Steps table (its fields in order)."""
    offset, lower_base, lower_slope, z_base, z_slope, z_scale, weight_base, weight_slope, weight_curve, weight_draw = (
        coefficients
    )
    for s in range(linear.shape[0]):
        c = offset + linear[s]
        x, log_mass = truncated_normal(lower_base + lower_slope * c, uniforms[s])
        z[s] = z_base + z_slope * c + z_scale * x
        log_w[s] += log_mass + weight_base + c * (weight_slope + weight_curve * c) + weight_draw * x


@numba.njit(**_KERNEL)
def _in_block(row, Z, start, k, first, last, out):
    """out += sum_{start <= j < k} row[j] Z[j, first:last], four rows of Z per pass over ``out``."""
    j = start
    while j + 4 <= k:
        a, b, c, d = row[j], row[j + 1], row[j + 2], row[j + 3]
        z0, z1, z2, z3 = Z[j, first:last], Z[j + 1, first:last], Z[j + 2, first:last], Z[j + 3, first:last]
        for s in range(out.shape[0]):
            out[s] += a * z0[s] + b * z1[s] + c * z2[s] + d * z3[s]
        j += 4
    while j < k:
        a, z0 = row[j], Z[j, first:last]
        for s in range(out.shape[0]):
            out[s] += a * z0[s]
        j += 1


@numba.njit(**_KERNEL)
def advance_block(L, Z, carried, uniforms, log_w, table, start, first, last):
    """Coordinates start .. start + len(carried) - 1 of draws first .. last - 1, in place in Z and log_w.

    ``carried`` holds sum_{j < start} L_kj Z[j] for the block's rows k; ``uniforms`` one uniform per
    row and draw; ``table`` the Steps table (m x 10). Reads only the strict lower triangle of L."""
    linear = np.empty(TILE)
    for tile in range(first, last, TILE):
        end = min(tile + TILE, last)
        width = end - tile
        for row in range(carried.shape[0]):
            k = start + row
            out = linear[:width]
            out[:] = carried[row, tile:end]
            _in_block(L[k], Z, start, k, tile, end, out)
            _step(table[k], out, uniforms[row, tile:end], Z[k, tile:end], log_w[tile:end])


__all__ = ["TILE", "advance_block", "log_ndtr", "ndtri_exp", "truncated_normal"]
