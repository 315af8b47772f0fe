"""Checking a ``torch.export`` archive before torch reads it, and keeping torch quiet while it reads.

``torch.export.load`` trusts its file. Reading torch 2.13's loader (``torch/export/pt2_archive/_package.py``,
``torch/_export/serde/serialize.py``) shows that it runs code named by the archive when

- a weight or constant entry of ``data/weights/model_weights_config.json`` or
  ``data/constants/model_constants_config.json`` says ``use_pickle`` (``torch.load(weights_only=False)``);
- a constant is a ``custom_obj_*`` (TorchScript pickle) or ``opaque_obj_*`` (``pickle.loads``) member;
- ``data/sample_inputs/model.pt``, or a legacy ``data/weights/model.pt`` / ``data/constants/model.pt``, is not
  plain tensors: torch retries it with ``weights_only=False``;
- the archive is in the pre-2.8 layout (``serialized_exported_program.json`` at the top), whose members go
  through the same retry;
- it holds ``data/aotinductor/`` members (compiled native code, loaded as a shared library);
- a graph node calls something other than an operator (a node's target is resolved by attribute lookup from
  ``torch``, ``operator`` or ``math``, so ``torch.serialization.os.system`` is reachable);
- a shape expression (``expr_str``) is not plain arithmetic: it is evaluated with ``sympy.sympify``.

:func:`check_export_archive` refuses all of these unless the caller trusts the file, and refuses malformed
archives (deep or oversized JSON, missing weight records, shapes that do not fit their records, weights on the
meta device) with one line instead of torch's logged tracebacks. The loader builds modules with
``module(check_guards=False)``, so the archive's ``guards_code`` strings, which ``module()`` would ``exec``, are
never compiled.
"""

import contextlib
import io
import json
import logging
import math
import re
import warnings
import zipfile

import numpy as np
import torch
from torch.export.pt2_archive import constants as layout

from pacbayes.errors import ModelLoadError

MAX_JSON_BYTES = 64 * 2**20
"""Largest JSON member read (the program of a large network is a few MiB)."""
MAX_JSON_DEPTH = 64
"""Deepest JSON nesting accepted (torch writes about 10 levels; Python's parser recurses per level)."""
MAX_EXPRESSION_CHARS = 4096
"""Longest shape expression accepted."""
_MAX_DIMENSION = 2**62
_PROGRAM = layout.MODELS_FILENAME_FORMAT.format("model")
_SAMPLE_INPUTS = layout.SAMPLE_INPUTS_FILENAME_FORMAT.format("model")
_PAYLOADS = (
    ("weight", layout.WEIGHTS_DIR, layout.WEIGHTS_CONFIG_FILENAME_FORMAT.format("model")),
    ("constant", layout.CONSTANTS_DIR, layout.CONSTANTS_CONFIG_FILENAME_FORMAT.format("model")),
)
_PICKLED_MEMBERS = {
    layout.WEIGHTS_DIR + "model.pt": "legacy weights (a pickle torch retries without weights_only)",
    layout.CONSTANTS_DIR + "model.pt": "legacy constants (a pickle torch retries without weights_only)",
}
_PATH_NAME = re.compile(r"[A-Za-z0-9_]+")
_OPERATOR = re.compile(r"torch\.ops\.(aten|prims)\.([A-Za-z_]\w*)\.[A-Za-z_]\w*")
_REFUSED_OPERATORS = frozenset({"from_file"})  # maps a file named by the graph into a tensor
_HIGHER_ORDER = frozenset(
    f"torch.ops.higher_order.{name}"
    for name in ("cond", "while_loop", "map_impl", "scan", "invoke_subgraph", "wrap_with_set_grad_enabled")
)
_SYMBOLIC_FUNCTIONS = frozenset(
    [f"_operator.{name}" for name in ("getitem", "eq", "ne", "le", "ge", "lt", "gt", "neg", "pos", "mul", "add")]
    + [f"_operator.{name}" for name in ("sub", "floordiv", "mod", "truediv", "and_", "or_")]
    + [f"torch.{name}" for name in ("sym_not", "sym_int", "sym_float", "sym_ite", "sym_max", "sym_min", "sym_sqrt")]
    + ["math.trunc"]
)
_EXPRESSION_TOKEN = re.compile(r"\s+|[A-Za-z_]\w*|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|'[\w.+-]*'|[(),=*/+-]")
_EXPRESSION_NAMES = frozenset(
    "Symbol Integer Rational Float Add Mul Max Min Mod Abs floor ceiling Eq Ne Lt Le Gt Ge Equality Unequality "
    "StrictLessThan LessThan StrictGreaterThan GreaterThan And Or Not true false BooleanTrue BooleanFalse oo "
    "Infinity NegativeInfinity NegativeOne One Zero Half True False integer positive nonnegative negative "
    "nonpositive real finite precision FloorDiv ModularIndexing Where PythonMod CleanDiv CeilToInt FloorToInt "
    "CeilDiv RShift FloatTrueDiv IntTrueDiv IsNonOverlappingAndDenseIndicator TruncToFloat TruncToInt RoundToInt "
    "RoundDecimal ToFloat Identity".split()
)  # no powers or left shifts: Pow(10, 10**9) would be evaluated


