"""Seeded dropout after a module's activation layers, for learning a data-dependent prior mean.

PBB learns its prior mean by ERM with dropout on the held-out part of S (Pérez-Ortiz et al. 2021,
Section 4; Srivastava et al. 2014 for dropout). The model is the user's module, so dropout is added
from outside: a forward hook on every activation module (``nn.ReLU``, ``nn.Tanh``, ...) multiplies
its output by a Bernoulli(1 - p) mask scaled by 1 / (1 - p), drawn from the given generator so the
prior is reproducible. Activations called as functions inside ``forward`` get no dropout; the
number of layers that do is reported.
"""

from contextlib import contextmanager

import torch
import torch.nn as nn

ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Hardtanh)
"""Module types after which :func:`activation_dropout` drops units."""


def activation_layers(model: nn.Module) -> list:
    """The activation modules of ``model`` (in ``modules()`` order) that dropout is applied after."""
    return [module for module in model.modules() if isinstance(module, ACTIVATIONS)]


@contextmanager
def activation_dropout(model: nn.Module, p: float, generator: torch.Generator):
    """While active, every activation layer's output is dropped with probability ``p`` (inverted
    dropout: kept units are scaled by 1 / (1 - p)); ``p = 0`` adds nothing. Hooks are removed on exit."""
    if p == 0.0:
        yield
        return

    def drop(_module, _inputs, output):
        keep = torch.rand(output.shape, generator=generator, device=output.device, dtype=output.dtype).ge_(p)
        return output * keep / (1.0 - p)  # keep is 1.0 / 0.0 in output's dtype: no boolean mask to promote

    handles = [module.register_forward_hook(drop) for module in activation_layers(model)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
