"""Dual activations by Gauss-Hermite quadrature, for elementwise functions without a closed form.

For (u, v) ~ N(0, [[k11, k12], [k12, k22]]) write u = s1 z1 and v = s2 (c z1 + r z2) with
s = sqrt(k), c = k12 / (s1 s2), r = sqrt(1 - c^2) and z1, z2 iid N(0, 1). Then

    E[phi(u) phi(v)] ~= sum_i sum_j w_i w_j phi(s1 z_i) phi(s2 (c z_i + r z_j)),
    E[phi(u)^2]      ~= sum_i w_i phi(s1 z_i)^2,

with the probabilists' Gauss-Hermite rule (nodes z_i = sqrt(2) x_i and weights w_i / sqrt(pi)
from the physicists' rule x_i, w_i of numpy.polynomial.hermite.hermgauss; Abramowitz & Stegun
25.4.46). neural-tangents' ``stax.ElementwiseNumerical`` evaluates the same double integral. The
rule with n nodes is exact for polynomials of degree 2n - 1 in each variable; for smooth phi (GELU,
tanh, SiLU, sigmoid, erf) the error falls geometrically with n, for a kink (ReLU) only like a power
of n. Cost: n^2 evaluations of phi per kernel entry.
"""

import math
from collections.abc import Callable

import numpy as np
import torch

DEFAULT_NODES = 32


def hermite_rule(nodes: int) -> tuple:
    """(z, w): nodes and weights of the n-point rule for E[f(z)], z ~ N(0, 1) (sum w = 1)."""
    x, w = np.polynomial.hermite.hermgauss(int(nodes))
    return (x * math.sqrt(2.0)).tolist(), (w / math.sqrt(math.pi)).tolist()


def quadrature_product(
    phi: Callable[[torch.Tensor], torch.Tensor],
    cov: torch.Tensor,
    var1: torch.Tensor,
    var2: torch.Tensor,
    nodes: int = DEFAULT_NODES,
) -> torch.Tensor:
    """E[phi(u) phi(v)] by the n x n rule of the module docstring (new tensor of cov's shape)."""
    z, w = hermite_rule(nodes)
    scale1, scale2 = var1.sqrt(), var2.sqrt()
    norm = scale1 * scale2
    cosine = torch.where(norm > 0, cov / norm.clamp(min=torch.finfo(cov.dtype).tiny), 0.0).clamp_(-1.0, 1.0)
    sine = (1.0 - cosine * cosine).clamp_(min=0.0).sqrt_()
    total = torch.zeros_like(cov)
    for zi, wi in zip(z, w, strict=False):
        inner = torch.zeros_like(cov)
        shift = cosine * zi
        for zj, wj in zip(z, w, strict=False):
            inner.add_(phi(torch.add(shift, sine, alpha=zj).mul_(scale2)), alpha=wj)
        total.addcmul_(inner, phi(scale1 * zi).expand_as(total), value=wi)
    return total


def quadrature_square(phi: Callable[[torch.Tensor], torch.Tensor], var: torch.Tensor, nodes: int = DEFAULT_NODES):
    """E[phi(u)^2] for u ~ N(0, var) by the n-point rule (new tensor of var's shape)."""
    z, w = hermite_rule(nodes)
    scale = var.sqrt()
    total = torch.zeros_like(var)
    for zi, wi in zip(z, w, strict=False):
        total.add_(phi(scale * zi).square_(), alpha=wi)
    return total
