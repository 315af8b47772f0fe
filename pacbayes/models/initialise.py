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

import copy
import math

import torch

from pacbayes.errors import InputError
from pacbayes.seeds import seeded_rng


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


def reset_by_layer_type(model) -> None:
    """Re-draw the parameters of an :class:`~pacbayes.models.programs.ExportedModel` in place with PyTorch's
    default init, reading each parameter's role from the program's graph (torch's global RNG, as it stands).

    The weight and bias of a linear or convolution call are drawn as nn.Linear / nn.Conv reset_parameters
    draws them: weight kaiming_uniform_(a=sqrt(5)) (U(-1/sqrt(fan_in), 1/sqrt(fan_in))), then bias
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = weight[0].numel(); layers in the order of their weights in
    the program's state_dict (for a program of torch.nn layers, the order reset_parameters uses, so the
    draws are the same). Normalisation weights become ones, biases zeros, running means 0 and variances 1.
    A parameter with any other role cannot be re-drawn: InputError naming it and the operation using it.
    """
    from torch.nn import init

    from pacbayes.layers import ATEN_NORMALISATIONS, ATEN_WEIGHTED

    program = model.exported
    parameters = dict(program.graph_signature.inputs_to_parameters)
    buffers = dict(program.graph_signature.inputs_to_buffers)
    names = {**parameters, **buffers}  # TorchScript conversions may hold weights as buffers
    tensors = dict(model.program.named_parameters())
    tensors.update(dict(model.program.named_buffers()))
    order = {name: i for i, name in enumerate(program.state_dict)}
    roles, drawn = [], set()
    for node in program.graph.nodes:
        if node.op != "call_function":
            continue
        args = [getattr(a, "name", None) for a in node.args[1:3]]
        if node.target in ATEN_WEIGHTED and args[0] in names:
            weight, bias = names[args[0]], names.get(args[1])
            roles.append((order.get(weight, 0), "weighted", weight, bias))
        elif node.target in ATEN_NORMALISATIONS:
            # (weight, bias, running mean, running var) positions: layer_norm / group_norm have no statistics
            first = 2 if "layer_norm" in str(node.target) or "group_norm" in str(node.target) else 1
            for role, arg in zip(("ones", "zeros", "zeros", "ones"), node.args[first : first + 4], strict=False):
                name = names.get(getattr(arg, "name", None))
                if name is not None:
                    roles.append((order.get(name, 0), role, name, None))
    for _, role, name, bias in sorted(roles, key=lambda r: r[0]):
        tensor = tensors[name]
        if role == "weighted":
            init.kaiming_uniform_(tensor, a=math.sqrt(5))
            if bias is not None:
                bound = 1.0 / math.sqrt(tensor[0].numel()) if tensor[0].numel() > 0 else 0.0
                init.uniform_(tensors[bias], -bound, bound)
                drawn.add(bias)
        else:
            tensor.fill_(1.0 if role == "ones" else 0.0)
        drawn.add(name)
    missing = [name for name in parameters.values() if name not in drawn]
    if missing:
        users = {names[n.name]: str(u.target) for n in program.graph.nodes if n.name in names for u in n.users}
        listed = ", ".join(f"{name} (used by {users.get(name, 'nothing')})" for name in missing[:4])
        raise InputError(
            f"parameter(s) {listed} have no default initialisation by layer type; pass init_fn(module) "
            "or save the model as a state_dict with its class"
        )
