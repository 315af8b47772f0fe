"""Marginal-likelihood bound against published figures and hand-evaluated formulas."""

import math

import pytest

from pacbayes.bounds import marginal_likelihood_bound, marginal_likelihood_complexity
from pacbayes.errors import InputError

AUTHORS_DELTA = 2.0**-10


def test_reproduces_valle_perez_cnn_figure():
    # Valle-Pérez et al. result files: ln 1/P(S) ~ 1416 nats, m = 10,000 -> bound ~ 0.134.
    value = marginal_likelihood_bound(-1416.0, 10_000, AUTHORS_DELTA, variant="mcallester")
    assert value == pytest.approx(0.134, abs=5e-4)


def test_reproduces_valle_perez_fc_figure():
    # FC network: ~1829 nats -> 0.169.
    value = marginal_likelihood_bound(-1829.0, 10_000, AUTHORS_DELTA, variant="mcallester")
    assert value == pytest.approx(0.169, abs=5e-4)


def test_langford_form_by_hand():
    log_p, m, delta = -250.0, 1000, 0.05
    expected = 1.0 - math.exp(-(250.0 + math.log(2 * 1000 / 0.05)) / 999)
    assert marginal_likelihood_bound(log_p, m, delta) == pytest.approx(expected, rel=1e-14)
    assert marginal_likelihood_complexity(log_p, m, delta) == pytest.approx(
        (250.0 + math.log(40000.0)) / 999, rel=1e-14
    )


def test_mcallester_form_by_hand():
    log_p, m, delta = -250.0, 1000, 0.05
    expected = 1.0 - math.exp(-(250.0 + 2 * math.log(1000) + 1 + math.log(20.0)) / 1000)
    assert marginal_likelihood_bound(log_p, m, delta, "mcallester") == pytest.approx(expected, rel=1e-14)


def test_monotone_in_evidence_and_m():
    assert marginal_likelihood_bound(-100, 1000, 0.05) < marginal_likelihood_bound(-200, 1000, 0.05)
    assert marginal_likelihood_bound(-100, 2000, 0.05) < marginal_likelihood_bound(-100, 1000, 0.05)


def test_vacuous_limits():
    assert marginal_likelihood_bound(-math.inf, 100, 0.05) == 1.0
    assert 0.0 < marginal_likelihood_bound(0.0, 100, 0.05) < 0.1


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(log_evidence=1.0, m=100, delta=0.05),
        dict(log_evidence=math.nan, m=100, delta=0.05),
        dict(log_evidence=-1.0, m=1, delta=0.05),
        dict(log_evidence=-1.0, m=100, delta=0.0),
        dict(log_evidence=-1.0, m=100, delta=1.0),
        dict(log_evidence=-1.0, m=100, delta=math.nan),
        dict(log_evidence=-1.0, m=100, delta=0.05, variant="nope"),
    ],
)
def test_rejects_bad_input(kwargs):
    with pytest.raises(InputError):
        marginal_likelihood_bound(**kwargs)
