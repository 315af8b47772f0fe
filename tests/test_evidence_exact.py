"""Exact references: the equicorrelated 1-D quadrature against closed forms, Genz against it."""

import math

import numpy as np
import pytest

from pacbayes.errors import InputError
from pacbayes.evidence import equicorrelated_log_orthant, genz_log_orthant


@pytest.mark.parametrize("rho", [0.1, 0.5, 0.9])
def test_small_m_closed_forms(rho):
    # Sheppard: Pr[g1 > 0, g2 > 0] = 1/4 + arcsin(corr)/(2 pi); trivariate exchangeable: 1/8 + 3 arcsin/(4 pi)
    assert equicorrelated_log_orthant([1], rho) == pytest.approx(math.log(0.5), abs=1e-12)
    assert equicorrelated_log_orthant([1, 1], rho) == pytest.approx(
        math.log(0.25 + math.asin(rho) / (2 * math.pi)), abs=1e-10
    )
    assert equicorrelated_log_orthant([1, -1], rho) == pytest.approx(
        math.log(0.25 - math.asin(rho) / (2 * math.pi)), abs=1e-10
    )
    assert equicorrelated_log_orthant([-1, -1, -1], rho) == pytest.approx(
        math.log(0.125 + 3 * math.asin(rho) / (4 * math.pi)), abs=1e-10
    )


def test_independent_case_and_label_maps():
    assert equicorrelated_log_orthant(np.ones(1000), 0.0) == pytest.approx(1000 * math.log(0.5), rel=1e-12)
    y = np.array([1, 0, 0, 1, 1])
    assert equicorrelated_log_orthant(y, 0.3) == equicorrelated_log_orthant(2 * y - 1, 0.3)


def test_large_m_matches_brute_force_integral():
    # independent check at m = 1000: plain trapezoid on a fine grid of the same 1-D integral
    rho, n_pos, n_neg = 0.5, 600, 400
    from scipy.special import log_ndtr, logsumexp

    w = np.linspace(-10, 10, 400_001)
    log_f = -0.5 * w * w - 0.5 * math.log(2 * math.pi) + n_pos * log_ndtr(w) + n_neg * log_ndtr(-w)
    brute = logsumexp(log_f) + math.log(w[1] - w[0])
    y = np.r_[np.ones(n_pos), -np.ones(n_neg)]
    assert equicorrelated_log_orthant(y, rho) == pytest.approx(brute, abs=1e-8)


def test_bad_rho():
    for rho in (-0.1, 1.0, float("nan")):
        with pytest.raises(InputError):
            equicorrelated_log_orthant([1, -1], rho)


def test_genz_matches_equicorrelated():
    rho, y = 0.5, np.array([1, -1, 1, 1, -1, 1])
    K = (1 - rho) * np.eye(6) + rho
    value, error = genz_log_orthant(K, y, rel_tol=1e-4, seed=1)
    assert error >= 1e-4
    assert abs(value - equicorrelated_log_orthant(y, rho)) <= error


_LABELS = {"all equal": np.ones(10), "9 vs 1": np.r_[np.ones(9), -1.0], "all -1": -np.ones(10)}


def _mp_equicorrelated(y, rho):
    """The same 1-D integral by mpmath tanh-sinh quadrature over the whole real line (30 digits)."""
    import mpmath

    mpmath.mp.dps = 30
    n_pos, n_neg = int((np.asarray(y) > 0).sum()), int((np.asarray(y) < 0).sum())
    a = mpmath.sqrt(mpmath.mpf(rho) / (1 - mpmath.mpf(rho)))

    def f(w):
        return mpmath.npdf(w) * mpmath.ncdf(a * w) ** n_pos * mpmath.ncdf(-a * w) ** n_neg

    scale = 1 / a
    points = [-mpmath.inf] + [s * k * scale for s in (-1, 1) for k in (30, 3, 1)] + [0, mpmath.inf]
    return float(mpmath.log(mpmath.quad(f, sorted(points))))


@pytest.mark.parametrize("labels", list(_LABELS))
@pytest.mark.parametrize("rho", [0.001, 0.5, 0.999])
def test_equicorrelated_all_equal_and_unbalanced_labels(labels, rho):
    """Issue 11 (9): the window must hold the mass for the actual label counts (rho 0.999, all +1
    once gave -1.72 for a true -0.73). Against mpmath on the full line, and SciPy's Genz QMC."""
    import scipy.stats

    y = _LABELS[labels]
    value = equicorrelated_log_orthant(y, rho)
    assert value == pytest.approx(_mp_equicorrelated(y, rho), abs=1e-9)
    K = (1 - rho) * np.eye(y.size) + rho
    genz = scipy.stats.multivariate_normal.cdf(
        np.zeros(y.size),
        cov=y[:, None] * K * y[None, :],
        maxpts=200_000,
        abseps=1e-14,
        releps=1e-6,
        rng=np.random.default_rng(0),
    )
    assert value == pytest.approx(math.log(genz), abs=1e-2)  # Genz's own error is ~1e-3 nats here


@pytest.mark.parametrize("y", [np.ones(6), np.r_[np.ones(5), -1.0], np.r_[-np.ones(5), 1.0]])
@pytest.mark.parametrize("rho", [0.001, 0.5, 0.999])
def test_equicorrelated_matches_brute_force_monte_carlo(y, rho):
    """Plain Monte Carlo on f = chol(K) z, independent of the 1-D reduction; 4.5 binomial sigmas."""
    m, draws = y.size, 400_000
    K = (1 - rho) * np.eye(m) + rho
    f = np.random.default_rng(int(rho * 1000) + m).standard_normal((draws, m)) @ np.linalg.cholesky(K).T
    p_hat = float(np.all(f * y > 0, axis=1).mean())
    p = math.exp(equicorrelated_log_orthant(y, rho))
    assert abs(p_hat - p) <= 4.5 * math.sqrt(p * (1 - p) / draws)


@pytest.mark.parametrize("rho", [0.99, 0.9999, 0.999999, 1 - 1e-12])
def test_closed_forms_as_rho_approaches_one(rho):
    """Two length scales (1/a and 1) in one integrand: the quadrature must resolve both."""
    assert equicorrelated_log_orthant([1], rho) == pytest.approx(math.log(0.5), abs=1e-12)
    assert equicorrelated_log_orthant([1, 1], rho) == pytest.approx(
        math.log(0.25 + math.asin(rho) / (2 * math.pi)), abs=1e-12
    )
    assert equicorrelated_log_orthant([1, -1], rho) == pytest.approx(
        math.log(0.25 - math.asin(rho) / (2 * math.pi)), rel=1e-8
    )
