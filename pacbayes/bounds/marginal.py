"""The marginal-likelihood PAC-Bayes bound (Valle-Pérez, Camargo & Louis, ICLR 2019).

With the prior over functions P, U the set of functions consistent with the training sample S
(|S| = m), P(U) = P(S) the marginal likelihood of the labels under the 0-1 likelihood, and Q* the
prior restricted to U, the realisable PAC-Bayes theorem of Langford & Seeger (2001), as stated
in Valle-Pérez et al. (2019), Corollary 1 / eq. (1), gives with probability >= 1 - delta

    -ln(1 - eps(Q*)) <= (ln 1/P(S) + ln(2m/delta)) / (m - 1),

so eps(Q*) <= 1 - exp(-(ln 1/P(S) + ln(2m/delta)) / (m - 1))       (variant "langford").

The authors' released code used McAllester's (1999) form of the realisable bound,

    -ln(1 - eps) <= (ln 1/P(S) + 2 ln m + 1 + ln 1/delta) / m        (variant "mcallester"),

which we offer so that their tables can be reproduced (they used delta = 2^-10). Their
reference figure: ln 1/P(S) = 1416 nats, m = 10,000 gives eps <= 0.134.

The bound certifies the Gibbs error of Q*, the NNGP-Bayes posterior; it holds for any P(S)
that is a lower bound on the true marginal likelihood (the bound is decreasing in ln P(S)).
"""

import math

from pacbayes import checks
from pacbayes.errors import InputError

VARIANTS = ("langford", "mcallester")


def marginal_likelihood_complexity(log_evidence: float, m: int, delta: float, variant: str = "langford") -> float:
    """The right-hand side c of -ln(1 - eps) <= c for the chosen variant (see module docstring)."""
    log_evidence = checks.number(log_evidence, "log_evidence (ln P(S))")
    if math.isnan(log_evidence):
        raise InputError("log_evidence (ln P(S)) must be a number, got nan")
    if log_evidence > 0.0:
        raise InputError(f"log_evidence (ln P(S)) must be <= 0 since P(S) is a probability, got {log_evidence}")
    m = checks.sample_size(m)
    delta = checks.delta(delta)
    neg_log_evidence = -log_evidence
    if variant == "langford":
        return (neg_log_evidence + math.log(2.0 * m / delta)) / (m - 1)
    if variant == "mcallester":
        return (neg_log_evidence + 2.0 * math.log(m) + 1.0 + math.log(1.0 / delta)) / m
    raise InputError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")


def marginal_likelihood_bound(log_evidence: float, m: int, delta: float, variant: str = "langford") -> float:
    """Upper bound on the generalisation error of Q*: 1 - exp(-c) (module docstring).

    ``log_evidence`` is ln P(S) <= 0 (``-inf`` gives the vacuous bound 1.0); ``m`` >= 2 is the
    number of training points, ``delta`` in (0, 1) the failure probability.
    """
    complexity = marginal_likelihood_complexity(log_evidence, m, delta, variant)
    return -math.expm1(-complexity)
