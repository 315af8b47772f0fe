"""Loading users' model files safely.

Kinds of file (detected from the contents, not the name):

- TorchScript archive (``torch.jit.save``): loaded with ``torch.jit.load``.
- ``torch.export`` program (``torch.export.save``): inspected first by
  :func:`~pacbayes.models.archives.check_export_archive` (anything torch would unpickle or run is refused
  unless ``trust_pickle=True``), then ``torch.export.load``, wrapped in
  :class:`~pacbayes.models.programs.ExportedModel` so that it runs on any batch size and accepts ``.eval()``.
- state_dict (``torch.save(model.state_dict())``, or a checkpoint dict holding one under
  ``state_dict`` / ``model_state_dict``): needs the architecture as ``"module:Class"`` (a module
  name or a ``.py`` path) plus keyword arguments; loaded with ``strict=True``.
- a whole pickled module (``torch.save(model)``): unpickling runs code named by the file, so it is
  loaded only with ``trust_pickle=True``. Every other ``torch.load`` here uses ``weights_only=True``.

A state_dict must hold real, dense tensors (complex, meta, sparse and quantized entries are refused). The file
is read once; the checks and the load use the same bytes, with torch's warnings and logging silenced.
Everything is loaded onto the CPU and returned in eval mode.
"""

import importlib
import importlib.util
import inspect
import io
import os
import stat
import zipfile

import torch

from pacbayes.checks import flag, zip_damage
from pacbayes.errors import InputError, ModelLoadError, one_line
from pacbayes.models.archives import check_export_archive, quiet_torch
from pacbayes.models.programs import ExportedModel

KINDS = ("torchscript", "export", "state_dict", "pickled module")
_KIND_NAMES = {
    "torchscript": "TorchScript archive",
    "export": "torch.export program",
    "pickled module": "pickled module",
}
_CHECKPOINT_KEYS = ("state_dict", "model_state_dict")
_REFUSED_MODULES = ("builtins", "__main__", "__builtin__")


def model_file_kind(path) -> str:
    """Which of :data:`KINDS` the file at ``path`` is, judged without unpickling anything and
    without loading TorchScript or export archives (ModelLoadError if it is none of them)."""
    return _load(path, trust_pickle=False, peek=True)[1]


def load_model(path, *, architecture=None, kwargs=None, trust_pickle=False) -> torch.nn.Module:
    """The model stored at ``path``, on the CPU, in eval mode (see the module docstring).

    architecture: ``"module:Class"`` or ``"path/to/file.py:Class"``; required for a state_dict
        file and refused for the other kinds. kwargs: dict of keyword arguments for ``Class``.
    trust_pickle: True to allow code from the file: unpickling a whole module, or a ``torch.export``
        archive that torch would unpickle from or run code for (only for files you trust). A bool.
    """
    content, kind = _load(path, trust_pickle=flag(trust_pickle, "trust_pickle"), peek=False)
    if kind == "state_dict":
        if architecture is None:
            raise ModelLoadError(
                f"{path}: holds a state_dict (weights only); give its architecture "
                "as module:Class (and its keyword arguments)"
            )
        model = instantiate_architecture(architecture, kwargs)
        _load_state_dict_strict(model, content, path)
    else:
        if architecture is not None or kwargs:
            raise ModelLoadError(
                f"{path}: is a {_KIND_NAMES[kind]}, which carries its own architecture; "
                "an architecture is only needed for state_dict files"
            )
        model = content
    return model.eval()


def _load(path, *, trust_pickle, peek):
    """(loaded object, kind); with peek=True nothing is loaded (object None).

    The file is read once and every check and load works on those bytes, so it cannot change in between.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"the model path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    raw = _intact_bytes(path, path)
    archive = archive_kind(io.BytesIO(raw))
    if peek and archive in ("torchscript", "export"):
        return None, archive
    try:
        with quiet_torch():
            if archive == "torchscript":
                return torch.jit.load(io.BytesIO(raw), map_location="cpu"), "torchscript"
            if archive == "export":
                check_export_archive(raw, path, trust_pickle=trust_pickle)
                return ExportedModel(torch.export.load(io.BytesIO(raw))), "export"
            content = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except ModelLoadError:
        raise
    except Exception as err:  # torch raises many types (RuntimeError, KeyError, UnpicklingError...)
        if "unsupported global" not in str(err).lower():
            raise ModelLoadError(
                f"{path}: not a readable model file ({type(err).__name__}: "
                f"{one_line(err)}); expected "
                "TorchScript, torch.export, a state_dict or a pickled module"
            ) from None
        if peek:
            return None, "pickled module"
        if not trust_pickle:
            raise ModelLoadError(
                f"{path}: is a pickled Python object; unpickling it runs code from the "
                "file: pass --trust-pickle only if you trust it, or save TorchScript, "
                "torch.export or a state_dict instead"
            ) from None
        return _unpickle_trusted(raw, path), "pickled module"
    return _weights_only_content(content, path), "state_dict"


def _read_model_file(path) -> bytes:
    """The bytes of the regular, non-empty file ``path`` (a FIFO or device is refused without blocking)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ModelLoadError(f"{path}: no such model file") from None
    except OSError as err:
        raise ModelLoadError(f"{path}: cannot open the model file ({err.strerror})") from None
    with os.fdopen(descriptor, "rb") as stream:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise ModelLoadError(f"{path}: not a regular file; pass the saved model file")
        raw = stream.read()
    if not raw:
        raise ModelLoadError(f"{path}: the model file is empty; save the model again")
    return raw


