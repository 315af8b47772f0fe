"""Saving and loading compressed subspace models without unpickling code.

A file is ``torch.save`` of a dict of plain tensors and one JSON string, read back with
``torch.load(weights_only=True)``. It records the format version, seed, d, projection kind,
quantisation, level count, configurations tried, exact code length, the coded message, theta0 and
the encoder's training error. P is never stored: it is regenerated from the seed. The architecture
is not stored either: the loader is given a module of the same architecture (its weights are
ignored), re-draws theta0 from the seed and refuses the file if that does not reproduce the
recorded theta0 (another architecture, or a torch whose initialisers changed). A theta0 learned on
a prior part of the data (:mod:`pacbayes.subspace.origin`) is read from the file with the split
and the prior part's fingerprint, which the bound checks against the data it is given.
"""

import json
import math
import numbers
import os

import numpy as np
import torch

from pacbayes.arguments import MAX_SEED
from pacbayes.checks import parsed, zip_damage
from pacbayes.errors import InputError, ModelLoadError, one_line
from pacbayes.models import archive_kind, check_state_tensors, instantiate_architecture, load_model
from pacbayes.subspace.compressed import CompressedSubspaceModel
from pacbayes.subspace.model import SubspaceModel
from pacbayes.subspace.origin import SEEDED, is_data_dependent

FORMAT = "pacbayes-subspace"
VERSION = 2
"""2: KT-coded messages with a dyadic codebook (1, the static code with float16 levels, is refused)."""

_WHOLE = (numbers.Integral,)
_METADATA = {  # key: (the types its value may have, the smallest and largest value of a number)
    "seed": (_WHOLE, 0, MAX_SEED),
    "dim": (_WHOLE, 1, None),
    "projection": ((str,), None, None),
    "parameters": ((list,), None, None),
    "levels": (_WHOLE, 1, None),
    "quantisation": ((str,), None, None),
    "code_bits": (_WHOLE, 0, None),
    "configurations": (_WHOLE, 1, None),
    "train_error": ((numbers.Real, type(None)), 0, 1),
    "train_fingerprint": ((str, type(None)), None, None),
    "origin": ((dict,), None, None),
    "torch_version": ((str,), None, None),
}
_LEARNED_ORIGIN = {  # the further keys of a data-dependent origin (pacbayes.subspace.origin)
    "prior_split": ((numbers.Real,), 0, 1),
    "prior_points": (_WHOLE, 1, None),
    "bound_points": (_WHOLE, 1, None),
    "prior_fingerprint": ((str,), None, None),
    "epochs": (_WHOLE, 0, None),
    "lr": ((numbers.Real,), 0, None),
}


def save_subspace_model(compressed: CompressedSubspaceModel, path) -> None:
    model = compressed.model
    metadata = {
        "format": FORMAT,
        "version": VERSION,
        "seed": model.seed,
        "dim": model.dim,
        "projection": model.projection_kind,
        "n_params": model.n_params,
        "parameters": [[name, list(shape)] for name, shape in zip(model.names, model.shapes, strict=False)],
        "levels": compressed.levels,
        "quantisation": compressed.quantisation,
        "code_bits": compressed.code_bits,
        "configurations": compressed.configurations,
        "train_error": compressed.train_error,
        "train_fingerprint": compressed.train_fingerprint,
        "origin": model.origin,
        "torch_version": torch.__version__,
    }
    torch.save(
        {
            "metadata": json.dumps(metadata),
            "message": torch.from_numpy(np.frombuffer(compressed.message, dtype=np.uint8).copy()),
            "theta0": model.theta0.detach().cpu().clone(),
        },
        path,
    )


def is_subspace_file(path) -> bool:
    """True if ``path`` is a file written by :func:`save_subspace_model` (TorchScript and export
    archives are ruled out from their zip listing, without loading them)."""
    if not os.path.isfile(path) or archive_kind(path) != "torch.save":
        return False
    try:
        return parsed(json.loads, _read(path)["metadata"], f"{path}: the metadata").get("format") == FORMAT
    except (ModelLoadError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _read(path) -> dict:
    if not os.path.isfile(path):
        raise ModelLoadError(f"subspace model file {path} does not exist")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for foreign or corrupt files
        raise ModelLoadError(
            f"{path} is not a readable subspace model file ({type(err).__name__}); "
            "save one with pacbayes.subspace.save_subspace_model"
        ) from err
    if not isinstance(content, dict) or not {"metadata", "message", "theta0"} <= set(content):
        raise ModelLoadError(f"{path} is not a subspace model file; save one with save_subspace_model")
    return content


def _metadata(content: dict, path) -> dict:
    """The file's metadata, every key :func:`load_subspace_model` reads of the type and range it must have
    (ModelLoadError naming the first that is not)."""
    try:
        meta = parsed(json.loads, content["metadata"], f"{path}: the metadata")
    except (TypeError, ValueError) as err:
        raise ModelLoadError(f"{path}: the metadata is not valid JSON ({one_line(err)}); the file is corrupt") from err
    if not isinstance(meta, dict):
        raise ModelLoadError(
            f"{path}: the metadata is a JSON {type(meta).__name__}, not an object; the file is corrupt"
        )
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ModelLoadError(
            f"{path}: unsupported subspace file format {meta.get('format')!r} version {meta.get('version')!r}"
        )
    _check_fields({**meta, "origin": meta.get("origin", SEEDED)}, _METADATA, "the metadata's", path)
    if is_data_dependent(meta.get("origin", SEEDED)):
        _check_fields(meta["origin"], _LEARNED_ORIGIN, "the metadata's learned origin's", path)
    parameters = meta["parameters"]
    if not all(
        isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str) and isinstance(entry[1], list)
        for entry in parameters
    ):
        raise ModelLoadError(f"{path}: the metadata's parameters are not [name, shape] pairs; the file is corrupt")
    return meta


