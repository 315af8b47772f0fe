"""Union bounds (Boole's split of delta) and the Markov lower bound on ln Z."""

import math

import numpy as np
import pytest

from pacbayes.bounds import markov_lower_bound, series_delta, split_delta
from pacbayes.errors import InputError


def test_split_delta_sums_to_delta_and_is_proportional():
    parts = split_delta(0.05, {"a": 1.0, "b": 2.0, "c": 1.7})
    assert sum(parts.values()) <= 0.05
    assert sum(parts.values()) == pytest.approx(0.05, rel=1e-14)
    assert parts["b"] == pytest.approx(2 * parts["a"], rel=1e-12)
    with pytest.raises(InputError):
        split_delta(0.05, {"a": 0.0})
    with pytest.raises(InputError):
        split_delta(1.5, {"a": 1.0})


def test_markov_lower_bound_coverage_for_exponential_estimator():
    """Z_hat ~ Exp(mean Z) is unbiased; Pr[lower bound > ln Z] = exp(-1/delta') <= delta'."""
    rng = np.random.default_rng(0)
    log_z, delta_prime = -3.0, 0.2
    samples = rng.exponential(math.exp(log_z), size=20_000)
    violations = np.mean([markov_lower_bound(math.log(s), delta_prime) > log_z for s in samples])
    assert violations <= delta_prime
    assert markov_lower_bound(-10.0, 0.01) == pytest.approx(-10.0 - math.log(100.0), rel=1e-15)


def test_series_delta_sums_to_delta():
    assert sum(series_delta(k, 0.05) for k in range(1, 200_001)) == pytest.approx(0.05, rel=1e-5)
    assert series_delta(1, 0.05) == pytest.approx(0.05 * 6 / math.pi**2, rel=1e-15)
