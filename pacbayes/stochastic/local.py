"""Drawing a fresh posterior network for every input, exactly, at the cost of one forward pass.

With weights drawn independently per input (Q = N(w, diag(s))):

* a Linear output is, given its input a, exactly Gaussian with mean W a + b and variance s_W a^2 + s_b,
  so it is sampled directly (the local reparameterisation of Kingma, Salimans & Welling 2015): two
  matrix products per layer;
* a Conv2d layer shares its weights across positions, so its outputs are not independent given a and the
  local reparameterisation would be wrong; the input's own kernel W_i = w + sqrt(s) eps_i is drawn
  instead and the whole batch applied as one grouped convolution (one group per input), the same
  multiply-adds as the mean network's convolution;
* parameter-free modules that act on each input alone (activations, pooling, flattening) pass through.

Every input thus gets its own network: independent errors for the Monte Carlo bound
(:mod:`pacbayes.stochastic.certificate`) and lower-variance gradients when the posterior is trained
(:mod:`pacbayes.stochastic.train`).
"""

import torch
from torch import nn
from torch.nn import functional

from pacbayes.defaults import MC_SAMPLINGS  # noqa: F401  (its home; imported from here too)
from pacbayes.errors import InputError

ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.SiLU, nn.ELU, nn.Identity, nn.Dropout)
"""Parameter-free modules that act on each coordinate alone (Dropout as in eval mode: the identity)."""

PER_INPUT = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
"""Parameter-free modules that act on each input of a batch alone (with :class:`nn.Flatten` from dimension 1 on;
max-pooling without ``return_indices``)."""


def is_drawn(module: nn.Module) -> bool:
    """Whether ``module`` has weights that a per-point draw samples exactly: Linear, or Conv2d with zero padding."""
    return isinstance(module, nn.Linear) or (isinstance(module, nn.Conv2d) and module.padding_mode == "zeros")


def _passes_through(module: nn.Module) -> bool:
    """Whether ``module`` is parameter-free and acts on each input alone."""
    if isinstance(module, nn.Flatten):
        return module.start_dim >= 1
    if isinstance(module, PER_INPUT):
        return not getattr(module, "return_indices", False)
    return isinstance(module, ELEMENTWISE)


def _point_children(model: nn.Module) -> list | None:
    """(name, module) of ``model`` when per-point draws are exact for it (an nn.Sequential of Linear and
    zero-padded Conv2d layers, :data:`ELEMENTWISE` activations, :data:`PER_INPUT` pooling and nn.Flatten from
    dimension 1 on), else None."""
    children = list(model.named_children()) if isinstance(model, nn.Sequential) else []
    supported = all(is_drawn(m) or _passes_through(m) for _, m in children)
    return children if supported and any(is_drawn(m) for _, m in children) else None


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
            "drawing per point (mc_sampling='point', per_point_training) needs an nn.Sequential of Linear and "
            "zero-padded Conv2d layers, elementwise activations, pooling and Flatten "
            f"(got {_unsupported(model)}); use the per-network defaults for other models"
        )
    return children


def _unsupported(model: nn.Module) -> str:
    """What keeps ``model`` from per-point draws, for the error message."""
    if not isinstance(model, nn.Sequential):
        return type(model).__name__
    blocking = [type(m).__name__ for _, m in model.named_children() if not (is_drawn(m) or _passes_through(m))]
    return ", ".join(dict.fromkeys(blocking)) or "no Linear or Conv2d layer"


def linear_moments(name: str, module: nn.Linear, mean: dict, var: dict, a: torch.Tensor) -> tuple:
    """Mean W a + b and variance s_W a^2 + s_b of a Linear output at an independent weight draw."""
    centre, spread = a @ mean[f"{name}.weight"].T, (a * a) @ var[f"{name}.weight"].T
    if module.bias is not None:
        centre, spread = centre + mean[f"{name}.bias"], spread + var[f"{name}.bias"]
    return centre, spread


def gaussian_draw(moments: tuple, generator, draws: tuple = ()) -> torch.Tensor:
    """Independent draws of N(centre, spread) for ``moments`` = (centre, spread); ``draws`` stacks that many on
    new leading dimensions (one draw of centre's shape by default)."""
    centre, spread = moments
    noise = torch.randn((*draws, *centre.shape), generator=generator, device=centre.device, dtype=centre.dtype)
    return centre + torch.sqrt(spread) * noise


def conv_draw(name: str, module: nn.Conv2d, mean: dict, var: dict, a: torch.Tensor, generator) -> torch.Tensor:
    """Conv2d output of each input in ``a`` (n, C, H, W) under its own weight draw W_i ~ N(w, diag(s_w)) (and
    bias b_i, drawn after all the kernels), as one convolution with n groups of ``module.groups``."""
    n, weight = len(a), mean[f"{name}.weight"]
    kernels = gaussian_draw((weight, var[f"{name}.weight"]), generator, (n,))
    kernels = kernels.reshape(n * weight.shape[0], *weight.shape[1:])
    biases = None
    if module.bias is not None:
        biases = gaussian_draw((mean[f"{name}.bias"], var[f"{name}.bias"]), generator, (n,)).reshape(-1)
    out = functional.conv2d(
        a.reshape(1, -1, *a.shape[2:]),
        kernels,
        biases,
        module.stride,
        module.padding,
        module.dilation,
        n * module.groups,
    )
    return out.reshape(n, weight.shape[0], *out.shape[2:])


def point_logits(layers: list, mean: dict, var: dict, a: torch.Tensor, generator) -> torch.Tensor:
    """Logits of inputs ``a`` with an independent posterior draw per input (differentiable in mean and
    var), shape (n,) for one logit or (n, K); ``layers`` from :func:`point_layers` (or a tail of them)."""
    for name, module in layers:
        if isinstance(module, nn.Linear):
            a = gaussian_draw(linear_moments(name, module, mean, var, a), generator)
        elif isinstance(module, nn.Conv2d):
            a = conv_draw(name, module, mean, var, a, generator)
        else:
            a = module(a)
    return a[:, 0] if a.dim() == 2 and a.shape[1] == 1 else a