def _check_fields(mapping: dict, table: dict, where: str, path) -> None:
    """ModelLoadError unless each key of ``table`` is in ``mapping`` with a value of its types and range."""
    for key, (kinds, low, high) in table.items():
        value = mapping.get(key)
        number = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if (
            isinstance(value, bool)
            or not isinstance(value, kinds)
            or (number and not math.isfinite(value))
            or (number and low is not None and value < low)
            or (number and high is not None and value > high)
        ):
            raise ModelLoadError(f"{path}: {where} {key} is {value!r}, not a valid value; the file is corrupt")


def _check_tensors(content: dict, path) -> None:
    """ModelLoadError unless the coded message is a 1-D byte tensor and theta0 a float tensor."""
    message, theta0 = content["message"], content["theta0"]
    if not isinstance(message, torch.Tensor) or message.dtype != torch.uint8 or message.dim() != 1:
        raise ModelLoadError(f"{path}: the coded message is not a byte tensor; the file is corrupt")
    if not isinstance(theta0, torch.Tensor) or not theta0.is_floating_point():
        raise ModelLoadError(f"{path}: theta0 is not a float tensor; the file is corrupt")
    check_state_tensors({"message": message, "theta0": theta0}, str(path))  # meta, sparse: no values to decode


def load_subspace_model(path, module: torch.nn.Module) -> CompressedSubspaceModel:
    """Read a file written by :func:`save_subspace_model`; ``module`` gives the architecture."""
    damage = zip_damage(path) if os.path.isfile(path) else None
    if damage:
        raise ModelLoadError(f"{path}: the subspace model file is corrupt ({damage}); save it again")
    content = _read(path)
    meta = _metadata(content, path)
    _check_tensors(content, path)
    model = SubspaceModel(module, dim=meta["dim"], seed=meta["seed"], projection=meta["projection"])
    recorded = [[name, list(shape)] for name, shape in zip(model.names, model.shapes, strict=False)]
    if recorded != meta["parameters"]:
        raise ModelLoadError(
            f"{path} was saved for another architecture (parameters "
            f"{meta['parameters'][:2]}...); pass a module of the saved architecture"
        )
    origin = meta.get("origin", SEEDED)
    if is_data_dependent(origin):
        if content["theta0"].shape != model.theta0.shape:
            raise ModelLoadError(f"{path}: the saved theta0 does not fit this architecture; the file is corrupt")
        model.set_origin(content["theta0"], origin)
    elif not torch.equal(content["theta0"], model.theta0):
        raise ModelLoadError(
            f"{path}: re-drawing theta0 from seed {meta['seed']} does not reproduce the "
            f"saved theta0 (saved with torch {meta['torch_version']}, this is "
            f"{torch.__version__}); load it with the torch version that saved it"
        )
    message = content["message"].numpy().tobytes()
    return CompressedSubspaceModel(
        model=model,
        levels=meta["levels"],
        message=message,
        code_bits=meta["code_bits"],
        configurations=meta["configurations"],
        quantisation=meta["quantisation"],
        train_error=meta["train_error"],
        train_fingerprint=meta["train_fingerprint"],
    )


def load_model_or_subspace(path, architecture=None, kwargs=None, trust_pickle: bool = False) -> tuple:
    """(model, compressed) of the model file ``path``: a subspace file decodes to its compressed model
    (``architecture``, ``module:Class`` with ``kwargs``, gives the module), any other file goes to
    :func:`pacbayes.models.load_model` (compressed None)."""
    if is_subspace_file(path):
        if architecture is None:
            raise InputError(
                f"{path} is a compressed subspace model: give its architecture with "
                "--architecture module:Class [--kwargs JSON]"
            )
        compressed = load_subspace_model(path, instantiate_architecture(architecture, kwargs))
        return compressed.decode().eval(), compressed
    return load_model(path, architecture=architecture, kwargs=kwargs, trust_pickle=trust_pickle), None
