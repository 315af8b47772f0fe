"""Re-initialising a module's parameters with PyTorch's default initialisation, under a seed.

The rule, one for every caller (the seeded prior mean of a stochastic network, theta0 of a
subspace model, the draws of a Monte Carlo NNGP kernel):

- every submodule that has a callable ``reset_parameters()`` is reset by it, in
  ``module.modules()`` order (a parent before its children, children in registration order). For
  torch.nn's own layers this is PyTorch's default initialisation (Linear and Conv: weights
  kaiming_uniform_(a=sqrt(5)), biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)); norm layers: ones and
  zeros, running statistics cleared);
- submodules without parameters of their own (activations, Flatten, Dropout, containers) have
  nothing to re-draw;
- a submodule that holds parameters of its own but has no ``reset_parameters()`` cannot be
  re-drawn: :func:`check_resettable` refuses it with an InputError naming it.

Seeding: the draws use torch's global CPU generator, seeded with ``seed`` inside
``torch.random.fork_rng``, so the caller's random stream is left as it was. When a model was
built as ``torch.manual_seed(seed); model = Net()`` with default initialisers, constructing its
layers in ``modules()`` order (as a Sequential does), this re-creates its initial weights exactly.
"""

import contextlib
import copy

import torch

from pacbayes.errors import InputError


def check_resettable(module: torch.nn.Module, remedy: str) -> None:
    """InputError naming every submodule with parameters of its own but no ``reset_parameters()``;
    ``remedy``: what the caller can do instead (ends the message)."""
    missing = [
        f"{name} ({type(layer).__name__})" if name else f"the model itself ({type(layer).__name__})"
        for name, layer in module.named_modules()
        if any(True for _ in layer.parameters(recurse=False)) and not callable(getattr(layer, "reset_parameters", None))
    ]
    if missing:
        raise InputError(
            f"module(s) {', '.join(missing)} hold parameters but have no reset_parameters(), "
            f"so they cannot be re-drawn with PyTorch's default initialisation; {remedy}"
        )


def reset_parameters(module: torch.nn.Module) -> None:
    """Re-draw ``module``'s parameters in place by the module docstring's rule, from torch's global
    RNG as it stands (seed it, or use :func:`reinitialise`)."""
    check_resettable(module, "give it a reset_parameters() method")
    for layer in module.modules():
        if callable(getattr(layer, "reset_parameters", None)):
            layer.reset_parameters()


@contextlib.contextmanager
def seeded_rng(seed: int):
    """Run the block with torch's global CPU generator seeded with ``seed``; restored afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(int(seed))
        yield


def reinitialise(
    module: torch.nn.Module, seed: int, *, dtype=None, remedy: str = "give it a reset_parameters() method"
) -> torch.nn.Module:
    """A copy of ``module`` on the CPU (cast to ``dtype`` first if given), re-initialised by the
    module docstring's rule under ``seed``; ``module`` and the global RNG are left untouched.

    ``remedy`` ends the InputError for a submodule that cannot be re-drawn.
    """
    clone = copy.deepcopy(module).cpu()
    if dtype is not None:
        clone = clone.to(dtype)
    check_resettable(clone, remedy)
    with seeded_rng(seed), torch.no_grad():
        reset_parameters(clone)
    return clone
