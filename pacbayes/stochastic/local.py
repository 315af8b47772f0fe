"""Drawing a fresh posterior network for every input: the local reparameterisation (Kingma, Salimans
& Welling 2015), exact for a stack of Linear layers and elementwise activations.

With weights drawn independently per input, a Linear output is, given its input a, exactly Gaussian
with mean W a + b and variance s_W a^2 + s_b (Q = N(w, diag(s))). Sampling those outputs instead of
the weights costs two matrix products per layer, gives every input its own network (independent
errors for the Monte Carlo bound, :mod:`pacbayes.stochastic.certificate`) and lower-variance
gradients when the posterior is trained (:mod:`pacbayes.stochastic.train`).
"""

import torch
from torch import nn

from pacbayes.defaults import MC_SAMPLINGS  # noqa: F401  (its home; imported from here too)
from pacbayes.errors import InputError

ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.SiLU, nn.ELU, nn.Identity, nn.Dropout)
"""Parameter-free modules that act on each coordinate alone (Dropout as in eval mode: the identity)."""


def _point_children(model: nn.Module) -> list | None:
    """(name, module) of ``model`` when per-point draws are exact for it (an nn.Sequential of nn.Linear layers and
    :data:`ELEMENTWISE` activations, possibly after a leading nn.Flatten), else None."""
    children = list(model.named_children()) if isinstance(model, nn.Sequential) else []
    start = 1 if children and isinstance(children[0][1], nn.Flatten) else 0
    supported = all(isinstance(m, (nn.Linear, *ELEMENTWISE)) for _, m in children[start:])
    return children if supported and any(isinstance(m, nn.Linear) for _, m in children) else None


def resolve_mc_sampling(choice: str, model: nn.Module) -> str:
    """The Monte Carlo sampling a run uses: ``choice``, with "auto" resolved to "point" where the model allows
    per-point draws (they cost no more and leave far less sampling slack) and to "network" elsewhere."""
    if choice == "auto":
        return "point" if _point_children(model) is not None else "network"
    return choice


def point_layers(model: nn.Module) -> list:
    """(name, module) of ``model`` for per-point sampling (see :func:`_point_children`). InputError otherwise."""
    children = _point_children(model)
    if children is None:
        raise InputError(
            "drawing per point (mc_sampling='point', per_point_training) needs an nn.Sequential of Linear layers "
            f"and elementwise activations (got {type(model).__name__}); use the per-network defaults for other models"
        )
    return children


def linear_moments(name: str, module: nn.Linear, mean: dict, var: dict, a: torch.Tensor) -> tuple:
    """Mean W a + b and variance s_W a^2 + s_b of a Linear output at an independent weight draw."""
    centre, spread = a @ mean[f"{name}.weight"].T, (a * a) @ var[f"{name}.weight"].T
    if module.bias is not None:
        centre, spread = centre + mean[f"{name}.bias"], spread + var[f"{name}.bias"]
    return centre, spread


def gaussian_draw(moments: tuple, generator) -> torch.Tensor:
    centre, spread = moments
    noise = torch.randn(centre.shape, generator=generator, device=centre.device, dtype=centre.dtype)
    return centre + torch.sqrt(spread) * noise


def point_logits(layers: list, mean: dict, var: dict, a: torch.Tensor, generator) -> torch.Tensor:
    """Logits of inputs ``a`` with an independent posterior draw per input (differentiable in mean and
    var), shape (n,) for one logit or (n, K); ``layers`` from :func:`point_layers` (or a tail of them)."""
    for name, module in layers:
        a = (
            gaussian_draw(linear_moments(name, module, mean, var, a), generator)
            if isinstance(module, nn.Linear)
            else module(a)
        )
    return a[:, 0] if a.dim() == 2 and a.shape[1] == 1 else a
