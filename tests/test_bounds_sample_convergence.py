"""Sample convergence (Langford & Caruana 2001): a stochastic classifier's Monte Carlo error, by exact binomials."""

import numpy as np
from scipy import stats

from pacbayes.bounds import sample_convergence_bound


def test_sample_convergence_exact_coverage():
    """Exact binomial computation: Pr[bound < true mean] <= delta' for several true means."""
    n, delta_prime = 150, 0.05
    k = np.arange(n + 1)
    bounds = np.array([sample_convergence_bound(j / n, n, delta_prime) for j in k])
    for true_mean in (0.01, 0.1, 0.3, 0.5):
        failure = stats.binom.pmf(k, n, true_mean)[bounds < true_mean].sum()
        assert failure <= delta_prime


def test_sample_convergence_loosens_with_fewer_samples():
    assert sample_convergence_bound(0.1, 100, 0.01) > sample_convergence_bound(0.1, 10_000, 0.01)
