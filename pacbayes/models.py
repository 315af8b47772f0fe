"""Loading users' model files safely, and running them as classifiers.

Kinds of file (detected from the contents, not the name):

- TorchScript archive (``torch.jit.save``): loaded with ``torch.jit.load``.
- ``torch.export`` program (``torch.export.save``): ``torch.export.load(path).module()``, wrapped in
  :class:`ExportedModel` so that it runs on any batch size and accepts ``.eval()``.
- state_dict (``torch.save(model.state_dict())``, or a checkpoint dict holding one under
  ``state_dict`` / ``model_state_dict``): needs the architecture as ``"module:Class"`` (a module
  name or a ``.py`` path) plus keyword arguments; loaded with ``strict=True``.
- a whole pickled module (``torch.save(model)``): unpickling runs code named by the file, so it is
  loaded only with ``trust_pickle=True``. Every other ``torch.load`` here uses ``weights_only=True``.

Everything is loaded onto the CPU and returned in eval mode.
"""

import importlib
import importlib.util
import os
import re
import zipfile

import torch

from pacbayes.checks import zip_damage
from pacbayes.errors import InputError, ModelLoadError

KINDS = ("torchscript", "export", "state_dict", "pickled module")
_KIND_NAMES = {"torchscript": "TorchScript archive", "export": "torch.export program",
               "pickled module": "pickled module"}
_CHECKPOINT_KEYS = ("state_dict", "model_state_dict")


class ExportedModel(torch.nn.Module):
    """A ``torch.export`` program as a module.

    The program's graph is fixed at export time, train/eval mode included, so ``train()`` and
    ``eval()`` only set the flag. If it was exported with a static batch size b, inputs are run in
    chunks of b (the last one padded by repeating its first row, the padding outputs dropped).
    """

    def __init__(self, program):
        super().__init__()
        user_inputs = program.graph_signature.user_inputs
        if len(user_inputs) != 1:
            raise ModelLoadError(f"the exported program takes {len(user_inputs)} inputs; "
                                 "a classifier must take one tensor x")
        example = next(node.meta["val"] for node in program.graph.nodes
                       if node.op == "placeholder" and node.name == user_inputs[0])
        self.input_shape = tuple(s if isinstance(s, int) else None for s in example.shape)
        self.static_batch = self.input_shape[0] if self.input_shape else None
        self.exported = program
        self.program = program.module()

    def train(self, mode: bool = True):
        self.training = mode
        return self

    def forward(self, x):
        if self.static_batch is None or x.shape[0] == self.static_batch:
            return self.program(x)
        outputs = []
        for chunk in torch.split(x, self.static_batch):
            padding = self.static_batch - chunk.shape[0]
            padded = torch.cat([chunk, chunk[:1].expand(padding, *chunk.shape[1:])]) if padding else chunk
            outputs.append(self.program(padded)[:chunk.shape[0]])
        return torch.cat(outputs)


def model_file_kind(path) -> str:
    """Which of :data:`KINDS` the file at ``path`` is, judged without unpickling anything and
    without loading TorchScript or export archives (ModelLoadError if it is none of them)."""
    return _load(path, trust_pickle=False, peek=True)[1]


def load_model(path, *, architecture=None, kwargs=None, trust_pickle=False) -> torch.nn.Module:
    """The model stored at ``path``, on the CPU, in eval mode (see the module docstring).

    architecture: ``"module:Class"`` or ``"path/to/file.py:Class"``; required for a state_dict
        file and refused for the other kinds. kwargs: dict of keyword arguments for ``Class``.
    trust_pickle: allow unpickling a whole module (runs code from the file; only for files you trust).
    """
    content, kind = _load(path, trust_pickle=trust_pickle, peek=False)
    if kind == "state_dict":
        if architecture is None:
            raise ModelLoadError(f"{path}: holds a state_dict (weights only); give its architecture "
                                 "as module:Class (and its keyword arguments)")
        model = instantiate_architecture(architecture, kwargs)
        _load_state_dict_strict(model, content, path)
    else:
        if architecture is not None or kwargs:
            raise ModelLoadError(f"{path}: is a {_KIND_NAMES[kind]}, which carries its own architecture; "
                                 "an architecture is only needed for state_dict files")
        model = content
    return model.eval()


