"""Dual activations: the Gaussian expectations E[phi(u) phi(v)] that one NNGP layer applies.

For (u, v) ~ N(0, [[k11, k12], [k12, k22]]) these give E[phi(u) phi(v)] in closed form
(docs/kernels.md#activations):

- relu: the degree-1 arc-cosine kernel (Cho & Saul 2009, eq. 6; Lee et al. 2018, eq. 11),
  sqrt(k11 k22) (sin t + (pi - t) cos t) / (2 pi), with t the angle between u and v. We use
  sqrt(k11 k22) sin t = sqrt(k11 k22 - k12^2) and sqrt(k11 k22) cos t = k12, and take
  t = arctan2(sqrt(k11 k22 - k12^2), k12) as neural-tangents does (arccos of a clipped cosine
  loses digits for nearly parallel inputs).
- erf: (2 / pi) arcsin(2 k12 / sqrt((1 + 2 k11) (1 + 2 k22))) (Williams 1997, "Computing with
  infinite networks", eq. 11).
- linear (identity): k12.

All functions work on float64 tensors that broadcast against each other, and may overwrite
their ``cov`` argument to keep the n x n recursion in place.
"""

import math

import torch

from pacbayes.layers import ANALYTIC_ACTIVATIONS

ACTIVATIONS = ANALYTIC_ACTIVATIONS
"""The activation names implemented here, as listed in :data:`pacbayes.layers.ANALYTIC_ACTIVATIONS`."""


def expected_product(cov: torch.Tensor, var1: torch.Tensor, var2: torch.Tensor, activation: str) -> torch.Tensor:
    """E[phi(u) phi(v)] for covariances ``cov`` and variances ``var1``, ``var2`` (broadcastable).

    ``cov`` is consumed: the result may be written into it. Returns a tensor of cov's shape.
    """
    if activation == "relu":
        sine = var1 * var2  # k11 k22
        sine.addcmul_(cov, cov, value=-1.0).clamp_(min=0.0).sqrt_()  # sqrt(k11 k22 - k12^2)
        angle = torch.atan2(sine, cov)
        # ((pi - t) k12 + sqrt(k11 k22 - k12^2)) / (2 pi)
        angle.neg_().add_(math.pi).mul_(cov).add_(sine).mul_(1.0 / (2.0 * math.pi))
        return angle
    if activation == "erf":
        scale1 = (1.0 + 2.0 * var1).rsqrt_()
        scale2 = (1.0 + 2.0 * var2).rsqrt_().mul_(2.0)
        return cov.mul_(scale1).mul_(scale2).clamp_(-1.0, 1.0).asin_().mul_(2.0 / math.pi)
    if activation == "linear":
        return cov
    raise ValueError(f"unknown activation {activation!r}")


def expected_square(var: torch.Tensor, activation: str) -> torch.Tensor:
    """E[phi(u)^2] for u ~ N(0, var): the diagonal of :func:`expected_product` (new tensor)."""
    if activation == "relu":
        return var / 2.0
    if activation == "erf":
        return torch.asin(2.0 * var / (1.0 + 2.0 * var)).mul_(2.0 / math.pi)
    if activation == "linear":
        return var.clone()
    raise ValueError(f"unknown activation {activation!r}")
