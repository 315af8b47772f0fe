"""Bounds under label noise: from the corrupted-label distribution back to the clean one."""

from pacbayes import checks
from pacbayes.errors import InputError


def noise_floor(fraction: float, classes: int = 2) -> float:
    """c (K - 1) / K: the smallest error any classifier has on labels corrupted at rate c over K classes."""
    fraction = checks.probability(fraction, "the corruption fraction")
    return fraction * (checks.integer_at_least(classes, "classes", 2) - 1) / classes


def clean_distribution_bound(corrupted_bound: float, fraction: float, classes: int = 2) -> float:
    """Bound on the clean-label error from one on labels corrupted as :func:`pacbayes.data.corrupt_labels` does.

    Each label is, independently of x and of the others, replaced with probability c by a class
    drawn uniformly from K, so for every classifier h (deterministic or Gibbs)
    err_corrupted(h) = (1 - c) err_clean(h) + c (K - 1) / K, and
    err_clean <= (B - c (K - 1) / K) / (1 - c), clipped to 1 (binary: (B - c/2) / (1 - c);
    vacuous when c = 1).

    No classifier's corrupted-label error is below the noise floor c (K - 1) / K, so a bound B
    below it cannot hold: either it failed (its delta event happened) or the labels were not
    corrupted as stated. That raises InputError rather than returning a clean-label bound of 0.
    """
    corrupted_bound = checks.probability(corrupted_bound, "the corrupted-label bound")
    floor = noise_floor(fraction, classes)
    if corrupted_bound < floor:
        raise InputError(
            f"the corrupted-label bound {corrupted_bound:.4g} lies below the noise floor c (K - 1) / K = "
            f"{floor:.4g} (c = {fraction:g}, K = {classes}) that every classifier's error on such labels reaches, "
            "so it cannot hold: the bound failed or the labels were not corrupted as stated; "
            "no clean-label bound follows from it"
        )
    if fraction == 1.0:
        return 1.0
    return min(1.0, (corrupted_bound - floor) / (1.0 - fraction))
