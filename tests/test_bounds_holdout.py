"""The hold-out bound (exact binomial tail inversion, Langford 2005 Thm 3.3) against scipy's binomial."""

import numpy as np
import pytest
from scipy import stats

from pacbayes.bounds import holdout_bound


def test_holdout_bound_inverts_the_binomial_tail():
    n, k, delta = 500, 12, 0.01
    p = holdout_bound(k, n, delta)
    assert stats.binom.cdf(k, n, p) == pytest.approx(delta, rel=1e-8)
    assert holdout_bound(n, n, delta) == 1.0
    assert holdout_bound(0, n, delta) == pytest.approx(1 - delta ** (1 / n), rel=1e-10)


def test_holdout_bound_exact_coverage():
    n, delta = 300, 0.05
    k = np.arange(n + 1)
    bounds = np.array([holdout_bound(int(j), n, delta) for j in k])
    for true_error in (0.02, 0.1, 0.4):
        assert stats.binom.pmf(k, n, true_error)[bounds < true_error].sum() <= delta