def _intact_bytes(path, source) -> bytes:
    """The file's bytes, refused (naming ``source``) if it is a zip archive that fails its CRC checks."""
    raw = _read_model_file(path)
    damage = zip_damage(io.BytesIO(raw))
    if damage:
        raise ModelLoadError(f"{source} is corrupt ({damage}); save or copy it again")
    return raw


def load_state_dict_file(path, source: str) -> dict:
    """The state_dict (name -> real dense tensor) in the weights-only file ``path``, read without unpickling
    code and refused (ModelLoadError naming ``source``) if the file is damaged, a TorchScript or export archive,
    a pickle, or holds anything but real dense tensors."""
    raw = _intact_bytes(os.fspath(path), source)
    archive = archive_kind(io.BytesIO(raw))
    if archive in ("torchscript", "export"):
        raise ModelLoadError(
            f"{source} is a {archive} archive, not a state dict; save it with torch.save(model.state_dict(), path)"
        )
    try:
        with quiet_torch():
            content = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for corrupt or pickled-code files
        raise ModelLoadError(
            f"cannot read {source} as a weights-only state dict ({type(err).__name__}); "
            "save it with torch.save(model.state_dict(), path)"
        ) from None
    return _weights_only_content(content, source)


def archive_kind(path) -> str:
    """How a file (a path or a binary stream) is stored, judged from its zip listing alone: "torchscript",
    "export", "torch.save" (a zip written by torch.save) or "pickle" (anything else)."""
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


def _weights_only_content(content, source) -> dict:
    if isinstance(content, dict):
        for key in _CHECKPOINT_KEYS:
            if isinstance(content.get(key), dict):
                content = content[key]
                break
    if not isinstance(content, dict) or not content or not all(isinstance(v, torch.Tensor) for v in content.values()):
        raise ModelLoadError(
            f"{source}: holds a {type(content).__name__}, not a model or a state_dict "
            "of tensors; save the model with torch.jit.save, torch.export.save "
            "or torch.save(model.state_dict())"
        )
    return check_state_tensors(content, source)


def check_state_tensors(state, source: str):
    """``state`` (a mapping of names to tensors) if every tensor holds real values in ordinary dense storage;
    else ModelLoadError naming the first that does not (complex values would be cast to real silently, a meta
    tensor holds no values, a sparse or quantized one is not a layer's weight)."""
    for name, tensor in state.items():
        kind = _unusable_kind(tensor)
        if kind:
            raise ModelLoadError(
                f"{source}: entry {name!r} is a {kind} tensor; save the model's real, dense weights "
                "(torch.save(model.state_dict()))"
            )
    return state


def _unusable_kind(tensor):
    """Why ``tensor`` cannot be a weight ("complex", "meta", "sparse", "quantized"), or None."""
    if not isinstance(tensor, torch.Tensor):
        return type(tensor).__name__
    if tensor.is_meta:
        return "meta"
    if tensor.layout != torch.strided:
        return "sparse"
    if tensor.is_quantized:
        return "quantized"
    if tensor.is_complex():
        return "complex"
    return None


def _unpickle_trusted(raw, path) -> torch.nn.Module:
    try:
        with quiet_torch():
            model = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=False)
    except (ImportError, AttributeError) as err:
        raise ModelLoadError(
            f"{path}: the pickle names code that cannot be imported ({one_line(err)}); "
            "put the model's module on PYTHONPATH or save a state_dict"
        ) from None
    except Exception as err:  # a trusted pickle can still be damaged in any number of ways
        raise ModelLoadError(f"{path}: cannot unpickle ({one_line(err)})") from None
    if not isinstance(model, torch.nn.Module):
        raise ModelLoadError(f"{path}: unpickles to a {type(model).__name__}, not a torch.nn.Module")
    return model


