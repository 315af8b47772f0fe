"""Compression-bound arithmetic (pacbayes.bounds.compression) against the foundation's functions."""

import math

import pytest
from scipy import stats

from pacbayes.bounds import catoni_bound, compression_bound, message_log_inverse_prior, occam_bound, pac_bayes_kl_bound
from pacbayes.errors import InputError


def test_kl_is_bits_times_ln2_plus_ln_configurations():
    assert message_log_inverse_prior(1000, 1) == pytest.approx(1000 * math.log(2), rel=1e-15)
    assert message_log_inverse_prior(1000, 12) == pytest.approx(1000 * math.log(2) + math.log(12), rel=1e-15)


def test_forms_are_the_foundation_bounds_with_a_third_of_delta_each():
    err, bits, m, delta, configs = 0.031, 2345, 5000, 0.05, 6
    kl = 2345 * math.log(2) + math.log(6)
    out = compression_bound(err, bits, m, delta, configs)
    third = delta / 3
    assert out["kl"] == pytest.approx(kl, rel=1e-14)
    assert out["forms"]["occam"] == pytest.approx(occam_bound(kl, m, third, empirical_risk=err), abs=1e-12)
    assert out["forms"]["catoni"] == pytest.approx(catoni_bound(err, kl, m, third), abs=1e-12)
    assert out["forms"]["pac-bayes-kl"] == pytest.approx(pac_bayes_kl_bound(err, kl, m, third), abs=1e-12)
    assert out["value"] == min(out["forms"].values()) == out["forms"][out["best_form"]]
    assert sum(out["delta"].values()) <= delta


def test_realisable_occam_form_in_closed_form():
    bits, m, delta = 700, 5000, 0.05
    c = (700 * math.log(2) + math.log(3 / delta)) / m
    out = compression_bound(0.0, bits, m, delta)
    assert out["forms"]["occam"] == pytest.approx(1 - math.exp(-c), abs=1e-11)
    assert out["value"] <= c


def test_bound_holds_for_every_message_by_exact_binomial_tails():
    """Union over a prefix-free code: sum_h 2^-l(h) * Pr[bound(h) < r(h)] <= delta.

    Exact check with binomial probabilities: for each code length l and any true error r, the
    chance that the l-bit hypothesis's bound falls below r is at most delta 2^-l / 3.
    """
    m, delta = 300, 0.1
    for bits in (0, 10):
        for r in (0.05, 0.3):
            kl = message_log_inverse_prior(bits)
            values = [occam_bound(kl, m, delta / 3, empirical_risk=k / m) for k in range(m + 1)]
            failing = [k for k in range(m + 1) if values[k] < r]
            fail = stats.binom.pmf(failing, m, r).sum() if failing else 0.0
            assert fail <= delta / 3 * 2.0**-bits * (1 + 1e-9)


def test_bad_input_is_refused():
    with pytest.raises(InputError):
        compression_bound(0.1, 100, 1000, 0.05, configurations=0)
    with pytest.raises(InputError):
        compression_bound(0.1, -1, 1000, 0.05)
    with pytest.raises(InputError):
        compression_bound(0.1, 100, 1000, 1.5)
    with pytest.raises(InputError):
        compression_bound(1.2, 100, 1000, 0.05)


def _kl_inverse_by_bisection(q: float, c: float) -> float:
    """The largest p >= q with kl(q || p) <= c, by plain bisection (independent of pacbayes)."""

    def kl(p):
        left = 0.0 if q == 0 else q * math.log(q / p)
        return left + (1 - q) * math.log((1 - q) / (1 - p))

    low, high = q, 1.0 - 1e-15
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (middle, high) if kl(middle) <= c else (low, middle)
    return low


@pytest.mark.parametrize("err, bits, configs", [(0.0746, 1557, 3), (0.14, 900, 18), (0.3, 200, 1)])
def test_occam_form_against_an_independent_kl_inversion(err, bits, configs):
    m, delta = 5000, 0.05
    c = (bits * math.log(2) + math.log(configs) + math.log(3 / delta)) / m
    out = compression_bound(err, bits, m, delta, configs)
    assert out["forms"]["occam"] == pytest.approx(_kl_inverse_by_bisection(err, c), abs=1e-9)
    assert out["value"] <= out["forms"]["occam"]
