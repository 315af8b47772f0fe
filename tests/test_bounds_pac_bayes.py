"""PAC-Bayes-kl, McAllester, Occam and Catoni bounds against independent computations."""

import math

import numpy as np
import pytest
from scipy import optimize, stats

from pacbayes.bounds import binary_kl, catoni_bound, mcallester_bound, occam_bound, occam_complexity, pac_bayes_kl_bound
from pacbayes.errors import InputError


def root_of_kl(q, c):
    """Independent inverse: scipy brentq on kl(q||p) - c over (q, 1)."""
    return optimize.brentq(lambda p: binary_kl(q, p) - c, q, 1 - 1e-16, xtol=1e-15)


def test_pac_bayes_kl_solves_its_equation():
    q, kl, m, delta = 0.03, 120.0, 5000, 0.025
    c = (kl + math.log(2 * math.sqrt(m) / delta)) / m
    assert pac_bayes_kl_bound(q, kl, m, delta) == pytest.approx(root_of_kl(q, c), abs=1e-10)


def test_mcallester_is_the_pinsker_relaxation():
    q, kl, m, delta = 0.03, 120.0, 5000, 0.025
    by_hand = q + math.sqrt((kl + math.log(2 * math.sqrt(m) / delta)) / (2 * m))
    assert mcallester_bound(q, kl, m, delta) == pytest.approx(by_hand, rel=1e-14)
    assert mcallester_bound(q, kl, m, delta) >= pac_bayes_kl_bound(q, kl, m, delta)


def test_pac_bayes_kl_requires_m_at_least_8():
    with pytest.raises(InputError):
        pac_bayes_kl_bound(0.1, 1.0, 7, 0.05)


def test_occam_realisable_form():
    c = occam_complexity(30.0, 1000, 0.01)
    assert c == pytest.approx((30.0 + math.log(100.0)) / 1000, rel=1e-14)
    assert occam_bound(30.0, 1000, 0.01) == pytest.approx(1 - math.exp(-c), abs=1e-11)
    assert occam_bound(30.0, 1000, 0.01) <= c


def test_occam_with_errors_is_a_valid_binomial_tail_bound():
    """Exact check: for a single hypothesis (P(h) = 1) the failure probability is <= delta."""
    m, delta, true_risk = 200, 0.05, 0.2
    k = np.arange(m + 1)
    bounds = np.array([occam_bound(0.0, m, delta, empirical_risk=j / m) for j in k])
    failure = stats.binom.pmf(k, m, true_risk)[bounds < true_risk].sum()
    assert failure <= delta


def test_catoni_single_grid_point_by_hand():
    q, kl, m, delta, c = 0.05, 40.0, 2000, 0.05, 2.0
    by_hand = (1 - math.exp(-c * q - (kl + math.log(1 / delta)) / m)) / (1 - math.exp(-c))
    assert catoni_bound(q, kl, m, delta, grid=[c]) == pytest.approx(by_hand, rel=1e-14)


def test_catoni_grid_pays_its_union_bound():
    q, kl, m, delta = 0.05, 40.0, 2000, 0.05
    grid = [0.5, 1.0, 2.0, 4.0]
    manual = min((1 - math.exp(-c * q - (kl + math.log(len(grid) / delta)) / m)) / (1 - math.exp(-c)) for c in grid)
    assert catoni_bound(q, kl, m, delta, grid=grid) == pytest.approx(manual, rel=1e-14)
    assert catoni_bound(q, kl, m, delta) < 1.0