def _load(path, *, trust_pickle, peek):
    """(loaded object, kind); with peek=True a pickled module is not unpickled (object None)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelLoadError(f"{path}: no such model file")
    if os.path.getsize(path) == 0:
        raise ModelLoadError(f"{path}: the model file is empty; save the model again")
    archive = archive_kind(path)
    damage = zip_damage(path)
    if damage:
        raise ModelLoadError(f"{path}: the model file is corrupt ({damage}); save or copy the model again")
    try:
        if archive == "torchscript":
            return (None if peek else torch.jit.load(path, map_location="cpu")), "torchscript"
        if archive == "export":
            return (None if peek else ExportedModel(torch.export.load(path))), "export"
        content = torch.load(path, map_location="cpu", weights_only=True)
    except ModelLoadError:
        raise
    except Exception as err:  # torch raises many types (RuntimeError, KeyError, UnpicklingError...)
        if "unsupported global" not in str(err).lower():
            raise ModelLoadError(f"{path}: not a readable model file ({type(err).__name__}: "
                                 f"{_one_line(err)}); expected "
                                 "TorchScript, torch.export, a state_dict or a pickled module") from None
        if peek:
            return None, "pickled module"
        if not trust_pickle:
            raise ModelLoadError(f"{path}: is a pickled Python object; unpickling it runs code from the "
                                 "file: pass --trust-pickle only if you trust it, or save TorchScript, "
                                 "torch.export or a state_dict instead") from None
        return _unpickle_trusted(path), "pickled module"
    return _weights_only_content(content, path), "state_dict"


def archive_kind(path) -> str:
    """How a file is stored, judged from its zip listing alone: "torchscript", "export",
    "torch.save" (a zip written by torch.save) or "pickle" (anything else)."""
    if not zipfile.is_zipfile(path):
        return "pickle"
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return "pickle"
    if any("/code/__torch__" in name or name.endswith("/constants.pkl") for name in names):
        return "torchscript"
    if any(name.endswith(("/archive_format", "serialized_exported_program.json")) for name in names):
        return "export"
    return "torch.save"


def _weights_only_content(content, path) -> dict:
    if isinstance(content, dict):
        for key in _CHECKPOINT_KEYS:
            if isinstance(content.get(key), dict):
                content = content[key]
                break
    if not isinstance(content, dict) or not content \
            or not all(isinstance(v, torch.Tensor) for v in content.values()):
        raise ModelLoadError(f"{path}: holds a {type(content).__name__}, not a model or a state_dict "
                             "of tensors; save the model with torch.jit.save, torch.export.save "
                             "or torch.save(model.state_dict())")
    return content


def _unpickle_trusted(path) -> torch.nn.Module:
    try:
        model = torch.load(path, map_location="cpu", weights_only=False)
    except (ImportError, AttributeError) as err:
        raise ModelLoadError(f"{path}: the pickle names code that cannot be imported ({_one_line(err)}); "
                             "put the model's module on PYTHONPATH or save a state_dict") from None
    except Exception as err:  # a trusted pickle can still be damaged in any number of ways
        raise ModelLoadError(f"{path}: cannot unpickle ({_one_line(err)})") from None
    if not isinstance(model, torch.nn.Module):
        raise ModelLoadError(f"{path}: unpickles to a {type(model).__name__}, not a torch.nn.Module")
    return model


def instantiate_architecture(architecture, kwargs=None) -> torch.nn.Module:
    """Build ``Class(**kwargs)`` from ``architecture`` = 'module:Class' or 'file.py:Class'."""
    if not isinstance(architecture, str) or architecture.count(":") < 1:
        raise ModelLoadError(f"architecture must be 'module:Class' or 'file.py:Class', got {architecture!r}")
    where, name = architecture.rsplit(":", 1)
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, dict):
        raise ModelLoadError(f"architecture kwargs must be a dict (a JSON object), got {kwargs!r}")
    try:
        if where.endswith(".py"):
            spec = importlib.util.spec_from_file_location(f"pacbayes_user_{abs(hash(where))}", where)
            if spec is None or not os.path.isfile(where):
                raise ImportError(f"no such file {where}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
        cls = getattr(module, name)
    except (ImportError, AttributeError) as err:
        raise ModelLoadError(f"cannot import architecture {architecture} ({_one_line(err)}); "
                             "check the module path (on PYTHONPATH) and the class name") from None
    try:
        model = cls(**kwargs)
    except Exception as err:  # the user's constructor may raise anything
        raise ModelLoadError(f"cannot build {architecture}(**{kwargs}) ({type(err).__name__}: "
                             f"{_one_line(err)}); check the architecture kwargs") from None
    if not isinstance(model, torch.nn.Module):
        raise ModelLoadError(f"{architecture} builds a {type(model).__name__}, not a torch.nn.Module")
    return model


def _load_state_dict_strict(model, state, path) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}" for k in expected
                  if k in state and state[k].shape != expected[k].shape]
    problems = [f"{what}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}"
                for what, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                   ("shape mismatch (file vs architecture)", mismatched)) if keys]
    if problems:
        raise ModelLoadError(f"{path}: the state_dict does not fit the architecture ({'; '.join(problems)}); "
                             "check the architecture and its kwargs")
    model.load_state_dict(state, strict=True)


def _one_line(err) -> str:
    text = " ".join(str(err).split())
    return text[:200] + ("..." if len(text) > 200 else "")


# --- running a model as a classifier ---------------------------------------------------------

def model_outputs(model, x, batch_size: int = 1024) -> torch.Tensor:
    """The model's outputs on ``x`` as an (n, K) tensor, computed in eval mode without gradients.

    The mode the model was in is restored afterwards. Inputs are cast to the dtype and device of
    the model's first floating parameter. A model that cannot take ``x`` -> one-line InputError.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(x, torch.Tensor):
        raise InputError(f"model inputs must be a torch tensor, got {type(x).__name__}")
    dtype, device = _input_dtype_device(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            first = _checked_forward(model, x[:1].to(device=device, dtype=dtype), x.shape)
            outputs = [first] + [_as_matrix(model(x[i:i + batch_size].to(device=device, dtype=dtype)))
                                 for i in range(1, len(x), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(outputs).cpu()


def output_dim(model, example_x) -> int:
    """K, the number of outputs per example (1 for a single-logit binary classifier)."""
    return int(model_outputs(model, example_x[:1]).shape[1])


def predict_labels(model, x, batch_size: int = 1024) -> torch.Tensor:
    """Predicted class indices (int64): single-logit models 1 where the logit > 0 else 0 (the
    larger label is the positive class); K-logit models the argmax."""
    return _labels_from_outputs(model_outputs(model, x, batch_size))


def classification_error(model, ds, batch_size: int = 1024) -> float:
    """Fraction of ``ds`` (a pacbayes.data.Dataset) that the model misclassifies."""
    outputs = model_outputs(model, ds.x, batch_size)
    k = outputs.shape[1]
    if k == 1 and ds.num_classes != 2:
        raise InputError(f"the model has one output (a binary classifier) but {ds.name} has "
                         f"{ds.num_classes} classes; binarise the data")
    if k > 1 and k != ds.num_classes:
        raise InputError(f"the model has {k} outputs but {ds.name} has {ds.num_classes} classes; "
                         "use data with one class per output")
    return float((_labels_from_outputs(outputs) != ds.labels).to(torch.float64).mean())


def _labels_from_outputs(outputs) -> torch.Tensor:
    if outputs.shape[1] == 1:
        return (outputs[:, 0] > 0).to(torch.int64)
    return outputs.argmax(dim=1)


def _input_dtype_device(model):
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype, tensor.device
    return torch.float32, torch.device("cpu")


def _checked_forward(model, one, data_shape) -> torch.Tensor:
    if len(data_shape) == 0 or data_shape[0] == 0:
        raise InputError("no examples to run the model on")
    try:
        return _as_matrix(model(one))
    except InputError:
        raise
    except (RuntimeError, AssertionError, ValueError, TypeError, IndexError) as err:
        expected = _expected_input(model)
        hint = f"the model expects input {expected}" if expected else "the model rejects it"
        raise InputError(f"the data's examples have shape {tuple(data_shape[1:])} but {hint} "
                         f"({_one_line(_strip_frames(err))}); check that the data's format and "
                         "normalisation match how the model was trained") from None


def _as_matrix(output) -> torch.Tensor:
    if isinstance(output, (tuple, list)) or not isinstance(output, torch.Tensor):
        raise InputError(f"the model returns a {type(output).__name__}; a classifier must return "
                         "one tensor of logits")
    if output.dim() == 1:
        return output.reshape(-1, 1)
    if output.dim() != 2:
        raise InputError(f"the model's output has shape {tuple(output.shape)}; expected (n,) or "
                         "(n, K) logits")
    if not bool(torch.isfinite(output).all()):
        raise InputError("the model's outputs contain NaN or infinite values")
    return output


def _expected_input(model):
    if isinstance(model, ExportedModel):
        return "(" + ", ".join("n" if i == 0 else str(s) for i, s in enumerate(model.input_shape)) + ")"
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            return f"with {module.in_features} features at the first linear layer"
        if isinstance(module, torch.nn.Conv2d):
            return f"with {module.in_channels} channels (n, {module.in_channels}, h, w)"
        if isinstance(module, torch.jit.ScriptModule) and _torch_nn_type(module) in ("Linear", "Conv2d"):
            weight = module.weight
            return f"with {weight.shape[1]} {'features' if weight.dim() == 2 else 'channels'} at the first layer"
    return None


def _strip_frames(err) -> str:
    """The message of an error; TorchScript puts its interpreter traceback before the message."""
    return str(err).rsplit("RuntimeError: ", 1)[-1]


# --- TorchScript Sequentials back to plain modules -------------------------------------------

def as_plain_sequential(module, example_x=None) -> torch.nn.Module:
    """An equivalent plain ``torch.nn.Sequential`` of a TorchScript Sequential of standard layers,
    or of a ``torch.export`` program whose graph is a chain of standard ATen layer operations.

    Lets recognisers that inspect module types (the analytic NNGP kernel) and Monte Carlo kernels
    that re-initialise layers read TorchScript and export files.
    Only torch.nn's own Sequential, Linear, Conv2d, ReLU, Tanh, Sigmoid, Flatten,
    AdaptiveAvgPool2d, AvgPool2d, Identity and Dropout are rebuilt, and only when every
    constructor argument is stored in the archive (scripted modules keep them; traced ones often
    do not). Anything else is returned unchanged. With ``example_x`` the rebuilt model must
    reproduce the original's outputs on it (else the original is returned).
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


def _torch_nn_type(module):
    """The class name if ``module`` is a scripted torch.nn module, else None."""
    qualified = re.sub(r"\.___torch_mangle_\d+", "", module._c._type().qualified_name())
    prefix = "__torch__.torch.nn.modules."
    return qualified.rsplit(".", 1)[1] if qualified.startswith(prefix) else None


_ATTRIBUTES = {
    "ReLU": (), "Tanh": (), "Sigmoid": (), "Identity": (),
    "Flatten": ("start_dim", "end_dim"),
    "AdaptiveAvgPool2d": ("output_size",),
    "AvgPool2d": ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
    "Dropout": ("p",),
    "Linear": ("in_features", "out_features"),
    "Conv2d": ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
               "groups", "padding_mode"),
}


def _rebuild(module):
    kind = _torch_nn_type(module)
    if kind == "Sequential":
        layers = [_rebuild(child) for child in module.children()]
        return None if any(layer is None for layer in layers) else torch.nn.Sequential(*layers)
    if kind not in _ATTRIBUTES:
        return None
    try:
        arguments = {name: getattr(module, name) for name in _ATTRIBUTES[kind]}
        weights = {name: p.detach().clone() for name, p in module.named_parameters(recurse=False)}
    except AttributeError:
        return None
    if kind in ("Linear", "Conv2d"):
        arguments["bias"] = "bias" in weights
        dtype = weights["weight"].dtype
        layer = getattr(torch.nn, kind)(**arguments, dtype=dtype)
        layer.load_state_dict(weights, strict=True)
        return layer
    return getattr(torch.nn, kind)(**arguments)


def _rebuild_program(program):
    """nn.Sequential equivalent to an exported program whose graph is a chain of linear, conv2d,
    relu, tanh, sigmoid, flatten and adaptive_avg_pool2d calls on parameters; else None."""
    aten = torch.ops.aten
    parameters = {placeholder: program.state_dict[name]
                  for placeholder, name in program.graph_signature.inputs_to_parameters.items()
                  if name in program.state_dict}
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
            layer = torch.nn.Linear(weights[0].shape[1], weights[0].shape[0], bias=len(args) > 2 and
                                    weights[1] is not None, dtype=weights[0].dtype)
        elif node.target is aten.conv2d.default and weights[0] is not None:
            stride, padding, dilation, groups = (args[3:] + [1, 0, 1, 1][len(args[3:]):])[:4]
            layer = torch.nn.Conv2d(weights[0].shape[1] * groups, weights[0].shape[0],
                                    tuple(weights[0].shape[2:]), stride=stride, padding=padding,
                                    dilation=dilation, groups=groups,
                                    bias=len(args) > 2 and weights[1] is not None, dtype=weights[0].dtype)
        elif node.target in (aten.relu.default, aten.tanh.default, aten.sigmoid.default) and len(args) == 1:
            layer = {aten.relu.default: torch.nn.ReLU, aten.tanh.default: torch.nn.Tanh,
                     aten.sigmoid.default: torch.nn.Sigmoid}[node.target]()
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
