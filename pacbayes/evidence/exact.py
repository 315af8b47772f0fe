"""Reference values of ln P(S) for tests: exact for equicorrelated kernels, SciPy-Genz otherwise.

* Equicorrelated prior K = (1 - rho) I + rho 1 1^T: f_i = sqrt(rho) w + sqrt(1 - rho) e_i with
  w, e_i iid N(0, 1), so conditionally on w the events y_i f_i > 0 are independent and
  P(S) = int phi(w) Phi(a w)^n+ Phi(-a w)^n- dw, a = sqrt(rho / (1 - rho))
  (n+ / n- the numbers of +1 / -1 labels; Tong 1990, The Multivariate Normal Distribution, 8.2).
  Computed in log space by adaptive quadrature around the integrand's mode.
* General K: scipy.stats.multivariate_normal.cdf (Genz & Bretz 2002 randomised QMC), with the
  absolute tolerance switched off so the requested *relative* accuracy governs: usable up to a
  few hundred points and slow, hence frozen as fixtures for the tests.
"""

import math

import numpy as np
import scipy.integrate
import scipy.optimize
import scipy.special
import scipy.stats

from pacbayes import checks
from pacbayes.errors import ConvergenceError, InputError
from pacbayes.evidence._validate import validate_inputs, validate_labels

_DROP = 60.0  # window edges: where the log-integrand is this many nats below its peak
_BREAKS = (1.0, 10.0)  # interior breakpoints (drops in nats) on either side of the mode


def _log_integrand(w, a, n_pos, n_neg):
    return (
        -0.5 * w * w
        - 0.5 * math.log(2.0 * math.pi)
        + n_pos * scipy.special.log_ndtr(a * w)
        + n_neg * scipy.special.log_ndtr(-a * w)
    )


def _slope(w, a, n_pos, n_neg):
    """d/dw of the log-integrand: -w + a (n+ r(a w) - n- r(-a w)), r = phi / Phi (Mills ratio)."""

    def mills(t):
        return math.exp(-0.5 * t * t - 0.5 * math.log(2.0 * math.pi) - scipy.special.log_ndtr(t))

    return -w + a * (n_pos * mills(a * w) - n_neg * mills(-a * w))


def _mode(a, n_pos, n_neg):
    """The integrand's mode: the root of its strictly decreasing log-slope (it is log-concave)."""
    lo, hi = -1.0, 1.0
    while _slope(lo, a, n_pos, n_neg) < 0.0:
        lo *= 2.0
    while _slope(hi, a, n_pos, n_neg) > 0.0:
        hi *= 2.0
    return scipy.optimize.brentq(_slope, lo, hi, args=(a, n_pos, n_neg), xtol=1e-14, rtol=1e-15)


def _drop_point(mode, peak, side, drop, scale, args):
    """The w on ``side`` (+1 or -1) of the mode where the log-integrand is ``drop`` below ``peak``."""

    def excess(w):
        return _log_integrand(w, *args) - (peak - drop)

    near, far = mode, mode + side * scale
    while excess(far) > 0.0:
        near, far = far, far + 2.0 * (far - mode)
    return scipy.optimize.brentq(excess, min(near, far), max(near, far), xtol=1e-12)


def _geometric_points(mode, step, lower, upper):
    """mode +- step * 4^k inside (lower, upper): breakpoints for an integrand with two length
    scales on one side (rho -> 1: Phi(a w) saturates within 1/a of the mode, phi(w) decays on 1)."""
    points = []
    for side, edge in ((-1.0, lower), (1.0, upper)):
        offset = step
        while abs(offset) < abs(edge - mode):
            points.append(mode + side * offset)
            offset *= 4.0
    return points


