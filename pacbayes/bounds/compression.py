"""Bounds for a compressed hypothesis named by a prefix-free message (torch-free).

Prior: for each of ``configurations`` hyper-parameter settings fixed before seeing the data (e.g.
subspace dimension x number of quantisation levels), a prefix-free code; the hypothesis with an
l-bit message gets prior mass P(h) = 2^-l / configurations (Kraft's inequality makes this sum to at
most 1). The posterior is a point mass on the decoded model h, so

    KL(Q||P) = ln 1/P(h) = l ln 2 + ln(configurations)

(Lotfi et al. 2022, "PAC-Bayes Compression Bounds So Tight That They Can Explain
Generalization", NeurIPS, Section 4 and eq. (2); Zhou et al. 2019, ICLR, Theorem 2.1).

The bound on the 0-1 error of h is the minimum over three forms, each given delta / 3 (union
bound, so the minimum is itself certified):

- ``occam``: kl(hat_r || r) <= (ln 1/P(h) + ln 1/delta)/m (Langford 2005, Theorem 4.6),
- ``catoni``: Catoni (2007), Theorem 1.2.6, over the fixed grid of :func:`catoni_bound`,
- ``pac-bayes-kl``: Seeger 2002 / Maurer 2004 with KL = ln 1/P(h).
"""

import math
from typing import TypedDict

from pacbayes import checks
from pacbayes.bounds.pac_bayes import catoni_bound, occam_bound, pac_bayes_kl_bound
from pacbayes.bounds.union import split_delta

FORMS = ("occam", "catoni", "pac-bayes-kl")


class CompressionBound(TypedDict):
    """What :func:`compression_bound` returns (a plain dict at run time)."""

    value: float
    best_form: str
    forms: dict[str, float]
    kl: float
    delta: dict[str, float]


def message_log_inverse_prior(code_bits: float, configurations: int = 1) -> float:
    """ln 1/P(h) = code_bits ln 2 + ln(configurations), in nats (module docstring)."""
    code_bits = checks.nonnegative(code_bits, "code_bits")
    configurations = checks.sample_size(configurations, name="configurations", minimum=1)
    return code_bits * math.log(2.0) + math.log(configurations)


def compression_bound(
    empirical_risk: float, code_bits: float, m: int, delta: float, configurations: int = 1
) -> CompressionBound:
    """Certified upper bound on the 0-1 error of the decoded compressed hypothesis.

    Returns {"value": min over forms, "best_form": its name, "forms": {form: value},
    "kl": ln 1/P(h) in nats, "delta": {form: delta/3}}; all forms hold together with
    probability >= 1 - delta over the m-point sample.
    """
    empirical_risk = checks.probability(empirical_risk, "empirical_risk")
    m = checks.sample_size(m, minimum=8)
    kl = message_log_inverse_prior(code_bits, configurations)
    ledger = split_delta(delta, {form: 1.0 for form in FORMS})
    forms = {
        "occam": occam_bound(kl, m, ledger["occam"], empirical_risk=empirical_risk),
        "catoni": catoni_bound(empirical_risk, kl, m, ledger["catoni"]),
        "pac-bayes-kl": pac_bayes_kl_bound(empirical_risk, kl, m, ledger["pac-bayes-kl"]),
    }
    best_form = min(FORMS, key=lambda form: forms[form])
    return {"value": forms[best_form], "best_form": best_form, "forms": forms, "kl": kl, "delta": ledger}
