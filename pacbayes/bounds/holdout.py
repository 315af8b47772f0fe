"""Hold-out (test-set) bound for one fixed classifier (Langford 2005, Theorem 3.3).

If a classifier chosen independently of a test sample of size n makes k errors on it, then with
probability >= 1 - delta its true error is at most

    Bin^-1(k, n, delta) = max{p : Pr[Binomial(n, p) <= k] >= delta},

the exact binomial tail inversion. By the identity between binomial and beta tails,
Pr[Bin(n, p) <= k] = 1 - I_p(k + 1, n - k), so the maximiser is the (1 - delta) quantile of
Beta(k + 1, n - k) (the one-sided Clopper-Pearson limit); for k = n the bound is 1.
"""

from pacbayes import checks
from pacbayes.errors import InputError


def holdout_bound(errors: int, n: int, delta: float) -> float:
    """Upper bound on the true error of a fixed classifier from ``errors`` mistakes on ``n`` held-out points."""
    n = checks.sample_size(n, name="n", minimum=1)
    errors = checks.sample_size(errors, name="errors", minimum=0)
    if errors > n:
        raise InputError(f"errors ({errors}) cannot exceed the number of test points ({n})")
    delta = checks.delta(delta)
    if errors == n:
        return 1.0
    from scipy import stats  # here, not at import: scipy.stats takes longer to load than every other bound

    return float(stats.beta.ppf(1.0 - delta, errors + 1, n - errors))