@contextlib.contextmanager
def quiet_torch():
    """Run the block with Python warnings ignored and logging switched off (both restored afterwards).

    torch logs tracebacks through ``logging`` while it reads a malformed archive, and warns while reading valid
    files; under ``PYTHONWARNINGS=error`` those warnings would become failures.
    """
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def check_export_archive(raw: bytes, path, *, trust_pickle: bool) -> None:
    """Refuse (ModelLoadError, one line) the ``torch.export`` archive ``raw`` read from ``path`` if it is
    malformed, or if loading it would run code from the file and ``trust_pickle`` is False (see the module
    docstring). Called on the bytes that are then handed to torch, so the file cannot change in between."""
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        members = _members(archive)
        if members is None or layout.ARCHIVE_FORMAT_PATH not in members:
            _check_legacy_layout(archive, path, trust_pickle)
            return
        hazards = [reason for name, reason in _PICKLED_MEMBERS.items() if name in members]
        hazards += [f"compiled native code ({name})" for name in members if name.startswith(layout.AOTINDUCTOR_DIR)]
        _check_single_program(members, path)
        for what, directory, config in _PAYLOADS:
            hazards += _payload_hazards(archive, members, path, what, directory, config)
        hazards += _program_hazards(_read_json(archive, members, _PROGRAM, path))
        if not trust_pickle:
            hazards += _sample_input_hazards(archive, members, path)
    if hazards and not trust_pickle:
        raise ModelLoadError(
            f"{path}: the torch.export archive holds {hazards[0]}{' (and more)' if len(hazards) > 1 else ''}; "
            "loading it runs code from the file: pass --trust-pickle only if you trust it, or export the model "
            "again with torch.export.save"
        )


def _members(archive):
    """Member name (below the archive's one top folder) -> ZipInfo; None if the members are not all in one
    top folder, the layout ``torch.export.save`` writes."""
    infos = archive.infolist()
    if not infos or any("/" not in info.filename for info in infos):
        return None
    if len({info.filename.split("/", 1)[0] for info in infos}) != 1:
        return None
    return {info.filename.split("/", 1)[1]: info for info in infos}


def _check_legacy_layout(archive, path, trust_pickle) -> None:
    if "serialized_exported_program.json" not in archive.namelist():
        raise ModelLoadError(
            f"{path}: not a complete torch.export archive (no archive_format member in one top folder); "
            "export the model again with torch.export.save"
        )
    if not trust_pickle:
        raise ModelLoadError(
            f"{path}: is a torch.export archive in the layout of torch before 2.8, whose members torch unpickles; "
            "pass --trust-pickle only if you trust it, or export the model again with torch.export.save"
        )


