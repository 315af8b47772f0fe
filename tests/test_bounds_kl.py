"""Binary KL and its inverses against high-precision independent computation (mpmath)."""

import math

import mpmath
import pytest

from pacbayes.bounds import binary_kl, kl_inverse_lower, kl_inverse_upper
from pacbayes.errors import InputError

mpmath.mp.dps = 50


def mp_kl(q, p):
    q, p = mpmath.mpf(q), mpmath.mpf(p)

    def term(a, b):
        if a == 0:
            return mpmath.mpf(0)
        return mpmath.inf if b == 0 else a * mpmath.log(a / b)

    return term(q, p) + term(1 - q, 1 - p)


def mp_inverse(q, c, upper):
    """Bisection at 50 digits, independent of the float implementation."""
    lo, hi = (mpmath.mpf(q), mpmath.mpf(1)) if upper else (mpmath.mpf(0), mpmath.mpf(q))
    for _ in range(200):
        mid = (lo + hi) / 2
        inside = mp_kl(q, mid) <= c
        if inside == upper:
            lo = mid
        else:
            hi = mid
    return float((lo + hi) / 2)


@pytest.mark.parametrize("q,p", [(0.1, 0.3), (0.5, 0.5), (0.0, 0.2), (1.0, 0.7), (0.02, 0.9999)])
def test_binary_kl_matches_high_precision(q, p):
    assert binary_kl(q, p) == pytest.approx(float(mp_kl(q, p)), rel=1e-12, abs=1e-15)


def test_binary_kl_conventions():
    assert binary_kl(0.0, 0.0) == 0.0
    assert binary_kl(1.0, 1.0) == 0.0
    assert binary_kl(0.3, 1.0) == math.inf
    assert binary_kl(0.3, 0.0) == math.inf


@pytest.mark.parametrize("q", [0.0, 1e-6, 0.01, 0.13, 0.5, 0.87, 0.999])
@pytest.mark.parametrize("c", [1e-8, 1e-3, 0.05, 0.7, 5.0, 40.0])
def test_inverses_exact_to_1e10(q, c):
    upper = kl_inverse_upper(q, c)
    lower = kl_inverse_lower(q, c)
    assert abs(upper - mp_inverse(q, c, True)) < 1e-10
    assert abs(lower - mp_inverse(q, c, False)) < 1e-10
    assert lower <= q <= upper


def test_inverse_edge_cases():
    assert kl_inverse_upper(0.0, 2.0) == pytest.approx(1.0 - math.exp(-2.0), abs=1e-12)
    assert kl_inverse_upper(0.3, 0.0) == 0.3
    assert kl_inverse_lower(0.3, 0.0) == 0.3
    assert kl_inverse_upper(1.0, 3.0) == 1.0
    assert kl_inverse_lower(0.0, 3.0) == 0.0
    for huge in (1e6, 1e300, math.inf):
        value = kl_inverse_upper(0.2, huge)
        assert not math.isnan(value) and value == pytest.approx(1.0, abs=1e-12)
        assert kl_inverse_lower(0.2, huge) == pytest.approx(0.0, abs=1e-12)


def test_inverse_is_conservative():
    """The returned upper (lower) inverse never falls inside the interval's interior."""
    for q, c in [(0.1, 0.2), (0.0, 0.01), (0.4, 3.0)]:
        assert binary_kl(q, kl_inverse_upper(q, c)) >= c * (1 - 1e-9)


@pytest.mark.parametrize("q,c", [(-0.1, 1.0), (1.2, 1.0), (0.5, -1.0), (0.5, math.nan), (math.nan, 1.0)])
def test_inverse_rejects_bad_input(q, c):
    with pytest.raises(InputError):
        kl_inverse_upper(q, c)


def _mp_inverse_exact(q, c, upper, steps=300):
    """The exact inverse of the float inputs as a 50-digit number (kept in mpmath, not rounded)."""
    lo, hi = (mpmath.mpf(q), mpmath.mpf(1)) if upper else (mpmath.mpf(0), mpmath.mpf(q))
    for _ in range(steps):
        mid = (lo + hi) / 2
        if (mp_kl(q, mid) <= c) == upper:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


@pytest.mark.parametrize("q", [0.0, 1e-6, 0.01, 0.5, 0.99, 1.0])
@pytest.mark.parametrize("c", [1e-12, 1e-9, 1e-6, 1e-3, 0.5, 20.0])
def test_inverses_round_to_the_conservative_side(q, c):
    """Issue 11 (8): upper >= exact inverse >= lower, each within the documented 2e-12, at tiny c too."""
    upper, lower = kl_inverse_upper(q, c), kl_inverse_lower(q, c)
    exact_upper, exact_lower = _mp_inverse_exact(q, c, True), _mp_inverse_exact(q, c, False)
    assert mpmath.mpf(upper) >= exact_upper and mpmath.mpf(upper) - exact_upper <= 2e-12
    assert mpmath.mpf(lower) <= exact_lower and exact_lower - mpmath.mpf(lower) <= 2e-12


def test_inverse_closed_forms_at_the_ends():
    """q = 0: upper = 1 - exp(-c) (computed as -expm1(-c)); q = 1: lower = exp(-c); both rounded safely."""
    for c in (1e-12, 1e-6, 0.3, 5.0):
        assert kl_inverse_upper(0.0, c) == pytest.approx(-math.expm1(-c), rel=1e-15)
        assert mpmath.mpf(kl_inverse_upper(0.0, c)) >= -mpmath.expm1(-mpmath.mpf(c))
        assert kl_inverse_lower(1.0, c) == pytest.approx(math.exp(-c), rel=1e-15)
        assert mpmath.mpf(kl_inverse_lower(1.0, c)) <= mpmath.exp(-mpmath.mpf(c))
