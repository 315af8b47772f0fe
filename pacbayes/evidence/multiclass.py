"""Multi-class ln P(S) as a Gaussian orthant probability in (C-1)m dimensions; dense references.

A network with C output logits has, at infinite width, C independent NNGP logits that share the
one-logit kernel: f ~ N(0, I_C (x) K'), K' = K + jitter I (every logit carries the prior jitter).
Q* is the prior restricted to the functions whose argmax labels S correctly, so

    P(S) = Pr[ f_{y_i}(x_i) > f_c(x_i) for every i and every c != y_i ].

With g_{ic} = f_{y_i}(x_i) - f_c(x_i), g is Gaussian with
Cov(g_{ic}, g_{jc'}) = K'_ij ([y_i = y_j] - [y_i = c'] - [c = y_j] + [c = c']) and P(S) = Pr[g > 0].
For C = 2 this is the orthant of 2K' under the signs y = 1 -> +1, y = 0 -> -1: the binary P(S)
(Valle-Pérez, Camargo & Louis, ICLR 2019), exactly. This module holds the input checks, the dense
difference covariance and the Genz reference on it; the certified sandwich on the same orthant is
:func:`pacbayes.evidence.certified.multiclass_certified_log_evidence`, certified by the binary
arguments because they apply unchanged to the orthant of :func:`difference_covariance`.
"""

import numpy as np
import torch

from pacbayes.errors import InputError
from pacbayes.evidence._validate import validate_inputs
from pacbayes.evidence.exact import genz_log_orthant


def validate_classes(classes) -> int:
    """The number of classes C as an int (an integer >= 2)."""
    if isinstance(classes, bool) or not isinstance(classes, (int, np.integer)) or classes < 2:
        raise InputError(f"classes must be an integer >= 2 (the number of logits), got {classes!r}")
    return int(classes)


def validate_class_labels(labels, classes: int) -> np.ndarray:
    """Labels as an int64 numpy vector with every entry in 0..classes-1."""
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    try:
        array = np.asarray(labels, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise InputError(f"labels must be a numeric vector of class indices 0..{classes - 1}") from err
    if array.size == 0:
        raise InputError("labels are empty; pass one class index per training point")
    if not np.isfinite(array).all() or not (array == np.round(array)).all():
        raise InputError(f"labels must be integer class indices 0..{classes - 1}; found non-integer values")
    if array.min() < 0 or array.max() > classes - 1:
        raise InputError(
            f"labels must lie in 0..{classes - 1} for classes={classes}; found {int(array.min())}..{int(array.max())}"
            " (relabel to 0..C-1 or raise classes)"
        )
    return array.astype(np.int64)


def validate_multiclass(K, labels, classes, jitter=0.0, device=None):
    """Check the inputs; return (prior K + jitter I as float64 torch, labels int64 numpy, C, jitter).

    The kernel checks (square, finite, symmetric, K + jitter I positive definite) are those of the
    binary estimators (:func:`pacbayes.evidence.validate_inputs`).
    """
    classes = validate_classes(classes)
    labels = validate_class_labels(labels, classes)
    prior, _, jitter = validate_inputs(K, np.ones(labels.size), jitter, device)
    return prior, labels, classes, jitter


def pair_index(labels: np.ndarray, classes: int) -> np.ndarray:
    """The (m, C-1) array of the classes c != y_i, in increasing order, for each point i.

    Row i lists the constraints g_{ic} of point i; flattening it row by row gives the ordering of
    the (C-1)m variables: pair (i, c) is at position i (C-1) + (c if c < y_i else c - 1).
    """
    grid = np.tile(np.arange(classes - 1), (labels.size, 1))
    return grid + (grid >= labels[:, None])


def difference_covariance(K, labels, classes, jitter=0.0, *, device=None) -> torch.Tensor:
    """Cov(g) for g_{ic} = f_{y_i}(x_i) - f_c(x_i), f ~ N(0, I_C (x) (K + jitter I)): dense float64.

    Shape ((C-1)m, (C-1)m), ordered point-major: (i, c) at position i (C-1) + (c if c < y_i else
    c - 1), see :func:`pair_index`. Entry K'_ij ([y_i = y_j] - [y_i = c'] - [c = y_j] + [c = c']).
    """
    prior, labels, classes, _ = validate_multiclass(K, labels, classes, jitter, device)
    other = torch.as_tensor(pair_index(labels, classes).reshape(-1), device=prior.device)
    own = torch.as_tensor(np.repeat(labels, classes - 1), device=prior.device)
    point = torch.as_tensor(np.repeat(np.arange(labels.size), classes - 1), device=prior.device)

    def same(a, b):
        return (a[:, None] == b[None, :]).to(prior.dtype)

    sign = same(own, own) - same(own, other) - same(other, own) + same(other, other)
    return prior[point][:, point] * sign


def multiclass_genz_log_orthant(K, labels, classes, *, jitter=0.0, rel_tol=1e-3, maxpts=None, seed=0, repeats=3):
    """Genz reference (SciPy QMC) for the multi-class ln P(S): (log_value, log_error in nats).

    :func:`pacbayes.evidence.genz_log_orthant` on :func:`difference_covariance` with every sign +1;
    same relative-tolerance handling. Usable while (C-1)m is at most a few hundred.
    """
    sigma = difference_covariance(K, labels, classes, jitter)
    return genz_log_orthant(sigma, np.ones(sigma.shape[0]), rel_tol=rel_tol, maxpts=maxpts, seed=seed, repeats=repeats)
