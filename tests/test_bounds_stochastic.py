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
        root = brentq(lambda p: (p - q) ** 2 / (2 * p) - c, q + 1e-15, 10.0, xtol=1e-14)
        assert pbb_quad(q, c) == pytest.approx(root, rel=1e-9)
        assert pbb_quad(q, c) >= kl_inverse_upper(q, c) - 1e-12  # a relaxation of the kl bound


def test_pbb_lambda_tradeoff_minimises_f_lambda():
    for q, c in [(0.01, 0.02), (0.1, 0.1), (0.3, 0.005), (0.0, 0.2)]:
        t_star = pbb_lambda_tradeoff(q, c)
        numeric = minimize_scalar(
            lambda t: pbb_lambda(q, c, t), bounds=(1e-9, 2 - 1e-9), method="bounded", options={"xatol": 1e-12}
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
