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


def _max_asymmetry(kernel: torch.Tensor, rows: int = 1024) -> float:
    """max |K - K^T|, a block of rows at a time (no m x m temporary)."""
    return max(
        float((kernel[i : i + rows] - kernel[:, i : i + rows].T).abs().max()) for i in range(0, kernel.shape[0], rows)
    )


def validate_inputs(K, y, jitter=0.0, device=None):
    """Check K and y and return (prior covariance K + jitter I, labels in {-1, +1}, jitter).

    K: m x m, finite, symmetric (to relative 1e-8; then symmetrised), and K + jitter I positive
    definite (its Cholesky factorisation succeeds). Otherwise InputError names the problem; for a
    matrix that is not positive definite it names the smallest eigenvalue and suggests a jitter.
    Both tensors are float64 on ``device`` (cpu by default); the prior is a new tensor that the
    caller may overwrite. Peak memory: K, the prior and the check's Cholesky factor.
    """
    device = resolve_device(device)
    jitter = validate_jitter(jitter)
    kernel = _as_float64("kernel K", K, device)
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1]:
        raise InputError(f"kernel K must be a square m x m matrix, got shape {tuple(kernel.shape)}")
    m = kernel.shape[0]
    if m < 1:
        raise InputError("kernel K is empty; pass at least one training point")
    if not bool(torch.isfinite(kernel).all()):
        raise InputError("kernel K contains NaN or infinity; recompute it in float64")
    labels = validate_labels(y, m, device)
    scale = float(kernel.abs().max())
    asymmetry = _max_asymmetry(kernel)
    if asymmetry > SYMMETRY_RTOL * max(scale, 1e-300):
        raise InputError(
            f"kernel K is not symmetric (max |K - K^T| = {asymmetry:.3g}); pass a symmetric covariance matrix"
        )
    prior = kernel.clone().add_(kernel.T).mul_(0.5)  # (K + K^T) / 2 without a second temporary
    prior.diagonal().add_(jitter)
    _, info = torch.linalg.cholesky_ex(prior)
    if int(info) != 0:
        smallest = float(torch.linalg.eigvalsh(prior)[0])
        raise InputError(
            f"kernel K + {jitter:g} I is not positive definite (smallest eigenvalue "
            f"{smallest:.3g}); the jitter is part of the prior, so choose a larger value "
            "without looking at this kernel (e.g. the next power of ten), or declare a grid "
            "beforehand and pay ln|G| for it (certify --jitter-grid 1e-6,1e-4,1e-2)"
        )
    return prior, labels, jitter


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