def require_trusted_code(architecture, source: str, trust_code: bool) -> None:
    """Refuse an architecture named by ``source`` (a claims file, a replayed command line) unless the
    caller passed ``trust_code``: importing "module:Class" or "file.py:Class" runs that code."""
    if architecture is not None and not flag(trust_code, "trust_code"):
        raise ModelLoadError(
            f"{source} names code to import (architecture {architecture!r}); "
            f"pass --trust-code only if you trust {source}"
        )


def instantiate_architecture(architecture, kwargs=None) -> torch.nn.Module:
    """Build ``Class(**kwargs)`` from ``architecture`` = 'module:Class' or 'file.py:Class'.

    ``Class`` must be a class deriving from torch.nn.Module, or a Python function annotated to return one
    (a model factory); anything else (``os:system``, ``builtins:exit``, an unannotated function, an
    instance) is refused without being called, and so are the interpreter's own namespaces
    (``builtins``, ``__main__``).
    """
    if not isinstance(architecture, str) or architecture.count(":") < 1:
        raise ModelLoadError(f"architecture must be 'module:Class' or 'file.py:Class', got {architecture!r}")
    where, name = architecture.rsplit(":", 1)
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, dict):
        raise ModelLoadError(f"architecture kwargs must be a dict (a JSON object), got {kwargs!r}")
    cls = _architecture_class(architecture, where, name)
    try:
        model = cls(**kwargs)
    except Exception as err:  # the user's constructor may raise anything
        raise ModelLoadError(
            f"cannot build {architecture}(**{kwargs}) ({type(err).__name__}: "
            f"{one_line(err)}); check the architecture kwargs"
        ) from None
    if not isinstance(model, torch.nn.Module):
        raise ModelLoadError(f"{architecture} builds a {type(model).__name__}, not a torch.nn.Module")
    return model


def _architecture_class(architecture, where, name):
    """The torch.nn.Module subclass (or annotated model factory) named ``name`` in the module or ``.py`` file
    ``where``."""
    if not where.endswith(".py") and (where in _REFUSED_MODULES or any(p.startswith("__") for p in where.split("."))):
        raise ModelLoadError(
            f"architecture {architecture} names the interpreter's namespace {where!r}; "
            "name the module or .py file that defines the model class"
        )
    try:
        module = _import_architecture_module(where)
        cls = getattr(module, name)
    except (ImportError, AttributeError) as err:
        raise ModelLoadError(
            f"cannot import architecture {architecture} ({one_line(err)}); "
            "check the module path (on PYTHONPATH) and the class name"
        ) from None
    if not (_is_module_class(cls) or _is_module_factory(cls)):
        what = "a class not derived from torch.nn.Module" if isinstance(cls, type) else f"a {type(cls).__name__}"
        raise ModelLoadError(
            f"architecture {architecture} is {what}; name the model's torch.nn.Module class "
            "(or a Python function annotated to return one)"
        )
    return cls


def _is_module_class(value) -> bool:
    return isinstance(value, type) and issubclass(value, torch.nn.Module)


def _is_module_factory(value) -> bool:
    """A Python function whose return annotation is a torch.nn.Module class (``def net(...) -> nn.Sequential``,
    torchvision's ``resnet18``); builtins and unannotated callables are not."""
    if not inspect.isfunction(value):
        return False
    try:
        returns = inspect.signature(value).return_annotation
    except (TypeError, ValueError):
        return False
    return _is_module_class(returns)


def _import_architecture_module(where):
    """The module ``where`` (a dotted name, or a ``.py`` path run as a fresh module)."""
    if not where.endswith(".py"):
        return importlib.import_module(where)
    spec = importlib.util.spec_from_file_location(f"pacbayes_user_{abs(hash(where))}", where)
    if spec is None or not os.path.isfile(where):
        raise ImportError(f"no such file {where}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load_state_dict_strict(model, state, path) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    problems = [
        f"{what}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}"
        for what, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatch (file vs architecture)", mismatched),
        )
        if keys
    ]
    if problems:
        raise ModelLoadError(
            f"{path}: the state_dict does not fit the architecture ({'; '.join(problems)}); "
            "check the architecture and its kwargs"
        )
    model.load_state_dict(state, strict=True)