def _check_single_program(members, path) -> None:
    programs = sorted(name for name in members if name.startswith(layout.MODELS_DIR))
    if programs != [_PROGRAM]:
        raise ModelLoadError(
            f"{path}: the torch.export archive holds the programs {programs or 'none'}; expected one, "
            f"{_PROGRAM} (as torch.export.save writes)"
        )
    for name in (_SAMPLE_INPUTS, *(config for _, _, config in _PAYLOADS)):
        if name not in members:
            raise ModelLoadError(f"{path}: the torch.export archive has no {name}; export the model again")


def _read_json(archive, members, name, path):
    """The parsed JSON member ``name``, its size and nesting bounded before it is parsed."""
    info = members[name]
    if info.file_size > MAX_JSON_BYTES:
        raise ModelLoadError(f"{path}: {name} is {info.file_size} bytes, over the {MAX_JSON_BYTES}-byte limit")
    data = archive.read(info)
    depth = json_depth(data)
    if depth > MAX_JSON_DEPTH:
        raise ModelLoadError(f"{path}: {name} nests {depth} levels deep, over the limit of {MAX_JSON_DEPTH}")
    try:
        return json.loads(data)
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
        raise ModelLoadError(f"{path}: {name} is not valid JSON ({err}); export the model again") from None


def json_depth(data: bytes) -> int:
    """How deeply the JSON text ``data`` nests arrays and objects, counted without parsing it."""
    codes = np.frombuffer(re.sub(rb'"(?:[^"\\]|\\.)*"', b"", data), dtype=np.uint8)
    brackets = codes[np.isin(codes, tuple(b"[{]}"))]
    return int(np.cumsum(np.where(np.isin(brackets, tuple(b"[{")), 1, -1)).max(initial=0))


def _payload_hazards(archive, members, path, what, directory, config_name) -> list:
    """What in a weights or constants config would be unpickled; malformed tensor entries are refused."""
    config = _read_json(archive, members, config_name, path)
    entries = config.get("config") if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        raise ModelLoadError(f"{path}: {config_name} has no config object; export the model again")
    hazards, records = [], {}
    for name, entry in entries.items():
        path_name = entry.get("path_name") if isinstance(entry, dict) else None
        if not isinstance(path_name, str) or not _PATH_NAME.fullmatch(path_name):
            raise ModelLoadError(f"{path}: {what} {name!r} in {config_name} names no valid record")
        if entry.get("use_pickle", False) is not False:
            hazards.append(f"a pickled {what} ({name!r})")
        elif what == "constant" and not path_name.startswith(layout.TENSOR_CONSTANT_FILENAME_PREFIX):
            hazards.append(f"a pickled Python object as constant {name!r} ({path_name})")
        else:
            record = members.get(directory + path_name)
            if record is None:
                raise ModelLoadError(
                    f"{path}: {what} {name!r} is missing (no {directory + path_name} in the archive); "
                    "export the model again"
                )
            _check_tensor_record(entry.get("tensor_meta"), record, records, f"{path}: {what} {name!r}")
    return hazards


def _check_tensor_record(meta, record, records, where) -> None:
    """Refuse tensor metadata that torch would fail on, or that asks for more values than its record holds
    (``records`` remembers each record's element count: entries may share one)."""
    dtype, sizes, strides, offset, device = _tensor_meta(meta, where)
    if device == "meta":
        raise ModelLoadError(f"{where} is on the meta device and holds no values; export the model with its weights")
    if dtype.is_complex:
        raise ModelLoadError(f"{where} is complex ({dtype}); a classifier's weights must be real")
    if record.filename not in records:  # torch sizes a record by the dtype of its first entry
        if record.file_size % dtype.itemsize:
            raise ModelLoadError(f"{where}: its record is not a whole number of {dtype} values")
        records[record.filename] = record.file_size // dtype.itemsize if record.file_size else math.prod(sizes)
        if record.file_size == 0 and records[record.filename]:
            raise ModelLoadError(f"{where} claims shape {tuple(sizes)} but its record is empty")
    needed = (
        0 if 0 in sizes else offset + sum((size - 1) * stride for size, stride in zip(sizes, strides, strict=False)) + 1
    )
    if needed > records[record.filename]:
        raise ModelLoadError(
            f"{where} claims shape {tuple(sizes)} (strides {tuple(strides)}, offset {offset}) but its record holds "
            f"{records[record.filename]} values; export the model again"
        )


