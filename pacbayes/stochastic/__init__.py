"""Dziugaite-Roy and PBB bounds for a stochastic network N(w, diag(s)): learned from the prior (PBB) or
around a trained model's weights (see :mod:`pacbayes.stochastic.bound` for the three modes)."""

from pacbayes.stochastic.bound import (
    POSTERIOR_STARTS,
    StochasticCertificate,
    certify_stochastic_network,
    stochastic_bound,
)
from pacbayes.stochastic.train import OBJECTIVES, Schedule

__all__ = [
    "StochasticCertificate",
    "certify_stochastic_network",
    "stochastic_bound",
    "OBJECTIVES",
    "POSTERIOR_STARTS",
    "Schedule",
]
