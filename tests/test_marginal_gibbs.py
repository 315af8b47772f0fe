"""Q*'s Gibbs test error, mean Phi(-y mu / sigma), against closed forms and Monte Carlo sampling."""

import numpy as np
import pytest

from pacbayes.families.marginal import gibbs_test_error


def test_gibbs_error_closed_forms():
    signs = np.array([1.0, -1.0, 1.0, -1.0])
    assert gibbs_test_error(np.zeros(4), np.ones(4), signs) == pytest.approx(0.5)
    # a nearly deterministic posterior: the 0-1 error of sign(mean)
    mean = np.array([2.0, 2.0, -3.0, -1.0])
    assert gibbs_test_error(mean, np.full(4, 1e-12), signs) == pytest.approx(0.5, abs=1e-12)
    assert gibbs_test_error(np.array([1.0]), np.array([1.0]), np.array([-1.0])) == pytest.approx(0.841344746, rel=1e-8)


def test_gibbs_error_equals_sampling_the_posterior():
    rng = np.random.default_rng(0)
    n = 50
    mean, variance = rng.normal(size=n), rng.uniform(0.1, 2.0, size=n)
    signs = rng.choice([-1.0, 1.0], size=n)
    draws = mean + np.sqrt(variance) * rng.standard_normal((200_000, n))
    sampled = float(np.mean(np.sign(draws) != signs))
    assert gibbs_test_error(mean, variance, signs) == pytest.approx(sampled, abs=3e-3)
