"""Analytic NNGP kernel of a fully connected network (Neal 1996; Lee et al. 2018, eq. 4).

Network: z0 = W0 x + b0, then ``depth`` times z(l+1) = W(l+1) phi(z(l)) + b(l+1); the output is
the single logit z(depth). Weights are N(0, sigma_w^2 / fan_in), biases N(0, sigma_b(l)^2).
As every hidden width grows, the logit is a Gaussian process with covariance

    K0(x, x') = sigma_b(0)^2 + sigma_w^2 x.x' / d,
    K(l+1)(x, x') = sigma_b(l+1)^2 + sigma_w^2 E[phi(u) phi(u')],  (u, u') ~ N(0, K(l))

(docs/kernels.md#fully-connected; the expectations are in :mod:`pacbayes.kernels.activations`). With one hidden
layer the finite-width covariance already equals this kernel exactly when the first layer is
Gaussian; deeper finite nets differ by O(1/width).
"""

from typing import Sequence

import torch

from pacbayes.device import resolve_device
from pacbayes.errors import InputError
from pacbayes.kernels._blocks import (
    as_inputs,
    check_activation,
    check_block_size,
    check_depth,
    check_sigma_b,
    check_sigma_w,
    describe_sigma_b,
    fill_kernel,
)
from pacbayes.kernels.activations import ACTIVATIONS, expected_product, expected_square


class FullyConnectedNNGP:
    """NNGP kernel of a depth-``depth`` fully connected net with relu, erf or linear activations.

    ``sigma_b`` is one bias standard deviation for every layer, or a sequence of depth + 1 of
    them (one per linear layer, first layer first), e.g. PyTorch's default 1/sqrt(3 fan_in).
    Inputs of shape (n, d); higher-rank inputs (n, c, h, w) are flattened.
    """

    kind = "nngp-fc"
    default_block_size = 2048

    def __init__(
        self, depth: int, activation: str = "relu", sigma_w: float = 1.0, sigma_b: float | Sequence[float] = 0.0
    ):
        self.depth = check_depth(depth)
        self.activation = check_activation(activation, ACTIVATIONS)
        self.sigma_w = check_sigma_w(sigma_w)
        self.sigma_b = check_sigma_b(sigma_b, self.depth + 1)

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "depth": self.depth,
            "activation": self.activation,
            "sigma_w": self.sigma_w,
            "sigma_b": describe_sigma_b(self.sigma_b),
        }

    def _flat_inputs(self, x, device, name):
        x = as_inputs(x, device, name)
        return x.reshape(x.shape[0], -1)

    def _variances(self, x: torch.Tensor) -> list:
        """Pre-activation variances K(l)(x, x) for l = 0..depth, each of shape (n,)."""
        weight = self.sigma_w**2
        var = (x * x).sum(dim=1).mul_(weight / x.shape[1]).add_(self.sigma_b[0] ** 2)
        variances = [var]
        for bias in self.sigma_b[1:]:
            var = expected_square(var, self.activation).mul_(weight).add_(bias**2)
            variances.append(var)
        return variances

    @property
    def diagnostics(self) -> dict:
        """Nothing to report: the analytic kernel is exact (see :class:`~pacbayes.kernels.protocol.NNGPKernel`)."""
        return {}

    def diagonal(self, x, *, device=None, block_size=None, quiet=True) -> torch.Tensor:
        """K(x_i, x_i) for every row of ``x``: float64, shape (n,) (one pass; no tiles, no progress)."""
        return self._variances(self._flat_inputs(x, resolve_device(device), "x"))[-1]

    def matrix(self, x1, x2=None, *, device=None, block_size=None, quiet=True) -> torch.Tensor:
        """The (n1, n2) float64 kernel matrix on ``device``; ``x2=None`` gives K(x1, x1).

        Cost: one Gram matrix x1 @ x2.T plus ``depth`` elementwise passes, in tiles of
        ``block_size`` rows and columns (memory: the result plus a few tiles).
        """
        device = resolve_device(device)
        block_size = check_block_size(block_size, self.default_block_size)
        x1 = self._flat_inputs(x1, device, "x1")
        x2 = x1 if x2 is None else self._flat_inputs(x2, device, "x2")
        if x2.shape[1] != x1.shape[1]:
            raise InputError(
                f"x1 has {x1.shape[1]} features per input but x2 has {x2.shape[1]}; "
                f"both must come from the same input space"
            )
        symmetric = x2 is x1
        var1 = self._variances(x1)
        var2 = var1 if symmetric else self._variances(x2)
        weight, dim = self.sigma_w**2, x1.shape[1]

        def tile(rows, cols):
            cov = torch.mm(x1[rows], x2[cols].T).mul_(weight / dim).add_(self.sigma_b[0] ** 2)
            for layer, bias in enumerate(self.sigma_b[1:]):
                cov = expected_product(cov, var1[layer][rows, None], var2[layer][None, cols], self.activation)
                cov.mul_(weight).add_(bias**2)
            return cov

        return fill_kernel(
            x1.shape[0],
            x2.shape[0],
            tile,
            symmetric=symmetric,
            block_size=block_size,
            device=device,
            quiet=quiet,
            desc=f"fc-{self.activation} NNGP",
            diagonal=var1[-1] if symmetric else None,
        )