def _tensor_meta(meta, where):
    """(dtype, sizes, strides, offset, device type) of a serialized TensorMeta, each checked."""
    from torch._export.serde import schema
    from torch._export.serde.serialize import _SERIALIZE_TO_TORCH_DTYPE

    try:
        dtype = _SERIALIZE_TO_TORCH_DTYPE[schema.ScalarType(meta["dtype"])]
        sizes = [_dimension(size) for size in meta["sizes"]]
        strides = [_dimension(stride) for stride in meta["strides"]]
        offset = _dimension(meta["storage_offset"])
        device = meta["device"]["type"]
    except (KeyError, TypeError, ValueError):
        raise ModelLoadError(f"{where} has malformed tensor metadata; export the model again") from None
    if len(sizes) != len(strides) or not isinstance(device, str):
        raise ModelLoadError(f"{where} has malformed tensor metadata; export the model again")
    return dtype, sizes, strides, offset, device


def _dimension(value) -> int:
    """A serialized ``{"as_int": n}`` with 0 <= n < 2**62 (ValueError otherwise)."""
    number = value["as_int"]
    if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number < _MAX_DIMENSION:
        raise ValueError(number)
    return number


def _program_hazards(program) -> list:
    """Graph calls that are not operators, and shape expressions that are not plain arithmetic, anywhere in the
    serialized program (subgraphs included)."""
    hazards, pending = [], [program]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
        elif isinstance(node, dict):
            for key, value in node.items():
                if (key == "as_operator" or (key == "target" and "inputs" in node)) and not _is_operator(value):
                    hazards.append(f"a graph call to {str(value)[:80]!r}, which is not a torch operator")
                elif key == "expr_str" and not is_plain_expression(value):
                    hazards.append(f"a shape expression that is not plain arithmetic ({str(value)[:80]!r})")
                else:
                    pending.append(value)
    return hazards


def _is_operator(target) -> bool:
    if not isinstance(target, str):
        return False
    match = _OPERATOR.fullmatch(target)
    if match:
        return match.group(2) not in _REFUSED_OPERATORS
    return target in _SYMBOLIC_FUNCTIONS or target in _HIGHER_ORDER


def is_plain_expression(text) -> bool:
    """Whether ``text`` (a sympy ``srepr`` string) uses only sympy's arithmetic, comparison and shape functions:
    names from a fixed list, numbers, quoted symbol names, parentheses, commas and ``= + - * /``; no attribute
    access, no powers (so ``sympy.sympify`` can neither run code nor build huge numbers)."""
    if not isinstance(text, str) or len(text) > MAX_EXPRESSION_CHARS or "**" in text:
        return False
    position, depth = 0, 0
    while position < len(text):
        token = _EXPRESSION_TOKEN.match(text, position)
        if token is None:
            return False
        word = token.group()
        if (word[0].isalpha() or word[0] == "_") and word not in _EXPRESSION_NAMES:
            return False
        depth += {"(": 1, ")": -1}.get(word, 0)
        if not 0 <= depth <= MAX_JSON_DEPTH:
            return False
        position = token.end()
    return depth == 0


def _sample_input_hazards(archive, members, path) -> list:
    """The sample inputs must load with ``weights_only=True``: torch retries anything else unrestricted."""
    try:
        with quiet_torch():
            torch.load(io.BytesIO(archive.read(members[_SAMPLE_INPUTS])), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001  (torch raises many kinds for a file it will not load safely)
        return [f"sample inputs ({_SAMPLE_INPUTS}) that are not plain tensors"]
    return []
