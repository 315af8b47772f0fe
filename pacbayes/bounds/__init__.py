"""Bound arithmetic on plain numbers (numpy/scipy only; importing this never imports torch).

Each function cites the paper and equation it implements; inputs are checked and bad ones raise
:class:`pacbayes.errors.InputError` with a one-line explanation.
"""

from pacbayes.bounds.compression import FORMS as COMPRESSION_FORMS
from pacbayes.bounds.compression import compression_bound, message_log_inverse_prior
from pacbayes.bounds.holdout import holdout_bound
from pacbayes.bounds.kl import binary_kl, kl_inverse_lower, kl_inverse_upper
from pacbayes.bounds.label_noise import clean_distribution_bound, noise_floor
from pacbayes.bounds.marginal import (
    VARIANTS as MARGINAL_VARIANTS,
)
from pacbayes.bounds.marginal import (
    marginal_likelihood_bound,
    marginal_likelihood_complexity,
)
from pacbayes.bounds.pac_bayes import catoni_bound, mcallester_bound, occam_bound, occam_complexity, pac_bayes_kl_bound
from pacbayes.bounds.sample_convergence import sample_convergence_bound
from pacbayes.bounds.stochastic import (
    DR_GRID_B,
    DR_GRID_C,
    dziugaite_roy_complexity,
    dziugaite_roy_objective,
    grid_candidates,
    grid_index,
    grid_variance,
    langford_seeger_complexity,
    maurer_complexity,
    pbb_classic,
    pbb_complexity,
    pbb_lambda,
    pbb_lambda_tradeoff,
    pbb_quad,
    series_delta,
)
from pacbayes.bounds.union import markov_lower_bound, split_delta

__all__ = [
    "COMPRESSION_FORMS",
    "compression_bound",
    "message_log_inverse_prior",
    "binary_kl",
    "kl_inverse_lower",
    "kl_inverse_upper",
    "MARGINAL_VARIANTS",
    "marginal_likelihood_bound",
    "marginal_likelihood_complexity",
    "catoni_bound",
    "mcallester_bound",
    "occam_bound",
    "occam_complexity",
    "pac_bayes_kl_bound",
    "sample_convergence_bound",
    "holdout_bound",
    "clean_distribution_bound",
    "noise_floor",
    "markov_lower_bound",
    "split_delta",
    "DR_GRID_B",
    "DR_GRID_C",
    "dziugaite_roy_complexity",
    "dziugaite_roy_objective",
    "grid_candidates",
    "grid_index",
    "grid_variance",
    "langford_seeger_complexity",
    "maurer_complexity",
    "pbb_classic",
    "pbb_complexity",
    "pbb_lambda",
    "pbb_lambda_tradeoff",
    "pbb_quad",
    "series_delta",
]
