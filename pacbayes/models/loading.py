"""Loading users' model files safely.

Kinds of file (detected from the contents, not the name):

- TorchScript archive (``torch.jit.save``): loaded with ``torch.jit.load``.
- ``torch.export`` program (``torch.export.save``): ``torch.export.load(path).module()``, wrapped in
  :class:`~pacbayes.models.programs.ExportedModel` so that it runs on any batch size and accepts
  ``.eval()``.
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
import zipfile

import torch

from pacbayes.checks import zip_damage
from pacbayes.errors import ModelLoadError, one_line
from pacbayes.models.programs import ExportedModel

KINDS = ("torchscript", "export", "state_dict", "pickled module")
_KIND_NAMES = {
    "torchscript": "TorchScript archive",
    "export": "torch.export program",
    "pickled module": "pickled module",
}
_CHECKPOINT_KEYS = ("state_dict", "model_state_dict")


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
            if peek:
                return None, "export"
            with open(path, "rb") as stream:  # a handle: torch warns about file names not ending in .pt2
                return ExportedModel(torch.export.load(stream)), "export"
        content = torch.load(path, map_location="cpu", weights_only=True)
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
    if not isinstance(content, dict) or not content or not all(isinstance(v, torch.Tensor) for v in content.values()):
        raise ModelLoadError(
            f"{path}: holds a {type(content).__name__}, not a model or a state_dict "
            "of tensors; save the model with torch.jit.save, torch.export.save "
            "or torch.save(model.state_dict())"
        )
    return content


def _unpickle_trusted(path) -> torch.nn.Module:
    try:
        model = torch.load(path, map_location="cpu", weights_only=False)
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
        raise ModelLoadError(
            f"cannot import architecture {architecture} ({one_line(err)}); "
            "check the module path (on PYTHONPATH) and the class name"
        ) from None
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
