"""Bound forms of pacbayes.bounds.stochastic against independent computations (torch-free)."""

import math
import subprocess
import sys

import pytest
from scipy.optimize import brentq, minimize_scalar

from pacbayes.bounds import (
    binary_kl,
    dziugaite_roy_complexity,
    dziugaite_roy_objective,
    grid_candidates,
    grid_index,
    grid_variance,
    kl_inverse_upper,
    mcallester_bound,
    pac_bayes_kl_bound,
    pbb_classic,
    pbb_complexity,
    pbb_lambda,
    pbb_lambda_tradeoff,
    pbb_quad,
    series_delta,
)
from pacbayes.bounds.stochastic import langford_seeger_complexity, maurer_complexity
from pacbayes.errors import InputError


def test_module_is_torch_free():
    code = "import sys, pacbayes.bounds.stochastic; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_grid_round_trip_and_neighbours():
    for j in (1, 7, 300, 1234):
        assert grid_index(grid_variance(j)) == pytest.approx(j, rel=1e-12)
    assert grid_variance(0.0) == 0.1
    assert grid_candidates(grid_variance(41.3)) == (41, 42)
    assert grid_candidates(0.5) == (1,)  # above c: only the first grid point is allowed


def test_series_delta_sums_to_delta():
    delta = 0.05
    assert series_delta(1, delta) == pytest.approx(6 * delta / math.pi**2, rel=1e-15)
    partial = math.fsum(series_delta(k, delta) for k in range(1, 20001))
    assert partial <= delta
    assert delta - partial == pytest.approx(6 * delta / (math.pi**2 * 20000), rel=1e-4)  # tail ~ 1/K


def test_dziugaite_roy_complexity_matches_the_paper_expression():
    # B_RE as printed by Dziugaite & Roy (2017): lambda appears through 2 ln(b ln(c / lambda)).
    kl, m, delta, b, c = 5432.1, 55000, 0.025, 100.0, 0.1
    for j in (1, 2, 650):
        lam = c * math.exp(-j / b)
        paper = (kl + 2 * math.log(b * math.log(c / lam)) + math.log(math.pi**2 * m / (6 * delta))) / (m - 1)
        assert dziugaite_roy_complexity(kl, m, delta, j) == pytest.approx(paper, rel=1e-12)
        # ... which is Langford-Seeger's (KL + ln(m/delta_j)) / (m - 1) at the grid share delta_j
        langford = (kl + math.log(m / series_delta(j, delta))) / (m - 1)
        assert dziugaite_roy_complexity(kl, m, delta, j) == pytest.approx(langford, rel=1e-12)
    value = dziugaite_roy_objective(0.03, kl, m, delta, 650)
    assert value == pytest.approx(0.03 + math.sqrt(dziugaite_roy_complexity(kl, m, delta, 650) / 2), rel=1e-15)


def test_pbb_classic_is_mcallester_at_the_grid_share():
    for q, kl, m, j in [(0.0, 10.0, 100, 1), (0.1, 300.0, 5000, 17), (0.4, 2.0, 60000, 900)]:
        expected = mcallester_bound(q, kl, m, series_delta(j, 0.05))
        got = pbb_classic(q, pbb_complexity(kl, m, 0.05, j))
        assert got == pytest.approx(expected, rel=1e-12)


def test_pbb_quad_solves_the_refined_pinsker_quadratic():
    for q, c in [(0.0, 0.05), (0.02, 0.01), (0.2, 0.3), (0.6, 1e-3)]:
        root = brentq(lambda p, q=q, c=c: (p - q) ** 2 / (2 * p) - c, q + 1e-15, 10.0, xtol=1e-14)
        assert pbb_quad(q, c) == pytest.approx(root, rel=1e-9)
        assert pbb_quad(q, c) >= kl_inverse_upper(q, c) - 1e-12  # a relaxation of the kl bound


def test_pbb_lambda_tradeoff_minimises_f_lambda():
    for q, c in [(0.01, 0.02), (0.1, 0.1), (0.3, 0.005), (0.0, 0.2)]:
        t_star = pbb_lambda_tradeoff(q, c)
        numeric = minimize_scalar(
            lambda t, q=q, c=c: pbb_lambda(q, c, t), bounds=(1e-9, 2 - 1e-9), method="bounded", options={"xatol": 1e-12}
        )
        assert pbb_lambda(q, c, t_star) <= numeric.fun + 1e-12
        assert t_star == pytest.approx(numeric.x, abs=1e-5)
        assert pbb_lambda(q, c, t_star) >= kl_inverse_upper(q, c) - 1e-12


