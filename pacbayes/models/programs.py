"""TorchScript and ``torch.export`` programs as modules, and back to plain torch.nn modules.

:class:`ExportedModel` runs a ``torch.export`` program like a module (any batch size, ``.eval()``).
:func:`as_program` turns a model of any file kind into one ``torch.export`` program (an ATen graph), the
form the NNGP compiler reads.
:func:`as_plain_sequential` rebuilds a TorchScript Sequential, or an exported chain of layer
operations, as a plain ``torch.nn.Sequential`` of the layers in :data:`pacbayes.layers.LAYERS`.
"""

import re

import torch

from pacbayes.errors import ModelLoadError
from pacbayes.layers import ELEMENTWISE, LAYERS


class ExportedModel(torch.nn.Module):
    """A ``torch.export`` program as a module.

    The program's graph is fixed at export time, train/eval mode included, so ``train()`` and
    ``eval()`` only set the flag. If it was exported with a static batch size b, a batch of any other size is
    padded to a multiple of b (repeating its last row, the padding outputs dropped) and run as one vectorised
    call over its chunks of b (``torch.vmap``), or chunk by chunk where the graph cannot be vectorised. The
    module is built with ``check_guards=False``: a loaded archive's guard strings are never compiled.
    """

    def __init__(self, program):
        super().__init__()
        user_inputs = program.graph_signature.user_inputs
        if len(user_inputs) != 1:
            raise ModelLoadError(
                f"the exported program takes {len(user_inputs)} inputs; a classifier must take one tensor x"
            )
        example = next(
            node.meta["val"] for node in program.graph.nodes if node.op == "placeholder" and node.name == user_inputs[0]
        )
        if not isinstance(example, torch.Tensor):
            raise ModelLoadError(f"the exported program takes a {type(example).__name__}; a classifier takes a tensor")
        self.input_shape = tuple(s if isinstance(s, int) else None for s in example.shape)
        self.static_batch = self.input_shape[0] if self.input_shape else None
        self.exported = program
        self.program = program.module(check_guards=False)

    def train(self, mode: bool = True):
        self.training = mode
        return self

    def forward(self, x):
        if self.static_batch is None or x.shape[0] == self.static_batch:
            return self.program(x)
        padding = -x.shape[0] % self.static_batch
        padded = torch.cat([x, x[-1:].expand(padding, *x.shape[1:])]) if padding else x
        try:
            chunks = torch.vmap(self.program)(padded.reshape(-1, self.static_batch, *x.shape[1:]))
            outputs = chunks.reshape(-1, *chunks.shape[2:])
        except Exception:  # noqa: BLE001  (an operation without a batching rule: run the chunks one by one)
            outputs = torch.cat([self.program(chunk) for chunk in torch.split(padded, self.static_batch)])
        return outputs[: x.shape[0]]


def as_program(module, example_x: torch.Tensor):
    """(program, how): a ``torch.export`` ExportedProgram computing ``module``, traced on ``example_x``.

    An :class:`ExportedModel` is its own program; a TorchScript module is converted with
    ``torch._export.converter.TS2EPConverter``; any other ``nn.Module`` is exported (in eval mode) with
    ``torch.export.export``, whatever its class (the layers its ``forward`` uses, not only a Sequential's).
    Raises ModelLoadError, naming the cause, when the model cannot be traced (e.g. data-dependent control
    flow in ``forward``).
    """
    if isinstance(module, ExportedModel):
        return module.exported, "torch.export program"
    try:
        if isinstance(module, torch.jit.ScriptModule):
            from torch._export.converter import TS2EPConverter

            with torch.no_grad():  # else the program holds non-leaf tensors that cannot be deep-copied
                return TS2EPConverter(module, (example_x,)).convert(), "TorchScript (converted to torch.export)"
        was_training = module.training
        module.eval()
        try:
            batch = ({0: torch.export.Dim.AUTO},)  # any batch size
            return torch.export.export(module, (example_x,), dynamic_shapes=batch), "nn.Module (torch.export)"
        finally:
            module.train(was_training)
    except Exception as err:  # noqa: BLE001  (tracing a user's model fails in many ways)
        message = " ".join(str(err).split())[:200]
        raise ModelLoadError(f"the model could not be traced ({type(err).__name__}: {message})") from None


