"""Which orthant P(S) is, behind one interface: binary signs or C-class argmax constraints.

A network with one logit f labels x as class 1 iff f(x) > 0; its P(S) is the binary orthant
probability Pr[y_i f_i > 0] under f ~ N(0, K + eps I) (:mod:`pacbayes.evidence.ep`). A network with
C logits, at infinite width C independent GPs with the one-logit kernel K, labels x by the argmax;
its P(S) is the (C-1)m-dimensional orthant of :mod:`pacbayes.evidence.multiclass`. Two logits
reduce exactly to the binary case: f_1 - f_0 ~ N(0, 2(K + eps I)), whose orthant probability
(and EP approximation, and predictive class probabilities) are those of K + eps I, so C = 2 always
takes the binary path. Class indices are 0..C-1 in both cases (binary: class 0 <-> sign -1).

:func:`label_model` returns the object for C classes; the marginal family and ``pacbayes evidence``
call its ``ep``, ``certified`` and ``class_probabilities`` without knowing which case they are in.
"""

from dataclasses import dataclass

import numpy as np
import torch
from scipy import special

from pacbayes import checks
from pacbayes.errors import InputError
from pacbayes.evidence._validate import validate_labels
from pacbayes.evidence.certified import certified_log_evidence, multiclass_certified_log_evidence
from pacbayes.evidence.ep import ep_log_evidence, ep_predict
from pacbayes.evidence.multiclass import validate_class_labels
from pacbayes.evidence.multiclass_ep import certified_method, multiclass_ep_log_evidence, multiclass_ep_predict
from pacbayes.evidence.multiclass_sampler import structured_certified_log_evidence


def _signs(labels) -> torch.Tensor:
    """Class indices 0/1 (or signs -1/+1, left alone) as float64 signs; checked by the estimators."""
    labels = torch.as_tensor(labels, dtype=torch.float64)
    return torch.where(labels == 0.0, -1.0, labels)


@dataclass(frozen=True)
class BinaryLabels:
    """One logit (or two): P(S) = Pr[y_i f_i > 0], labels 0/1 (or -1/+1)."""

    classes: int = 2
    prior = "N(0, K + {jitter:g} I)"

    def check_labels(self, labels, m: int) -> None:
        """InputError unless ``labels`` are m values in {-1, +1} or in {0, 1}."""
        validate_labels(labels, m)

    def ep(self, K, labels, **options):
        """:func:`pacbayes.evidence.ep_log_evidence` (options: jitter, tol, device, quiet, ...)."""
        return ep_log_evidence(K, _signs(labels), **options)

    def ep_options_before_certified(self) -> dict:
        """EP's options when the certified sandwich follows on the same prior: the sandwich's factorisation
        proves K + jitter I positive definite, so EP skips its own Cholesky (an m x m one saved)."""
        return {"check_definite": False}

    def certified(self, K, labels, *, method: str = "auto", **options):
        """:func:`pacbayes.evidence.certified_log_evidence` (options: delta_prime, seed, samples, proposal, ep, ...);
        ``method`` names a multi-class sampler and is checked only (the binary orthant has one)."""
        certified_method(np.asarray(labels).size, self.classes, method)
        return certified_log_evidence(K, _signs(labels), **options)

    def class_probabilities(self, ep, K_cross, k_test_diag, *, seed: int = 0) -> np.ndarray:
        """(n, 2): Pr[f(x) < 0] and Pr[f(x) > 0] under the EP predictive N(mean, variance) (exact)."""
        mean, variance = ep_predict(ep, K_cross, k_test_diag)
        positive = special.ndtr(mean / np.sqrt(np.maximum(variance, 1e-300)))
        return np.stack([1.0 - positive, positive], axis=1)


@dataclass(frozen=True)
class MulticlassLabels:
    """C >= 3 logits: P(S) = Pr[f_{y_i}(x_i) > f_c(x_i) for all i, c != y_i], labels 0..C-1."""

    classes: int
    prior = "N(0, I_C (x) (K + {jitter:g} I)), one GP per logit"

    def check_labels(self, labels, m: int) -> None:
        """InputError unless ``labels`` are m class indices in 0..C-1."""
        if validate_class_labels(labels, self.classes).size != m:
            raise InputError(f"there must be one label per training point ({m}); pass m labels")

    def ep(self, K, labels, **options):
        """:func:`pacbayes.evidence.multiclass_ep_log_evidence` (options as for the binary case)."""
        return multiclass_ep_log_evidence(K, labels, self.classes, **options)

    def ep_options_before_certified(self) -> dict:
        """None: the multi-class EP checks K itself (an m x m Cholesky, small beside the (C-1)m orthant)."""
        return {}

    def certified(self, K, labels, *, method: str = "auto", **options):
        """:func:`pacbayes.evidence.multiclass_certified_log_evidence` on the dense (C-1)m orthant (options as for
        the binary case), or, when ``method`` is "structured" or "auto" picks it beyond
        :data:`pacbayes.evidence.multiclass_ep.CERTIFIED_DENSE_LIMIT` dimensions, the point-by-point sampler
        :func:`pacbayes.evidence.multiclass_sampler.structured_certified_log_evidence` (its own proposal, no psi*:
        ``proposal`` and ``upper`` do not apply to it)."""
        if certified_method(np.asarray(labels).size, self.classes, method) == "structured":
            options = {key: value for key, value in options.items() if key not in ("proposal", "upper")}
            return structured_certified_log_evidence(K, labels, self.classes, **options)
        return multiclass_certified_log_evidence(K, labels, self.classes, **options)

    def class_probabilities(self, ep, K_cross, k_test_diag, *, seed: int = 0) -> np.ndarray:
        """(n, C): the probability that each class is the argmax under the EP predictive (seeded)."""
        return np.asarray(multiclass_ep_predict(ep, K_cross, k_test_diag, seed=seed), dtype=np.float64)


def label_model(classes: int):
    """The P(S) of ``classes`` classes (2: the binary orthant, >= 3: the multi-class one)."""
    classes = checks.integer_at_least(classes, "classes", 2)
    return BinaryLabels() if classes == 2 else MulticlassLabels(classes)


__all__ = ["BinaryLabels", "MulticlassLabels", "label_model"]