def test_pbb_bounds_are_looser_than_the_kl_inverse_they_relax():
    q, kl, m, j = 0.05, 800.0, 5000, 650
    c = pbb_complexity(kl, m, 0.05, j)
    exact = pac_bayes_kl_bound(q, kl, m, series_delta(j, 0.05))
    assert exact == pytest.approx(kl_inverse_upper(q, c), rel=1e-12)
    assert binary_kl(q, exact) == pytest.approx(c, rel=1e-8)
    for relaxed in (pbb_quad(q, c), pbb_classic(q, c), pbb_lambda(q, c, pbb_lambda_tradeoff(q, c))):
        assert relaxed >= exact


@pytest.mark.parametrize(
    "call",
    [
        lambda: dziugaite_roy_complexity(10.0, 100, 0.05, 0.5),
        lambda: dziugaite_roy_complexity(10.0, 1, 0.05, 3),
        lambda: pbb_complexity(10.0, 100, 1.5, 3),
        lambda: pbb_lambda(0.1, 0.1, 2.0),
        lambda: pbb_lambda_tradeoff(0.1, 0.0),
        lambda: series_delta(0, 0.05),
        lambda: grid_index(0.0),
        lambda: grid_variance(3, c=-1.0),
    ],
)
def test_bad_input_raises_one_clear_error(call):
    with pytest.raises(InputError):
        call()


def test_bound_forms_take_mpmath_numbers():
    # an mpf has an ``exp`` attribute (its binary exponent, an int): it must go through math, not be called
    mpmath = pytest.importorskip("mpmath")
    with mpmath.workdps(40):
        j, kl, m, delta = mpmath.mpf(650), mpmath.mpf("812.5"), 5000, 0.05
        assert grid_variance(mpmath.mpf(2)) == pytest.approx(
            float(mpmath.mpf("0.1") * mpmath.exp(mpmath.mpf(-2) / 100))
        )
        reference = (
            kl + 2 * mpmath.log(j) + mpmath.log(mpmath.pi**2 * 2 * mpmath.sqrt(m) / (6 * mpmath.mpf(delta)))
        ) / m
        assert pbb_complexity(kl, m, delta, j) == pytest.approx(float(reference), rel=1e-14)
        paper = (kl + 2 * mpmath.log(j) + mpmath.log(mpmath.pi**2 * m / (6 * mpmath.mpf(delta)))) / (m - 1)
        assert dziugaite_roy_complexity(kl, m, delta, j) == pytest.approx(float(paper), rel=1e-14)
        assert pbb_lambda(mpmath.mpf("0.1"), 0.05, mpmath.mpf("0.5")) == pytest.approx(0.1 / 0.75 + 0.05 / 0.375)


def test_fixed_prior_complexities_are_the_pac_bayes_kl_right_sides():
    for q, kl, m, delta in [(0.0, 3.0, 1000, 0.015), (0.08, 0.7, 1000, 0.0152), (0.3, 250.0, 5000, 0.01)]:
        maurer = maurer_complexity(kl, m, delta)
        assert maurer == pytest.approx((kl + math.log(2 * math.sqrt(m) / delta)) / m, rel=1e-15)
        assert kl_inverse_upper(q, maurer) == pytest.approx(pac_bayes_kl_bound(q, kl, m, delta), rel=1e-12)
        assert langford_seeger_complexity(kl, m, delta) == pytest.approx((kl + math.log(m / delta)) / (m - 1))
        # the grid forms are the fixed forms at delta_j = 6 delta / (pi^2 j^2)
        for j in (1, 40):
            share = series_delta(j, delta)
            assert pbb_complexity(kl, m, delta, j) == pytest.approx(maurer_complexity(kl, m, share), rel=1e-12)
            assert dziugaite_roy_complexity(kl, m, delta, j) == pytest.approx(
                langford_seeger_complexity(kl, m, share), rel=1e-12
            )
    with pytest.raises(InputError):
        maurer_complexity(1.0, 7, 0.05)  # Maurer's constant needs m >= 8
    with pytest.raises(InputError):
        langford_seeger_complexity(1.0, 100, 0.0)