def equicorrelated_log_orthant(y, rho: float) -> float:
    """ln Pr[y_i f_i > 0 for all i] for f ~ N(0, (1 - rho) I + rho 1 1^T), 0 <= rho < 1.

    Exact up to quadrature error (relative 1e-12 on P(S), i.e. ~1e-12 nats), for any m and any
    label counts. The window is found from the actual integrand, not a Gaussian guess at the
    mode (which is far too narrow when the labels are all equal or unbalanced: with rho -> 1
    and all +1 the integrand is phi(w) for w > 0 but falls off on the scale 1/(a sqrt n) below 0):
    its edges are where ln f is _DROP nats below its peak, on each side. For a log-concave f
    the mass outside is then at most e^(1 - _DROP) of the total (the slope beyond the drop-1
    point is at least 1 / its distance from the mode). Breakpoints at the 1- and 10-nat drops and
    at geometrically spaced offsets from the mode give the adaptive quadrature every scale.
    """
    rho = float(rho)
    if not 0.0 <= rho < 1.0:
        raise InputError(f"rho must be in [0, 1), got {rho}")
    labels = validate_labels(y, int(np.asarray(y).size)).numpy()
    n_pos, n_neg = int((labels > 0).sum()), int((labels < 0).sum())
    a = math.sqrt(rho / (1.0 - rho))
    args = (a, n_pos, n_neg)
    mode = _mode(*args)
    peak = _log_integrand(mode, *args)
    scale = 1.0 / math.sqrt(1.0 + (n_pos + n_neg) * a * a)  # a first step; the search widens it
    points = [_drop_point(mode, peak, side, drop, scale, args) for side in (-1.0, 1.0) for drop in _BREAKS]
    lower, upper = (_drop_point(mode, peak, side, _DROP, scale, args) for side in (-1.0, 1.0))
    points += _geometric_points(mode, min(abs(p - mode) for p in points), lower, upper)
    value, error = scipy.integrate.quad(
        lambda w: math.exp(_log_integrand(w, *args) - peak),
        lower,
        upper,
        points=sorted(set(points + [mode])),
        epsabs=0.0,
        epsrel=1e-12,
        limit=500,
    )
    if not value > 0.0 or error > 1e-8 * value:
        raise ConvergenceError(f"equicorrelated quadrature did not converge (value {value}, error {error})")
    return peak + math.log(value)


def genz_log_orthant(K, y, *, jitter=0.0, rel_tol=1e-3, maxpts=None, seed=0, repeats=3):
    """ln Pr[y_i f_i > 0 for all i], f ~ N(0, K + jitter I), by SciPy's Genz QMC integration.

    SciPy's stopping rule is absolute (its ``releps`` is not used by its QMC path), so a pilot run
    sets abseps = rel_tol * pilot value; ``repeats`` independent seeded runs are averaged.
    Returns (log_value, log_error) with log_error = max(rel_tol, 3 standard errors / value), an
    honest half-width in nats (valid while it is small). Slow for m in the hundreds.
    """
    prior, labels, _ = validate_inputs(K, y, jitter)
    if not 0.0 < rel_tol < 0.5:
        raise InputError(f"rel_tol must be in (0, 0.5), got {rel_tol}")
    checks.integer_at_least(repeats, "repeats", 2)
    m = prior.shape[0]
    cov = (labels[:, None] * prior * labels[None, :]).numpy()
    maxpts = maxpts if maxpts is not None else 10000 * m
    rng = np.random.default_rng(seed)

    def orthant(abseps, points):
        # Pr[g > 0] = Pr[-g < 0] and -g ~ g: the CDF of N(0, Y K Y) at 0.
        return scipy.stats.multivariate_normal.cdf(
            np.zeros(m), mean=np.zeros(m), cov=cov, maxpts=points, abseps=abseps, rng=rng
        )

    pilot = orthant(0.0, max(1000, maxpts // 20))
    if not pilot > 0.0:
        raise ConvergenceError(f"Genz integration returned {pilot}; raise maxpts")
    values = np.array([orthant(rel_tol * pilot, maxpts) for _ in range(repeats)])
    mean = float(values.mean())
    spread = 3.0 * float(values.std(ddof=1)) / math.sqrt(repeats) / mean
    if not mean > 0.0 or spread >= 0.5:
        raise ConvergenceError(f"Genz integration too inaccurate (values {values}); raise maxpts")
    return math.log(mean), max(rel_tol, spread)
