"""Where a report came from (versions, command line, file and data content hashes, seeds, device,
threads), and whether a report still matches it.

:func:`collect` builds the ``provenance`` object of a certify report (``Report.provenance``, the
``provenance`` key of ``pacbayes certify --json``); :func:`model_file_record` adds the model
file's SHA-256 and kind when the model came from a file. :func:`options_record` and
:func:`options_from_record` turn a :class:`~pacbayes.certification.CertifyOptions` into JSON and back
(the caller names the options class: this module sits below the certification it records), so that
``pacbayes verify --rerun`` can recompute a report with the options and seed it recorded;
:mod:`pacbayes.verification` compares a report with these records.

Data hashes are over content, not files: SHA-256 of each tensor's dtype, shape and bytes (inputs,
then labels; :func:`pacbayes.hashing.tensors_sha256`), so the same examples loaded from another copy or
format of the file hash the same.
"""

import dataclasses
import platform
import sys

import numpy as np
import torch

from pacbayes import __version__
from pacbayes.errors import InputError
from pacbayes.hashing import file_sha256, tensors_sha256
from pacbayes.models import model_file_kind
from pacbayes.subspace import is_subspace_file

PACKAGE = "pacbayes"
PLACEHOLDER_PREFIX = "<not recorded: "


def dataset_sha256(data) -> str:
    """The content hash of a :class:`~pacbayes.data.Dataset`: its inputs, then its labels."""
    return tensors_sha256(data.x, data.labels)


def model_file_kind_of(path) -> str:
    """The kind of model file at ``path``: ``"subspace"`` (a compressed model) or a
    :data:`pacbayes.models.KINDS` name (spaces as underscores)."""
    return "subspace" if is_subspace_file(path) else model_file_kind(path).replace(" ", "_")


def model_file_record(path) -> dict:
    """``model_path``, ``model_sha256`` (of the file's bytes) and ``model_file_kind`` of a model file."""
    return {"model_path": str(path), "model_sha256": file_sha256(path), "model_file_kind": model_file_kind_of(path)}


def _plain(value):
    """``value`` as JSON: numbers, strings, None, lists and dicts as they are; any other object a placeholder."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return f"{PLACEHOLDER_PREFIX}{type(value).__name__}>"


def options_record(options) -> dict:
    """CertifyOptions as JSON: every field, each family's settings as an object; objects that JSON
    cannot hold (a compressed model, tensors) become a ``"<not recorded: Type>"`` placeholder."""
    record = {}
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        if dataclasses.is_dataclass(value):
            record[f.name] = {g.name: _plain(getattr(value, g.name)) for g in dataclasses.fields(value)}
        else:
            record[f.name] = _plain(value)
    return record


def _restored(value, name: str):
    if isinstance(value, str) and value.startswith(PLACEHOLDER_PREFIX):
        raise InputError(
            f"the report's option {name} held an object JSON cannot record ({value}); "
            "recompute that report with pacbayes certify instead of verify --rerun"
        )
    return tuple(_restored(item, name) for item in value) if isinstance(value, list) else value


NOT_RERUN = ("cache_dir", "max_minutes")
"""Recorded options a rerun leaves at their defaults: a rerun recomputes every phase instead of reading a cache,
and is not refused for the time it expects on the verifying machine."""


def options_from_record(record: dict, options_type: type):
    """The ``options_type`` (:class:`~pacbayes.certification.CertifyOptions`) that :func:`options_record` wrote
    (InputError if it held an unrecordable object), less :data:`NOT_RERUN`."""
    if not isinstance(record, dict):
        raise InputError("the report's provenance has no options object; it was written by an older pacbayes")
    kwargs = {}
    for f in dataclasses.fields(options_type):
        if f.name not in record or f.name in NOT_RERUN:
            continue
        value = record[f.name]
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            known = {g.name for g in dataclasses.fields(default)}
            if not isinstance(value, dict):
                raise InputError(f"the report's option {f.name} must be an object of settings, got {value!r}")
            value = type(default)(
                **{key: _restored(item, f"{f.name}.{key}") for key, item in value.items() if key in known}
            )
        else:
            value = _restored(value, f.name)
        kwargs[f.name] = value
    try:
        return options_type(**kwargs)
    except TypeError as err:
        raise InputError(f"the report's options do not fit this pacbayes ({err}); rerun pacbayes certify") from None


def collect(options, train, test) -> dict:
    """The ``provenance`` object of a certify report on ``train`` and ``test`` as given (before any subset)."""
    return {
        "package": PACKAGE,
        "package_version": __version__,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "command_line": list(sys.argv),
        "data_sha256": {"train": dataset_sha256(train), "test": dataset_sha256(test)},
        "seeds": {"seed": options.seed},
        "device": options.device or "cpu",
        "threads": {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()},
        "options": options_record(options),
    }


__all__ = [
    "collect",
    "dataset_sha256",
    "file_sha256",
    "model_file_kind_of",
    "model_file_record",
    "options_from_record",
    "options_record",
    "tensors_sha256",
]
