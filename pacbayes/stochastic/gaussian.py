"""Diagonal Gaussian posterior Q = N(w, diag(s)) over the parameters of a module, and its KL to an
isotropic Gaussian prior P = N(w0, lambda I).

The standard closed form of the KL divergence between two Gaussians, specialised to a diagonal Q and
an isotropic P (the KL term of Dziugaite & Roy 2017, Section 4):

    KL(Q||P) = 1/2 sum_i [ s_i / lambda + (w_i - w0_i)^2 / lambda - 1 - ln s_i + ln lambda ].

All parameters live in one flat vector (one random draw and one fused KL per step); a
:class:`Layout` turns a flat vector back into named tensors for torch.func.functional_call.
"""

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Layout:
    """Names and shapes of a module's parameters, in ``named_parameters()`` order."""

    names: tuple
    shapes: tuple

    @classmethod
    def of(cls, params: dict) -> "Layout":
        return cls(tuple(params), tuple(tuple(t.shape) for t in params.values()))

    def flatten(self, params: dict) -> torch.Tensor:
        return torch.cat([params[name].reshape(-1) for name in self.names])

    def unflatten(self, flat: torch.Tensor) -> dict:
        sizes = [int(torch.Size(shape).numel()) for shape in self.shapes]
        return {
            name: part.view(shape)
            for name, shape, part in zip(self.names, self.shapes, torch.split(flat, sizes), strict=False)
        }


def gaussian_kl(
    mean: torch.Tensor,
    log_var: torch.Tensor,
    prior_mean: torch.Tensor,
    log_prior_var: torch.Tensor,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """KL(N(mean, diag(exp(log_var))) || N(prior_mean, exp(log_prior_var) I)) in nats.

    Flat vectors of equal length and a scalar ``log_prior_var``; differentiable in all but
    ``prior_mean``. Computed in ``dtype`` (float64 for certificates; training may use float32).
    """
    log_lam = log_prior_var.to(dtype)
    lv = log_var.to(dtype)
    diff = mean.to(dtype) - prior_mean.to(dtype)
    return 0.5 * torch.sum(torch.exp(lv - log_lam) + diff * diff * torch.exp(-log_lam) - 1.0 - lv + log_lam)


@dataclass
class DiagonalGaussian:
    """The posterior's state: flat mean and log-variance vectors and the layout naming them."""

    mean: torch.Tensor
    log_var: torch.Tensor
    layout: Layout

    def sample(self, generator: torch.Generator) -> dict:
        """One draw w + sqrt(s) * eps, eps ~ N(0, I) from ``generator``, as named tensors (reparameterised)."""
        eps = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.layout.unflatten(self.mean + torch.exp(0.5 * self.log_var) * eps)

    @torch.no_grad()
    def draws(self, generator: torch.Generator):
        """Endless draws, each the one :meth:`sample` would give from the same generator state (the same
        numbers), without gradients: the standard deviations are computed once and each draw in place."""
        std = torch.exp(0.5 * self.log_var)
        while True:
            eps = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
            yield self.layout.unflatten(eps.mul_(std).add_(self.mean))

    def mean_params(self) -> dict:
        return self.layout.unflatten(self.mean)

    def detached(self) -> "DiagonalGaussian":
        return DiagonalGaussian(self.mean.detach().clone(), self.log_var.detach().clone(), self.layout)

    def size(self) -> int:
        return int(self.mean.numel())