def as_plain_sequential(module, example_x=None) -> torch.nn.Module:
    """An equivalent plain ``torch.nn.Sequential`` of a TorchScript Sequential of standard layers,
    or of a ``torch.export`` program whose graph is a chain of standard ATen layer operations.

    Lets recognisers that inspect module types (the analytic NNGP kernel) and Monte Carlo kernels
    that re-initialise layers read TorchScript and export files.
    Only torch.nn's own layers listed in :data:`pacbayes.layers.LAYERS` (Sequential, Linear,
    Conv2d, ReLU, Tanh, Sigmoid, AdaptiveAvgPool2d, AvgPool2d, Flatten, Dropout, Identity) are
    rebuilt, and only when every constructor argument is stored in the archive (scripted modules
    keep them; traced ones often do not); an exported program is rebuilt from its linear, conv2d,
    flatten, adaptive_avg_pool2d and elementwise activation calls. Anything else is returned
    unchanged. With ``example_x`` the rebuilt model must reproduce the original's outputs on it
    (else the original is returned).
    """
    if isinstance(module, ExportedModel):
        rebuilt = _rebuild_program(module.exported)
    elif isinstance(module, torch.jit.ScriptModule):
        rebuilt = _rebuild(module)
    else:
        return module
    if rebuilt is None:
        return module
    rebuilt.eval()
    if example_x is not None:
        with torch.no_grad():
            try:
                same = torch.allclose(rebuilt(example_x), module(example_x), rtol=1e-5, atol=1e-6)
            except (RuntimeError, AssertionError, ValueError, TypeError):
                same = False
        if not same:
            return module
    return rebuilt


def torch_nn_type(module):
    """The class name if ``module`` is a scripted torch.nn module, else None."""
    qualified = re.sub(r"\.___torch_mangle_\d+", "", module._c._type().qualified_name())
    prefix = "__torch__.torch.nn.modules."
    return qualified.rsplit(".", 1)[1] if qualified.startswith(prefix) else None


def _rebuild(module):
    layer_type = LAYERS.get(torch_nn_type(module))
    if layer_type is None:
        return None
    if layer_type.role == "container":
        layers = [_rebuild(child) for child in module.children()]
        return None if any(layer is None for layer in layers) else torch.nn.Sequential(*layers)
    try:
        arguments = {name: getattr(module, name) for name in layer_type.arguments}
        weights = {name: p.detach().clone() for name, p in module.named_parameters(recurse=False)}
    except AttributeError:
        return None
    if layer_type.role == "weighted":
        arguments["bias"] = "bias" in weights
        layer = layer_type.cls(**arguments, dtype=weights["weight"].dtype)
        layer.load_state_dict(weights, strict=True)
        return layer
    return layer_type.cls(**arguments)


def _elementwise_operations() -> dict:
    """ATen operation -> the layer class of each elementwise activation (aten.relu -> ReLU, ...)."""
    return {getattr(torch.ops.aten, LAYERS[name].activation).default: LAYERS[name].cls for name in ELEMENTWISE}


def _rebuild_program(program):
    """nn.Sequential equivalent to an exported program whose graph is a chain of linear, conv2d,
    elementwise activation (relu, tanh, sigmoid), flatten and adaptive_avg_pool2d calls on
    parameters; else None."""
    aten = torch.ops.aten
    activations = _elementwise_operations()
    parameters = {
        placeholder: program.state_dict[name]
        for placeholder, name in program.graph_signature.inputs_to_parameters.items()
        if name in program.state_dict
    }
    layers, previous = [], None
    for node in program.graph.nodes:
        if node.op != "call_function":
            if node.op == "placeholder" and node.name in program.graph_signature.user_inputs:
                previous = node
            continue
        args = list(node.args)
        if not args or args[0] is not previous:
            return None
        weights = [parameters.get(getattr(a, "name", None)) for a in args[1:3]]
        if node.target is aten.linear.default and weights[0] is not None:
            layer = torch.nn.Linear(
                weights[0].shape[1],
                weights[0].shape[0],
                bias=len(args) > 2 and weights[1] is not None,
                dtype=weights[0].dtype,
            )
        elif node.target is aten.conv2d.default and weights[0] is not None:
            stride, padding, dilation, groups = (args[3:] + [1, 0, 1, 1][len(args[3:]) :])[:4]
            layer = torch.nn.Conv2d(
                weights[0].shape[1] * groups,
                weights[0].shape[0],
                tuple(weights[0].shape[2:]),
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=groups,
                bias=len(args) > 2 and weights[1] is not None,
                dtype=weights[0].dtype,
            )
        elif node.target in activations and len(args) == 1:
            layer = activations[node.target]()
        elif node.target is aten.flatten.using_ints:
            layer = torch.nn.Flatten(*args[1:])
        elif node.target is aten.adaptive_avg_pool2d.default:
            layer = torch.nn.AdaptiveAvgPool2d(tuple(args[1]))
        else:
            return None
        if isinstance(layer, (torch.nn.Linear, torch.nn.Conv2d)):
            state = {"weight": weights[0]} if layer.bias is None else {"weight": weights[0], "bias": weights[1]}
            layer.load_state_dict({k: v.detach().clone() for k, v in state.items()}, strict=True)
        layers.append(layer)
        previous = node
    outputs = [node for node in program.graph.nodes if node.op == "output"]
    if not layers or len(outputs) != 1 or list(outputs[0].args[0]) != [previous]:
        return None
    return torch.nn.Sequential(*layers)
