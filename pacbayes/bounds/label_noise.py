"""Bounds under label noise: from the corrupted-label distribution back to the clean one."""


def clean_distribution_bound(corrupted_bound: float, fraction: float, classes: int = 2) -> float:
    """Bound on the clean-label error from one on labels corrupted as :func:`pacbayes.data.corrupt_labels` does.

    Each label is, independently of x and of the others, replaced with probability c by a class
    drawn uniformly from K, so for every classifier h (deterministic or Gibbs)
    err_corrupted(h) = (1 - c) err_clean(h) + c (K - 1) / K, and
    err_clean <= (B - c (K - 1) / K) / (1 - c), clipped to [0, 1] (binary: (B - c/2) / (1 - c);
    vacuous when c = 1).
    """
    if not 0.0 <= fraction < 1.0:
        return 1.0
    noise = fraction * (classes - 1) / classes
    return min(1.0, max(0.0, (corrupted_bound - noise) / (1.0 - fraction)))
