"""Estimators of ln P(S), the log marginal likelihood of the labels under a GP prior.

P(S) = Pr[y_i f_i > 0 for all i], f ~ N(0, K + jitter I): a Gaussian orthant probability.
* :func:`ep_log_evidence`: converged expectation propagation (an estimate, not a bound);
  :func:`ep_predict` gives the EP posterior of the latent at test points.
* :func:`certified_log_evidence`: a certified lower bound (probability >= 1 - delta', Markov's
  inequality on importance sampling from the EP cavity conditionals, or Botev's 2017 minimax
  tilting) and the deterministic upper bound psi* (Botev 2017).
* :func:`equicorrelated_log_orthant` (exact) and :func:`genz_log_orthant` (SciPy QMC): references.
* Multi-class (C logits sharing K, labels 0..C-1): :func:`multiclass_ep_log_evidence` (EP, dense or
  structured), :func:`multiclass_ep_predict`, :func:`multiclass_certified_log_evidence`,
  :func:`multiclass_genz_log_orthant`, on the (C-1)m orthant of :func:`difference_covariance`.
"""

from pacbayes.evidence._validate import validate_inputs
from pacbayes.evidence.certified import CertifiedEvidence, certified_log_evidence, multiclass_certified_log_evidence
from pacbayes.evidence.ep import EPResult, ep_log_evidence, ep_predict
from pacbayes.evidence.exact import equicorrelated_log_orthant, genz_log_orthant
from pacbayes.evidence.multiclass import difference_covariance, multiclass_genz_log_orthant
from pacbayes.evidence.multiclass_ep import MulticlassEPResult, multiclass_ep_log_evidence, multiclass_ep_predict

__all__ = [
    "CertifiedEvidence",
    "EPResult",
    "MulticlassEPResult",
    "certified_log_evidence",
    "difference_covariance",
    "ep_log_evidence",
    "ep_predict",
    "equicorrelated_log_orthant",
    "genz_log_orthant",
    "multiclass_certified_log_evidence",
    "multiclass_ep_log_evidence",
    "multiclass_ep_predict",
    "multiclass_genz_log_orthant",
    "validate_inputs",
]
