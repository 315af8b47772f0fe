"""Dual activations: the Gaussian expectations E[phi(u) phi(v)] that one NNGP layer applies.

For (u, v) ~ N(0, [[k11, k12], [k12, k22]]) these give E[phi(u) phi(v)] in closed form
(docs/kernels.md#activations):

- relu: the degree-1 arc-cosine kernel (Cho & Saul 2009, eq. 6; Lee et al. 2018, eq. 11),
  sqrt(k11 k22) (sin t + (pi - t) cos t) / (2 pi), with t the angle between u and v. We use
  sqrt(k11 k22) sin t = sqrt(k11 k22 - k12^2) and sqrt(k11 k22) cos t = k12, and take
  t = arctan2(sqrt(k11 k22 - k12^2), k12) as neural-tangents does (arccos of a clipped cosine
  loses digits for nearly parallel inputs).
- leaky_relu with slope a: phi(u) = relu(u) - a relu(-u), so with R(c) the relu expectation at
  covariance c, E = (1 + a^2) R(k12) - 2 a R(-k12) (since (u, -v) has covariance -k12); its
  diagonal is (1 + a^2) k / 2.
- erf: (2 / pi) arcsin(2 k12 / sqrt((1 + 2 k11) (1 + 2 k22))) (Williams 1997, "Computing with
  infinite networks", eq. 11).
- linear (identity): k12.

All functions work on float64 tensors that broadcast against each other, and may overwrite
their ``cov`` argument to keep the n x n recursion in place. Activations without a closed form
(GELU, tanh, SiLU, sigmoid, ...) use :mod:`pacbayes.kernels.quadrature`.
"""

import math

import torch

from pacbayes.activations import ANALYTIC_ACTIVATIONS

ACTIVATIONS = ANALYTIC_ACTIVATIONS
"""The analytic kernel builders' activations, :data:`pacbayes.activations.ANALYTIC_ACTIVATIONS`; the
functions here implement every closed form of :data:`pacbayes.activations.CLOSED_FORMS`."""


def _relu_product(cov: torch.Tensor, var1: torch.Tensor, var2: torch.Tensor) -> torch.Tensor:
    sine = var1 * var2  # k11 k22
    sine = sine.addcmul_(cov, cov, value=-1.0).clamp_(min=0.0).sqrt_()  # sqrt(k11 k22 - k12^2)
    angle = torch.atan2(sine, cov)
    # ((pi - t) k12 + sqrt(k11 k22 - k12^2)) / (2 pi)
    return angle.neg_().add_(math.pi).mul_(cov).add_(sine).mul_(1.0 / (2.0 * math.pi))


def expected_product(
    cov: torch.Tensor, var1: torch.Tensor, var2: torch.Tensor, activation: str, slope: float = 0.01
) -> torch.Tensor:
    """E[phi(u) phi(v)] for covariances ``cov`` and variances ``var1``, ``var2`` (broadcastable).

    ``cov`` is consumed: the result may be written into it. Returns a tensor of cov's shape.
    ``slope``: the negative slope of "leaky_relu" (ignored otherwise).
    """
    if activation == "relu":
        return _relu_product(cov, var1, var2)
    if activation == "leaky_relu":
        mirrored = _relu_product(-cov, var1, var2)
        return _relu_product(cov, var1, var2).mul_(1.0 + slope * slope).sub_(mirrored.mul_(2.0 * slope))
    if activation == "erf":
        scale1 = (1.0 + 2.0 * var1).rsqrt_()
        scale2 = (1.0 + 2.0 * var2).rsqrt_().mul_(2.0)
        return cov.mul_(scale1).mul_(scale2).clamp_(-1.0, 1.0).asin_().mul_(2.0 / math.pi)
    if activation == "linear":
        return cov
    raise ValueError(f"unknown activation {activation!r}")


def expected_square(var: torch.Tensor, activation: str, slope: float = 0.01) -> torch.Tensor:
    """E[phi(u)^2] for u ~ N(0, var): the diagonal of :func:`expected_product` (new tensor)."""
    if activation == "relu":
        return var / 2.0
    if activation == "leaky_relu":
        return var * ((1.0 + slope * slope) / 2.0)
    if activation == "erf":
        return torch.asin(2.0 * var / (1.0 + 2.0 * var)).mul_(2.0 / math.pi)
    if activation == "linear":
        return var.clone()
    raise ValueError(f"unknown activation {activation!r}")
