"""Binary KL divergence and its exact inverses.

kl(q||p) = q ln(q/p) + (1-q) ln((1-q)/(1-p)), with 0 ln 0 = 0 (Cover & Thomas 2006, eq. 2.26
for Bernoulli variables). The PAC-Bayes-kl bound (Seeger 2002; Maurer 2004) and the sample
convergence bound (Langford & Caruana 2001) are statements kl(q||p) <= c; turning them into a
number on p needs

    kl_inverse_upper(q, c) = max{p in [q, 1] : kl(q||p) <= c}
    kl_inverse_lower(q, c) = min{p in [0, q] : kl(q||p) <= c}.

kl(q||.) is convex, zero at q and strictly monotone on either side, so bisection on the
monotone branch finds the inverse to any tolerance. Two things make the returned number a bound:

* kl is evaluated without cancellation. With d = p - q the two first-order terms cancel exactly
  (q ln(q/p) = -q ln(1 + d/q) and so on), leaving
  kl(q||p) = q h(d/q) + (1-q) h(-d/(1-q)),  h(u) = u - ln(1 + u) >= 0,
  a sum of two non-negative terms; h is summed as its Taylor series for |u| < 0.1. The naive
  form loses about half the digits near p = q (tiny c), enough to put the inverse on the wrong
  side of the truth.
* The bisection only moves the far end of the bracket (the end returned) on a point whose kl
  exceeds c * (1 + _MARGIN); _MARGIN dwarfs the evaluation's relative error (a few 1e-16), so
  the returned end is always outside the interval: kl_inverse_upper >= the exact inverse and
  kl_inverse_lower <= it. With the bracket closed to _TOLERANCE, the returned value is within
  2e-12 of the exact inverse of the given floats (1e-13 bracket + 1.1e-12 (p - q) margin slack).
"""

import math

from pacbayes import checks
from pacbayes.errors import InputError

_TOLERANCE = 1e-13  # final bracket width
_MARGIN = 1e-12  # relative safety margin on c for moving the returned end of the bracket
_SERIES = 0.1  # |u| below which h(u) = u - ln(1 + u) is summed as its Taylor series


def _weighted_h(weight: float, change: float, moved: float) -> float:
    """weight * h(change / weight), h(u) = u - ln(1 + u), with moved = weight + change.

    The limit weight -> 0 is change (0 ln 0 = 0); moved = 0 with weight > 0 is +inf. For
    |u| < _SERIES the Taylor series sum_{k>=2} (-u)^k / k is summed to float precision; otherwise
    change - weight ln(moved / weight), whose terms no longer cancel badly.
    """
    if weight == 0.0:
        return change
    if moved == 0.0:
        return math.inf
    u = change / weight
    if abs(u) >= _SERIES:
        return change - weight * math.log(moved / weight)
    total, power = 0.0, u * u
    for k in range(2, 20):  # 0.1^18 < 1e-16 relative to the leading term
        total += power / k if k % 2 == 0 else -power / k
        power *= u
    return weight * total


def _kl(q: float, p: float) -> float:
    """kl(q||p) for q, p in [0, 1], as the sum of two non-negative terms (module docstring)."""
    return _weighted_h(q, p - q, p) + _weighted_h(1.0 - q, q - p, 1.0 - p)


def binary_kl(q: float, p: float) -> float:
    """kl(q||p) between Bernoulli(q) and Bernoulli(p), in nats; +inf where p is 0 or 1 and q is not.

    Accurate to a few units in the last place also for p near q (no cancellation).
    """
    q = checks.probability(q, "q")
    p = checks.probability(p, "p")
    return _kl(q, p)


def _checked(q: float, c: float) -> tuple[float, float]:
    """(q, c) as floats after checking q in [0, 1] and c >= 0 (infinite c allowed)."""
    q = checks.probability(q, "q")
    c = float(c)
    if math.isnan(c) or c < 0.0:
        raise InputError(f"c must be a number >= 0, got {c}")
    return q, c


def _bisect(q: float, c: float, lo: float, hi: float, upper: bool) -> float:
    """Bisection for kl(q||p) = c on [lo, hi], where kl - c changes sign exactly once.

    The end that is returned (hi for the upper inverse, lo for the lower) starts outside the
    interval (kl = +inf there) and is only moved onto points with kl > c (1 + _MARGIN), so it stays
    outside: the result errs on the conservative side by at most the bracket plus the margin slack.
    """
    threshold = c * (1.0 + _MARGIN)
    while hi - lo > _TOLERANCE:
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):  # float resolution reached
            break
        outside = _kl(q, mid) > threshold
        if outside == upper:
            hi = mid
        else:
            lo = mid
    return hi if upper else lo


def kl_inverse_upper(q: float, c: float) -> float:
    """max{p in [q, 1] : kl(q||p) <= c}: the upper end of the kl confidence interval.

    Never below the exact inverse and at most 2e-12 above it (module docstring). c = 0 gives q;
    huge or infinite c gives values up to 1.0 (kl(q||1) is infinite for q < 1, so the answer is
    1.0 only in the limit or when q = 1). At q = 0 it is the closed form 1 - exp(-c), computed as
    -expm1(-c) and moved up one float so rounding cannot put it below.
    """
    q, c = _checked(q, c)
    if c == 0.0 or q == 1.0:
        return q
    if math.isinf(c):
        return 1.0
    if q == 0.0:
        return math.nextafter(-math.expm1(-c), 1.0)
    return _bisect(q, c, q, 1.0, upper=True)


def kl_inverse_lower(q: float, c: float) -> float:
    """min{p in [0, q] : kl(q||p) <= c}: the lower end of the kl confidence interval.

    Never above the exact inverse and at most 2e-12 below it; by symmetry kl(q||p) =
    kl(1-q||1-p), so kl_inverse_lower(q, c) = 1 - kl_inverse_upper(1 - q, c) up to rounding. At
    q = 1 it is the closed form exp(-c), moved down one float so rounding cannot put it above.
    """
    q, c = _checked(q, c)
    if c == 0.0 or q == 0.0:
        return q
    if math.isinf(c):
        return 0.0
    if q == 1.0:
        return math.nextafter(math.exp(-c), 0.0)
    return _bisect(q, c, 0.0, q, upper=False)
