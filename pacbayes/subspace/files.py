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
import os

import numpy as np
import torch

from pacbayes.checks import zip_damage
from pacbayes.errors import ModelLoadError
from pacbayes.models import archive_kind
from pacbayes.subspace.compressed import CompressedSubspaceModel
from pacbayes.subspace.model import SubspaceModel
from pacbayes.subspace.origin import SEEDED, is_data_dependent

FORMAT = "pacbayes-subspace"
VERSION = 2
"""2: KT-coded messages with a dyadic codebook (1, the static code with float16 levels, is refused)."""


def save_subspace_model(compressed: CompressedSubspaceModel, path) -> None:
    model = compressed.model
    metadata = {
        "format": FORMAT,
        "version": VERSION,
        "seed": model.seed,
        "dim": model.dim,
        "projection": model.projection_kind,
        "n_params": model.n_params,
        "parameters": [[name, list(shape)] for name, shape in zip(model.names, model.shapes)],
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
        return json.loads(_read(path)["metadata"]).get("format") == FORMAT
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


def load_subspace_model(path, module: torch.nn.Module) -> CompressedSubspaceModel:
    """Read a file written by :func:`save_subspace_model`; ``module`` gives the architecture."""
    damage = zip_damage(path) if os.path.isfile(path) else None
    if damage:
        raise ModelLoadError(f"{path}: the subspace model file is corrupt ({damage}); save it again")
    content = _read(path)
    try:
        meta = json.loads(content["metadata"])
    except (TypeError, ValueError) as err:
        raise ModelLoadError(f"{path}: the metadata is not valid JSON; the file is corrupt") from err
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ModelLoadError(
            f"{path}: unsupported subspace file format {meta.get('format')!r} version {meta.get('version')!r}"
        )
    model = SubspaceModel(module, dim=meta["dim"], seed=meta["seed"], projection=meta["projection"])
    recorded = [[name, list(shape)] for name, shape in zip(model.names, model.shapes)]
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
