"""The interfaces of the kernel package: kernel objects (:class:`NNGPKernel`) and the layer rules a compiled
kernel is made of (:class:`Rule`, acting on one :class:`Covariance` type)."""

import math
from dataclasses import dataclass, replace
from typing import ClassVar, Protocol, runtime_checkable

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


def diagonal_positions(cov: torch.Tensor, d: int) -> torch.Tensor:
    """The p = p' entries of a full-layout covariance: (..., S, S) -> (..., S)."""
    if d == 0:
        return cov
    size = cov.shape[-d:]
    positions = math.prod(size)
    flat = cov.reshape(*cov.shape[: -2 * d], positions, positions)
    return flat.diagonal(dim1=-2, dim2=-1).reshape(*cov.shape[: -2 * d], *size)


@dataclass
class Covariance:
    """The covariance of one node's output over a batch of input pairs, in float64.

    ``tensor``: leading batch axes, (a, b) for a tile of K(x1, x2) or (n,) for the pairs (x_i, x_i)
    (``pairs``), then the spatial axes: d of them in the diagonal layout (positions p = p' only), 2 d in the
    full layout (``full``: every pair of positions, p then p'). ``marginals``: for rules with
    ``uses_variances``, the per-position variances of the rows (a, *S) and columns (b, *S) of the tile,
    or twice the pairs' own (n, *S).
    """

    tensor: torch.Tensor
    d: int
    full: bool
    pairs: bool
    marginals: tuple | None = None

    def with_tensor(self, tensor: torch.Tensor, d: int | None = None, full: bool | None = None) -> "Covariance":
        """A covariance of the same batch with ``tensor`` (and a new number of spatial axes or layout)."""
        d = self.d if d is None else d
        return replace(
            self, tensor=tensor, d=d, full=bool(self.full if full is None else full) and d > 0, marginals=None
        )

    def clone(self) -> "Covariance":
        return replace(self, tensor=self.tensor.clone())

    def diagonal(self) -> "Covariance":
        """The same covariance in the diagonal layout."""
        if not self.full:
            return self
        return replace(self, tensor=diagonal_positions(self.tensor, self.d), full=False)

    def own_variances(self) -> torch.Tensor:
        """Pairs only: the per-position variances (n, *S) of each input (a new tensor in the full layout)."""
        return diagonal_positions(self.tensor, self.d).clone() if self.full else self.tensor

    def broadcast_marginals(self) -> tuple:
        """The row and column variances shaped to broadcast against ``tensor`` at positions p and p'."""
        v1, v2 = self.marginals
        ones = (1,) * self.d
        if self.pairs:
            if not self.full:
                return v1, v2
            return v1.reshape(*v1.shape, *ones), v2.reshape(v2.shape[0], *ones, *v2.shape[1:])
        if self.full:
            return v1.reshape(v1.shape[0], 1, *v1.shape[1:], *ones), v2.reshape(1, v2.shape[0], *ones, *v2.shape[1:])
        return v1[:, None], v2[None]


@runtime_checkable
class Rule(Protocol):
    """One layer of a compiled NNGP kernel (as in neural-tangents' ``stax``, Novak et al. 2020).

    ``forward(*inputs, ...)``: what the finite layer computes (weighted rules also take the weight and bias),
    used to check a compiled graph against the model. ``kernel(*inputs)``: the infinite-width transform
    of the input covariance(s); it may consume them. It returns the input's layout, or the full layout
    when ``needs_full_spatial``; the evaluator drops to the diagonal layout where no consumer needs more.
    ``needs_full_spatial``: the rule needs every pair of positions of its input (pooling); otherwise its
    input has the layout of its output. ``uses_variances``: the rule reads ``Covariance.marginals``.
    ``describe()``: one short line, e.g. "relu". Weighted rules that can read the raw input also have
    ``features(x, full)`` and ``from_features(f1, f2, full)`` (the first layer, from the data).
    """

    needs_full_spatial: ClassVar[bool]
    uses_variances: ClassVar[bool]

    def forward(self, *inputs, **parameters) -> torch.Tensor: ...

    def kernel(self, *inputs: Covariance) -> Covariance: ...

    def describe(self) -> str: ...
