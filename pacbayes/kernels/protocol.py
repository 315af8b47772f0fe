"""The interface every NNGP kernel object implements (analytic or Monte Carlo)."""

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class NNGPKernel(Protocol):
    """An NNGP prior covariance k(x, x') over a network's output logit.

    ``matrix(x1, x2=None)``: float64 (n1, n2) on ``device``; ``x2=None`` is the symmetric K(x1, x1).
    ``diagonal(x)``: float64 (n,) of k(x_i, x_i). ``describe()``: a JSON-serialisable dict whose
    ``kind`` names the kernel (``"nngp-fc"``, ``"nngp-cnn"``, ``"nngp-graph"``: analytic,
    compiled; ``"monte-carlo"``). ``diagnostics``:
    what the last :meth:`matrix` call measured (Monte Carlo: samples, rank, standard errors,
    smallest eigenvalue; analytic kernels: empty).
    """

    diagnostics: dict

    def matrix(self, x1, x2=None, *, device=None, block_size=None, quiet: bool = True) -> torch.Tensor: ...

    def diagonal(self, x, *, device=None, block_size=None, quiet: bool = True) -> torch.Tensor: ...

    def describe(self) -> dict: ...
