"""Union bounds: splitting one failure probability over several statements.

If statement i fails with probability <= delta_i, all hold together with probability
>= 1 - sum_i delta_i (Boole's inequality). Every certified number in a report takes its delta_i
from one :func:`split_delta` call, so the report's ledger sums to at most the user's delta.
"""

import math
from collections.abc import Mapping

from pacbayes import checks
from pacbayes.errors import InputError


def split_delta(delta: float, weights: Mapping[str, float]) -> dict[str, float]:
    """Split ``delta`` into named parts proportional to ``weights`` (positive numbers).

    Returns {name: delta_i} with sum(delta_i) <= delta (equal up to one rounding step, which is
    taken off the last part so the sum never exceeds delta).
    """
    delta = checks.delta(delta)
    if not weights:
        raise InputError("split_delta needs at least one named part")
    names = list(weights)
    values = [checks.finite(weights[name], f"weight of {name!r}") for name in names]
    if any(v <= 0.0 for v in values):
        raise InputError("every weight in a delta split must be > 0")
    total = sum(values)
    parts = {name: delta * v / total for name, v in zip(names, values, strict=True)}
    while sum(parts.values()) > delta:
        parts[names[-1]] = math.nextafter(parts[names[-1]], 0.0)
    return parts


def markov_lower_bound(log_estimate: float, delta_prime: float) -> float:
    """ln Z >= ln Z_hat - ln(1/delta') with probability >= 1 - delta'.

    For any unbiased estimator Z_hat >= 0 of Z, Markov's inequality gives
    Pr[Z_hat >= Z / delta'] <= delta', i.e. with probability >= 1 - delta' over the estimator's
    randomness Z > delta' Z_hat. No variance assumption; one sample suffices (used to certify
    ln P(S) from below with minimax-tilted importance sampling, Botev 2017).
    """
    delta_prime = checks.delta(delta_prime, "delta_prime")
    log_estimate = float(log_estimate)
    if log_estimate != log_estimate:
        raise InputError("the log estimate must be a number, got nan")
    return log_estimate - math.log(1.0 / delta_prime)
