"""One input check shared by every ln P(S) estimator: kernel, labels and jitter.

The prior over the latent function at the m training points is N(0, K + jitter I); the jitter is a
fixed, pre-declared absolute epsilon that belongs to the prior (reports say "prior K + eps I").
"""

import math

import numpy as np
import torch

from pacbayes.device import resolve_device
from pacbayes.errors import InputError

SYMMETRY_RTOL = 1e-8


def _as_float64(name, value, device):
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
    else:
        try:
            tensor = torch.as_tensor(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError) as err:
            raise InputError(f"{name} must be a numeric array; got {type(value).__name__}") from err
    if tensor.is_complex():
        raise InputError(f"{name} must be real, got a complex array")
    return tensor.to(device=device, dtype=torch.float64)


def validate_labels(y, m: int, device=None) -> torch.Tensor:
    """Labels as a float64 tensor of +-1 (labels in {0, 1} are mapped 0 -> -1, 1 -> +1)."""
    labels = _as_float64("labels y", y, resolve_device(device)).reshape(-1)
    if labels.numel() != m:
        raise InputError(
            f"labels y have length {labels.numel()} but the kernel is {m} x {m}; pass one label per training point"
        )
    if not bool(torch.isfinite(labels).all()):
        raise InputError("labels y contain NaN or infinity; pass labels in {-1, +1} or {0, 1}")
    values = set(torch.unique(labels).tolist())
    if values <= {-1.0, 1.0}:
        return labels
    if values <= {0.0, 1.0}:
        return 2.0 * labels - 1.0
    raise InputError(f"labels y must all be in {{-1, +1}} or all in {{0, 1}}; found values {sorted(values)[:5]}")


def validate_jitter(jitter) -> float:
    """The fixed prior jitter epsilon >= 0 (a float)."""
    try:
        jitter = float(jitter)
    except (TypeError, ValueError) as err:
        raise InputError(f"jitter must be a number >= 0, got {jitter!r}") from err
    if not math.isfinite(jitter) or jitter < 0.0:
        raise InputError(f"jitter must be a finite number >= 0, got {jitter}")
    return jitter


def _all_finite(tensor: torch.Tensor) -> bool:
    """Whether every entry is finite: a finite sum proves it (a NaN or an infinity makes the sum NaN or
    infinite) without an m x m mask; only a sum that overflows looks at every entry."""
    return bool(torch.isfinite(tensor.sum())) or bool(torch.isfinite(tensor).all())


def _symmetrised(kernel: torch.Tensor, rows: int = 512) -> tuple:
    """((K + K^T) / 2 as a new tensor, max |K - K^T|), a pair of mirrored tiles at a time (cache-sized
    transposes, each pair read once)."""
    m = kernel.shape[0]
    prior = torch.empty_like(kernel)
    worst = 0.0
    for i in range(0, m, rows):
        for j in range(0, i + 1, rows):
            lower, upper = kernel[i : i + rows, j : j + rows], kernel[j : j + rows, i : i + rows].T
            worst = max(worst, float((lower - upper).abs().max()))
            tile = prior[i : i + rows, j : j + rows]
            torch.add(lower, upper, out=tile).mul_(0.5)
            if j != i:
                prior[j : j + rows, i : i + rows] = tile.T
    return prior, worst


def validate_inputs(K, y, jitter=0.0, device=None, *, definite: bool = True):
    """Check K and y and return (prior covariance K + jitter I, labels in {-1, +1}, jitter).

    K: m x m, finite, symmetric (to relative 1e-8; then symmetrised), and K + jitter I positive
    definite (:func:`require_positive_definite`; ``definite`` False leaves that to a caller whose own
    factorisation proves it). Otherwise InputError names the problem. Both tensors are float64 on ``device``
    (cpu by default); the prior is a new tensor that the caller may overwrite. Peak memory: K, the prior and
    the check's Cholesky factor.
    """
    device = resolve_device(device)
    jitter = validate_jitter(jitter)
    kernel = _as_float64("kernel K", K, device)
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1]:
        raise InputError(f"kernel K must be a square m x m matrix, got shape {tuple(kernel.shape)}")
    m = kernel.shape[0]
    if m < 1:
        raise InputError("kernel K is empty; pass at least one training point")
    if not _all_finite(kernel):
        raise InputError("kernel K contains NaN or infinity; recompute it in float64")
    labels = validate_labels(y, m, device)
    smallest, largest = torch.aminmax(kernel)
    scale = max(-float(smallest), float(largest))
    prior, asymmetry = _symmetrised(kernel)
    if asymmetry > SYMMETRY_RTOL * max(scale, 1e-300):
        raise InputError(
            f"kernel K is not symmetric (max |K - K^T| = {asymmetry:.3g}); pass a symmetric covariance matrix"
        )
    prior.diagonal().add_(jitter)
    if definite:
        require_positive_definite(prior, jitter)
    return prior, labels, jitter


def require_positive_definite(prior: torch.Tensor, jitter: float) -> None:
    """InputError, naming the smallest eigenvalue and the fix, unless ``prior`` = K + jitter I (or S (K + jitter I) S
    for a diagonal S of signs: the same eigenvalues) has a Cholesky factorisation."""
    _, info = torch.linalg.cholesky_ex(prior)
    if int(info) != 0:
        smallest = float(torch.linalg.eigvalsh(prior)[0])
        raise InputError(
            f"kernel K + {jitter:g} I is not positive definite (smallest eigenvalue "
            f"{smallest:.3g}); the jitter is part of the prior, so choose a larger value "
            "without looking at this kernel (e.g. the next power of ten), or declare a grid "
            "beforehand and pay ln|G| for it (certify --jitter-grid 1e-6,1e-4,1e-2)"
        )


def validate_test_kernels(K_cross, k_test_diag, m: int, device) -> tuple:
    """(K_cross (m, n), k_test_diag (n,)) as float64 tensors on ``device``: the prior covariances of the m
    training points with n test points and the test points' prior variances, checked for shape and
    finiteness (a 1-D K_cross is one test point)."""
    cross = _as_float64("K_cross", K_cross, device)
    prior_var = _as_float64("k_test_diag", k_test_diag, device).reshape(-1)
    if cross.ndim == 1:
        cross = cross[:, None]
    if cross.ndim != 2 or cross.shape[0] != m or cross.shape[1] != prior_var.numel():
        raise InputError(
            f"K_cross must be ({m}, n) and k_test_diag (n,); got {tuple(cross.shape)} and {tuple(prior_var.shape)}"
        )
    if not (bool(torch.isfinite(cross).all()) and bool(torch.isfinite(prior_var).all())):
        raise InputError("K_cross or k_test_diag contain NaN or infinity; recompute them in float64")
    return cross, prior_var
