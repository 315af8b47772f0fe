"""Classical PAC-Bayes and Occam bounds on numbers (empirical risk, KL, m, delta).

All bounds hold with probability >= 1 - delta over an iid sample of size m, simultaneously for
all posteriors Q, for a prior P fixed before seeing the sample, and bound the risk of the Gibbs
classifier under Q in terms of its empirical risk and KL(Q||P).
"""

import math
from collections.abc import Sequence

import numpy as np

from pacbayes import checks
from pacbayes.bounds.kl import kl_inverse_upper
from pacbayes.errors import InputError

DEFAULT_CATONI_GRID = tuple(float(c) for c in np.geomspace(1e-2, 1e2, 41))


def _pac_bayes_kl_complexity(kl: float, m: int, delta: float) -> float:
    return (kl + math.log(2.0 * math.sqrt(m) / delta)) / m


def pac_bayes_kl_bound(empirical_risk: float, kl: float, m: int, delta: float) -> float:
    """PAC-Bayes-kl (Seeger 2002; Maurer 2004, Theorem 5): kl(hat_r || r) <= (KL + ln(2 sqrt(m)/delta)) / m.

    Returns kl_inverse_upper(hat_r, (KL + ln(2 sqrt(m)/delta)) / m). Maurer's constant needs m >= 8.
    """
    empirical_risk = checks.probability(empirical_risk, "empirical_risk")
    kl = checks.nonnegative(kl, "kl")
    m = checks.sample_size(m, minimum=8)
    delta = checks.delta(delta)
    return kl_inverse_upper(empirical_risk, _pac_bayes_kl_complexity(kl, m, delta))


def mcallester_bound(empirical_risk: float, kl: float, m: int, delta: float) -> float:
    """McAllester (1999, 2003) in Maurer's constant: r <= hat_r + sqrt((KL + ln(2 sqrt(m)/delta)) / (2m)).

    This is the Pinsker relaxation of :func:`pac_bayes_kl_bound`, hence never tighter; it is the
    bound behind PBB's f_classic objective (Pérez-Ortiz et al. 2021, eq. 7). Clipped at 1.
    """
    empirical_risk = checks.probability(empirical_risk, "empirical_risk")
    kl = checks.nonnegative(kl, "kl")
    m = checks.sample_size(m, minimum=8)
    delta = checks.delta(delta)
    return min(1.0, empirical_risk + math.sqrt(_pac_bayes_kl_complexity(kl, m, delta) / 2.0))


def occam_complexity(log_inverse_prior: float, m: int, delta: float) -> float:
    """(ln 1/P(h) + ln 1/delta) / m, the Occam term for a point-mass posterior on h (KL = ln 1/P(h))."""
    log_inverse_prior = checks.nonnegative(log_inverse_prior, "log_inverse_prior")
    m = checks.sample_size(m, minimum=1)
    delta = checks.delta(delta)
    return (log_inverse_prior + math.log(1.0 / delta)) / m


def occam_bound(log_inverse_prior: float, m: int, delta: float, empirical_risk: float = 0.0) -> float:
    """Occam's razor bound for a countable hypothesis class (Langford 2005, Theorem 4.6; Blumer et al. 1987).

    With prior P(h) over hypotheses, the binomial-tail (Chernoff) inequality and a union bound give
    kl(hat_r || r) <= (ln 1/P(h) + ln 1/delta) / m for all h at once, hence
    r <= kl_inverse_upper(hat_r, c). In the realisable case (hat_r = 0) this is 1 - exp(-c),
    slightly tighter than the textbook r <= c = :func:`occam_complexity`.
    """
    empirical_risk = checks.probability(empirical_risk, "empirical_risk")
    return kl_inverse_upper(empirical_risk, occam_complexity(log_inverse_prior, m, delta))


def catoni_bound(
    empirical_risk: float, kl: float, m: int, delta: float, grid: Sequence[float] = DEFAULT_CATONI_GRID
) -> float:
    """Catoni's bound (Catoni 2007, Theorem 1.2.6), minimised over a fixed grid of its parameter C.

    For a fixed C > 0: r <= (1 - exp(-C hat_r - (KL + ln 1/delta)/m)) / (1 - exp(-C)).
    A union bound over the k grid points replaces delta by delta / k, so the minimum over the
    grid is itself a valid bound. The grid must be chosen before seeing the data.
    """
    empirical_risk = checks.probability(empirical_risk, "empirical_risk")
    kl = checks.nonnegative(kl, "kl")
    m = checks.sample_size(m, minimum=1)
    delta = checks.delta(delta)
    grid = [float(c) for c in grid]
    if not grid or any(not (c > 0.0 and math.isfinite(c)) for c in grid):
        raise InputError("the Catoni grid must be a non-empty list of finite values > 0")
    complexity = (kl + math.log(len(grid) / delta)) / m
    best = min(-math.expm1(-c * empirical_risk - complexity) / -math.expm1(-c) for c in grid)
    return min(1.0, best)
