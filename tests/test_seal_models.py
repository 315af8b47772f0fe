"""Model files cannot run code, and malformed ones are refused with one line.

Hostile ``torch.export`` archives are built from a genuine tiny exported program, its zip rewritten to carry a
payload that creates a marker file when unpickled or evaluated; every such case asserts the marker is absent.
Also here: code named as an architecture, library flags that must be bools, weights that are not real dense
tensors, damaged init checkpoints, and forward passes that are random, fail late or return labels.
"""

import importlib
import io
import json
import os
import pickle
import subprocess
import sys
import warnings
import zipfile

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from test_hostile_input import _Evil, assert_refused
from torch import nn

import pacbayes.models
from pacbayes.cli import main
from pacbayes.errors import InputError, ModelLoadError
from pacbayes.models import instantiate_architecture, load_model, model_outputs
from pacbayes.stochastic.prior import data_independent_prior

FEATURES = 6
WEIGHTS = "data/weights/model_weights_config.json"
CONSTANTS = "data/constants/model_constants_config.json"
PROGRAM = "models/model.json"
SAMPLES = "data/sample_inputs/model.pt"


def _saved(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _tiny():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(FEATURES, 2)).eval()


@pytest.fixture(scope="module")
def genuine(tmp_path_factory):
    """A genuine exported program (any batch size) and tiny data files."""
    root = tmp_path_factory.mktemp("seal")
    program = torch.export.export(_tiny(), (torch.randn(4, FEATURES),), dynamic_shapes=({0: torch.export.Dim.AUTO},))
    torch.export.save(program, root / "genuine.pt2")
    x = np.random.default_rng(0).random((24, FEATURES)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.int64)
    np.savez(root / "train.npz", x=x, y=y)
    np.savez(root / "test.npz", x=x[:12], y=y[:12])
    return root


def _members(path) -> dict:
    """Member name below the archive's top folder -> bytes."""
    with zipfile.ZipFile(path) as archive:
        return {info.filename.split("/", 1)[1]: archive.read(info) for info in archive.infolist()}


def _write(path, members, root="archive"):
    """Write ``members`` (a dict, or a list of (name, bytes) pairs) below ``root``/ as a stored zip."""
    pairs = members.items() if isinstance(members, dict) else members
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about a duplicated name
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
            for name, data in pairs:
                archive.writestr(f"{root}/{name}" if root else name, data)
    return str(path)


def _json(members, name, edit):
    document = json.loads(members[name])
    edit(document)
    members[name] = json.dumps(document).encode()


def _weight_entry(members, fqn="1.weight"):
    return json.loads(members[WEIGHTS])["config"][fqn]


# ---------------------------------------------------------------- payloads that would run code
def _pickled_weight(members, marker):
    path_name = _weight_entry(members)["path_name"]
    _json(members, WEIGHTS, lambda d: d["config"]["1.weight"].update(use_pickle=True))
    members[f"data/weights/{path_name}"] = _saved(_Evil(marker))


def _opaque_constant(members, marker):
    entry = {"path_name": "opaque_obj_0", "is_param": False, "use_pickle": True, "tensor_meta": None}
    _json(members, CONSTANTS, lambda d: d["config"].update(evil=entry))
    members["data/constants/opaque_obj_0"] = pickle.dumps(_Evil(marker))


def _custom_constant(members, marker):
    entry = {"path_name": "custom_obj_0", "is_param": False, "use_pickle": True, "tensor_meta": None}
    _json(members, CONSTANTS, lambda d: d["config"].update(evil=entry))
    members["data/constants/custom_obj_0"] = pickle.dumps(_Evil(marker))


def _sample_inputs(members, marker):
    members[SAMPLES] = _saved(_Evil(marker))


def _legacy_weights(members, marker):
    members["data/weights/model.pt"] = _saved(_Evil(marker))


def _legacy_constants(members, marker):
    members["data/constants/model.pt"] = _saved(_Evil(marker))


def _native_code(members, marker):
    members["data/aotinductor/model/model.so"] = b"\x7fELF not really"


def _shape_expression(members, marker):
    """A shape expression that sympy.sympify evaluates: it opens the marker through a sympy class's globals."""
    payload = f"Integer.__new__.__globals__['__builtins__']['open']({str(marker)!r}, 'w').closed"
    text = members[PROGRAM].decode()
    symbol = "Symbol('s"
    start = text.index(symbol)
    end = text.index(")", start) + 1
    expression = text[start:end]
    members[PROGRAM] = text.replace(
        json.dumps(expression)[1:-1], json.dumps(f"{expression} + 0*Integer({payload})")[1:-1], 1
    ).encode()


def _operator_call(members, marker):
    def edit(document):
        document["graph_module"]["graph"]["nodes"][-1]["target"] = "torch.serialization.os.system"

    _json(members, PROGRAM, edit)


def _refused_operator(members, marker):
    def edit(document):
        document["graph_module"]["graph"]["nodes"][-1]["target"] = "torch.ops.aten.from_file.default"

    _json(members, PROGRAM, edit)


def _power_expression(members, marker):
    """A power in a shape expression: refused whatever its size, since sympy evaluates Pow(10, 10**10) exactly
    (a small one keeps this case harmless on a loader that would evaluate it)."""
    text = members[PROGRAM].decode()
    start = text.index("Symbol('s")
    end = text.index(")", start) + 1
    bomb = f"Add({text[start:end]}, Mul(Integer(0), Pow(Integer(10), Integer(400))))"
    members[PROGRAM] = text.replace(text[start:end], bomb.replace('"', '\\"'), 1).encode()


HOSTILE = {
    "pickled-weight": _pickled_weight,
    "opaque-constant": _opaque_constant,
    "custom-object-constant": _custom_constant,
    "sample-inputs": _sample_inputs,
    "legacy-weights": _legacy_weights,
    "legacy-constants": _legacy_constants,
    "native-code": _native_code,
    "shape-expression": _shape_expression,
    "operator-call": _operator_call,
    "file-operator": _refused_operator,
    "power-expression": _power_expression,
}


@pytest.fixture
def hostile(genuine, tmp_path, request):
    """(path of a hostile archive, the marker its payload would create)."""
    marker = tmp_path / "PWNED"
    members = _members(genuine / "genuine.pt2")
    HOSTILE[request.param](members, marker)
    return _write(tmp_path / "hostile.pt2", members), marker


def _refusal(path) -> str:
    """The ModelLoadError message of loading ``path`` ("" if it loads)."""
    try:
        load_model(path)
    except ModelLoadError as err:
        return str(err)
    return ""


@pytest.mark.parametrize("hostile", sorted(HOSTILE), indirect=True)
def test_an_export_archive_that_would_run_code_is_refused_before_torch_reads_it(hostile):
    path, marker = hostile
    refusal = _refusal(path)
    assert not marker.exists()
    assert "--trust-pickle" in refusal


@pytest.mark.parametrize("hostile", ["pickled-weight", "sample-inputs", "shape-expression"], indirect=True)
def test_the_hostile_archives_are_live_payloads_that_the_flag_lets_through(hostile):
    """Control: with trust_pickle=True torch reads the archive and the payload runs (so the refusal above is
    what keeps it from running)."""
    path, marker = hostile
    try:
        load_model(path, trust_pickle=True)
    except ModelLoadError:
        pass  # the payload is not a working model; it ran all the same
    assert marker.exists()


COMMANDS = {
    "certify": "certify {model} --train {train} --test {test}",
    "kernel-model": "kernel {train} --model {model} -o {out}",
    "check": "check {claims} --quiet",
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("hostile", ["pickled-weight", "opaque-constant", "sample-inputs"], indirect=True)
def test_every_command_refuses_a_hostile_archive_with_one_line(genuine, hostile, command, tmp_path):
    path, marker = hostile
    claims = tmp_path / "claims.toml"
    claims.write_text(f'[[claim]]\nname = "p"\nmodel = "{path}"\nat_most = 1.0\n')
    places = {"model": path, "train": genuine / "train.npz", "test": genuine / "test.npz"}
    places.update(out=tmp_path / "k.npy", claims=claims)
    result = CliRunner().invoke(main, [part.format(**places) for part in COMMANDS[command].split()])
    assert not marker.exists()
    assert_refused(result, "--trust-pickle")


def test_guard_strings_in_an_archive_are_never_compiled(genuine, tmp_path):
    """torch compiles an archive's guards_code with exec() when it builds the module; the loader never asks
    it to, so a guard that would open a file leaves no trace and the model loads."""
    marker = tmp_path / "PWNED"
    members = _members(genuine / "genuine.pt2")
    guard = f"__import__('builtins').open({str(marker)!r}, 'w').closed == False"
    _json(members, PROGRAM, lambda d: d.update(guards_code=[guard]))
    model = load_model(_write(tmp_path / "guarded.pt2", members))
    assert model_outputs(model, torch.randn(3, FEATURES)).shape == (3, 2)
    assert not marker.exists()


def test_an_archive_in_the_old_layout_needs_the_flag(tmp_path):
    marker = tmp_path / "PWNED"
    members = [
        ("version", b"8.20"),
        ("serialized_exported_program.json", b"{}"),
        ("serialized_state_dict.pt", _saved(_Evil(marker))),
        ("serialized_constants.pt", _saved({})),
        ("serialized_example_inputs.pt", _saved(((), {}))),
    ]
    refusal = _refusal(_write(tmp_path / "old.pt2", members, root=None))
    assert not marker.exists()
    assert "before 2.8" in refusal and "--trust-pickle" in refusal


# ---------------------------------------------------------------- malformed archives: one line each
def _deep(name):
    def edit(members):
        members[name] = b"[" * 100_000 + b"]" * 100_000

    return edit


def _not_json(members):
    members[WEIGHTS] = b'{"config": '


def _missing_weight(members):
    del members[f"data/weights/{_weight_entry(members)['path_name']}"]


def _meta(field, value, fqn="1.weight"):
    def edit(members):
        _json(members, WEIGHTS, lambda d: d["config"][fqn]["tensor_meta"].update({field: value}))

    return edit


def _sizes(*sizes):
    return _meta("sizes", [{"as_int": s} for s in sizes])


def _empty_record(members):
    members[f"data/weights/{_weight_entry(members)['path_name']}"] = b""
    _sizes(10**6, 10**6)(members)


def _duplicate(members):
    return [*members.items(), (WEIGHTS, members[WEIGHTS])]


def _two_programs(members):
    members["models/other.json"] = members[PROGRAM]


def _no_sample_inputs(members):
    del members[SAMPLES]


MALFORMED = {
    "deep-program-json": (_deep(PROGRAM), "nests"),
    "deep-weights-json": (_deep(WEIGHTS), "nests"),
    "invalid-json": (_not_json, "not valid JSON"),
    "missing-weight": (_missing_weight, "is missing"),
    "shape-lie": (_sizes(2, FEATURES * 10), "its record holds"),
    "offset-lie": (_meta("storage_offset", {"as_int": 5}), "its record holds"),
    "oversized-empty-record": (_empty_record, "record is empty"),
    "meta-device": (_meta("device", {"type": "meta", "index": None}), "meta device"),
    "complex-weight": (_meta("dtype", 10), "complex"),
    "unknown-dtype": (_meta("dtype", 999), "malformed tensor metadata"),
    "negative-size": (_sizes(-2, FEATURES), "malformed tensor metadata"),
    "string-size": (_meta("sizes", [{"as_int": "2"}, {"as_int": FEATURES}]), "malformed tensor metadata"),
    "symbolic-size": (_meta("sizes", [{"as_expr": {"expr_str": "s0"}}]), "malformed tensor metadata"),
    "odd-record": (lambda m: m.update({"data/weights/weight_0": b"abc"}), "whole number"),
    "bad-path-name": (lambda m: _json(m, WEIGHTS, lambda d: d["config"]["1.weight"].update(path_name="../x")), "valid"),
    "no-config": (lambda m: m.update({WEIGHTS: b"[]"}), "no config object"),
    "duplicate-member": (_duplicate, "appears twice"),
    "two-programs": (_two_programs, "programs"),
    "no-sample-inputs": (_no_sample_inputs, "has no data/sample_inputs"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_archive_is_refused_with_one_line(genuine, tmp_path, case):
    edit, words = MALFORMED[case]
    members = _members(genuine / "genuine.pt2")
    members = edit(members) or members
    with pytest.raises(ModelLoadError, match=words) as refusal:
        load_model(_write(tmp_path / "bad.pt2", members))
    assert "\n" not in str(refusal.value)


def test_an_oversized_json_member_is_refused_before_it_is_read(genuine, monkeypatch):
    monkeypatch.setattr(importlib.import_module("pacbayes.models.archives"), "MAX_JSON_BYTES", 1000)
    with pytest.raises(ModelLoadError, match="over the 1000-byte limit"):
        load_model(genuine / "genuine.pt2")


SYMBOL = "Symbol('s0', positive=True, integer=True)"


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        (SYMBOL, True),
        (f"Add(FloorDiv(Add({SYMBOL}, Integer(-3)), Integer(2)), Integer(1))", True),
        (f"Max(Integer(1), Mul(Integer(2), {SYMBOL}))", True),
        ("Float('1.5', precision=53)", True),
        (f"{SYMBOL} + 0*Integer(__import__('os').getpid())", False),
        ("Integer.__new__", False),
        ("Integer(1).func", False),
        ("(lambda: 1)()", False),
        ("Symbol('a(b')", False),
        ("Pow(Integer(10), Integer(10))", False),
        ("PowByNatural(Integer(10), Integer(10))", False),
        ("Integer(2) ** Integer(10)", False),
        ("Integer(1)[0]", False),
        ("(" * 100 + "Integer(1)" + ")" * 100, False),
        ("Integer(1) + " * 2000 + "Integer(1)", False),
        (3, False),
    ],
)
def test_only_plain_shape_arithmetic_reaches_sympify(text, plain):
    assert importlib.import_module("pacbayes.models.archives").is_plain_expression(text) is plain


def test_an_archive_with_members_outside_one_folder_is_refused(genuine, tmp_path):
    members = list(_members(genuine / "genuine.pt2").items())
    with zipfile.ZipFile(tmp_path / "mixed.pt2", "w") as archive:
        for name, data in members:
            archive.writestr(f"a/{name}", data)
        archive.writestr("stray", b"x")
    with pytest.raises(ModelLoadError, match="not a complete torch.export archive"):
        load_model(tmp_path / "mixed.pt2")


def test_a_malformed_archive_prints_no_logged_traceback(genuine, tmp_path):
    """torch logs a traceback through logging while it reads a broken archive; the user sees one line."""
    members = _members(genuine / "genuine.pt2")
    _sizes(2, FEATURES * 10)(members)
    path = _write(tmp_path / "lie.pt2", members)
    argv = ["certify", path, "--train", str(genuine / "train.npz"), "--test", str(genuine / "test.npz")]
    code = f"import sys; from pacbayes.cli import main; sys.argv = ['pacbayes', *{argv!r}]; main()"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pacbayes: error: "), proc.stderr


# ---------------------------------------------------------------- the genuine archive still works
class _Counting(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


def test_a_static_batch_program_runs_any_batch_in_one_vectorised_call(tmp_path):
    model = _tiny()
    torch.export.save(torch.export.export(model, (torch.randn(4, FEATURES),)), tmp_path / "static.pt2")
    loaded = load_model(tmp_path / "static.pt2")
    loaded.program = _Counting(loaded.program)
    x = torch.randn(11, FEATURES)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-6)
    assert loaded.program.calls == 1  # vmap over the three chunks of four, not one call per chunk


def test_a_genuine_archive_loads_and_matches_the_model(genuine):
    x = torch.randn(9, FEATURES)
    with torch.no_grad():
        assert torch.allclose(model_outputs(load_model(genuine / "genuine.pt2"), x), _tiny()(x), atol=1e-6)


# ---------------------------------------------------------------- code named as an architecture
@pytest.mark.parametrize(
    ("architecture", "words"),
    [
        ("builtins:exit", "interpreter's namespace"),
        ("builtins:eval", "interpreter's namespace"),
        ("__main__:Net", "interpreter's namespace"),
        ("os:system", "name the model's torch.nn.Module class"),
        ("torch:zeros", "builtin_function_or_method"),
        ("collections:OrderedDict", "a class not derived from torch.nn.Module"),
        ("torch.nn:functional", "a module"),
    ],
)
def test_an_architecture_that_is_not_a_module_class_is_refused_without_being_called(architecture, words):
    with pytest.raises(ModelLoadError, match=words):
        instantiate_architecture(architecture, {})


@pytest.mark.parametrize("returns", ["", " -> int", " -> 'torch.nn.Module'"], ids=["bare", "int", "string"])
def test_a_function_not_annotated_to_return_a_module_is_not_called(tmp_path, returns):
    marker = tmp_path / "PWNED"
    (tmp_path / "maker.py").write_text(f"import torch\ndef make(**kwargs){returns}:\n    open({str(marker)!r}, 'w')\n")
    with pytest.raises(ModelLoadError, match="a function"):
        instantiate_architecture(f"{tmp_path / 'maker.py'}:make", {})
    assert not marker.exists()


def test_a_model_factory_annotated_to_return_a_module_builds_the_model():
    model = instantiate_architecture("pacbayes.demo:demo_network", {"width": 3, "depth": 1})
    assert isinstance(model, nn.Sequential) and model[1].out_features == 3


@pytest.mark.parametrize(("architecture", "trust"), [("torch.nn:Linear", False), ("m.py:Net", False)])
def test_code_named_by_a_file_needs_the_trust_code_flag(architecture, trust):
    with pytest.raises(ModelLoadError, match="claims file c.toml names code to import .*--trust-code"):
        pacbayes.models.require_trusted_code(architecture, "claims file c.toml", trust)


def test_no_architecture_or_the_flag_passes_and_the_flag_must_be_a_bool():
    pacbayes.models.require_trusted_code(None, "claims file c.toml", False)
    pacbayes.models.require_trusted_code("torch.nn:Linear", "claims file c.toml", True)
    with pytest.raises(InputError, match="trust_code"):
        pacbayes.models.require_trusted_code("torch.nn:Linear", "claims file c.toml", "yes")


# ---------------------------------------------------------------- library flags are bools
@pytest.mark.parametrize("value", ["no", 1, "False", None, [True]])
def test_trust_pickle_must_be_a_bool(tmp_path, value):
    marker = tmp_path / "PWNED"
    torch.save(_Evil(marker), tmp_path / "evil.pt")
    with pytest.raises(InputError, match="trust_pickle"):
        load_model(tmp_path / "evil.pt", trust_pickle=value)
    assert not marker.exists()


# ---------------------------------------------------------------- weights that are not real dense tensors
def _state(kind):
    state = {k: v.clone() for k, v in nn.Linear(FEATURES, 2).state_dict().items()}
    if kind == "complex":
        state["weight"] = state["weight"].to(torch.complex64)
    elif kind == "meta":
        state["weight"] = state["weight"].to("meta")
    elif kind == "sparse":
        state["weight"] = state["weight"].to_sparse()
    return state


@pytest.mark.parametrize("kind", ["complex", "meta", "sparse"])
def test_a_state_dict_entry_that_is_not_real_and_dense_is_refused(tmp_path, kind):
    torch.save(_state(kind), tmp_path / "sd.pt")
    arguments = {"in_features": FEATURES, "out_features": 2}
    with pytest.raises(ModelLoadError, match=f"entry 'weight' is a {kind} tensor"):
        load_model(tmp_path / "sd.pt", architecture="torch.nn:Linear", kwargs=arguments)


@pytest.mark.parametrize("kind", ["complex", "meta", "sparse"])
def test_an_init_checkpoint_entry_that_is_not_real_and_dense_is_refused(tmp_path, kind):
    torch.save(_state(kind), tmp_path / "init.pt")
    with pytest.raises(ModelLoadError, match=f"is a {kind} tensor"):
        data_independent_prior(nn.Linear(FEATURES, 2), init_state=str(tmp_path / "init.pt"))
    with pytest.raises(ModelLoadError, match=f"is a {kind} tensor"):
        data_independent_prior(nn.Linear(FEATURES, 2), init_state=_state(kind))


def test_a_damaged_init_checkpoint_is_refused(tmp_path):
    torch.save(nn.Linear(FEATURES, 2).state_dict(), tmp_path / "init.pt")
    raw = bytearray((tmp_path / "init.pt").read_bytes())
    with zipfile.ZipFile(tmp_path / "init.pt") as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith("/data/0"))
    header = info.header_offset
    start = header + 30 + int.from_bytes(raw[header + 26 : header + 28], "little")
    start += int.from_bytes(raw[header + 28 : header + 30], "little")
    raw[start + 3] ^= 0x7F  # the float's exponent byte: the weight becomes huge
    (tmp_path / "flipped.pt").write_bytes(bytes(raw))
    with pytest.raises(ModelLoadError, match="corrupt .*CRC"):
        data_independent_prior(nn.Linear(FEATURES, 2), init_state=str(tmp_path / "flipped.pt"))


# ---------------------------------------------------------------- forward passes
class _Noisy(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(FEATURES, 2)

    def forward(self, x):
        return self.linear(x) + torch.rand(len(x), 2)


class _Labels(nn.Module):
    def __init__(self, dtype):
        super().__init__()
        self.linear = nn.Linear(FEATURES, 2)
        self.dtype = dtype

    def forward(self, x):
        return self.linear(x).argmax(1, keepdim=True).to(self.dtype)


class _FailsLate(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(FEATURES, 2)

    def forward(self, x):
        if len(x) < 4:
            raise ValueError("a short batch")
        return self.linear(x)


def _dropout_exported_in_training_mode(tmp_path):
    model = nn.Sequential(nn.Linear(FEATURES, 16), nn.Dropout(0.5), nn.Linear(16, 2)).train()
    program = torch.export.export(model, (torch.randn(4, FEATURES),), dynamic_shapes=({0: torch.export.Dim.AUTO},))
    torch.export.save(program, tmp_path / "dropout.pt2")
    return load_model(tmp_path / "dropout.pt2")


@pytest.mark.parametrize("make", [lambda tmp: _Noisy(), _dropout_exported_in_training_mode], ids=["rand", "dropout"])
def test_a_model_with_randomness_in_forward_is_refused(tmp_path, make):
    model = make(tmp_path)
    with pytest.raises(InputError, match="change from one run to the next"):
        model_outputs(model, torch.randn(10, FEATURES))


def test_outputs_are_seeded_and_leave_the_callers_generator_alone():
    model = nn.Sequential(nn.Linear(FEATURES, 2))
    x = torch.randn(30, FEATURES)
    state = torch.get_rng_state()
    first = model_outputs(model, x, batch_size=7)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(first, model_outputs(model, x, batch_size=7, seed=5))


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.int32])
def test_labels_instead_of_logits_are_refused(dtype):
    with pytest.raises(InputError, match="floating-point logits"):
        model_outputs(_Labels(dtype), torch.randn(5, FEATURES))


def test_a_forward_that_fails_on_a_later_batch_is_one_line():
    with pytest.raises(InputError, match="fails on examples 8 to 9 after running on the earlier ones"):
        model_outputs(_FailsLate(), torch.randn(10, FEATURES), batch_size=4)


@pytest.mark.parametrize("seed", [-1, 2**63, 1.5, True])
def test_the_seed_of_the_outputs_must_be_an_integer(seed):
    with pytest.raises(InputError, match="seed"):
        model_outputs(nn.Linear(FEATURES, 2), torch.randn(3, FEATURES), seed=seed)


# ---------------------------------------------------------------- PYTHONWARNINGS=error
def test_valid_model_files_load_when_warnings_are_errors(genuine, tmp_path):
    model = _tiny()
    torch.jit.script(model).save(str(tmp_path / "ts.pt"))
    torch.save(model[1].state_dict(), tmp_path / "sd.pt")
    code = (
        "import torch\nfrom pacbayes.models import load_model, model_outputs\n"
        f"for path, arguments in [({str(tmp_path / 'ts.pt')!r}, {{}}), ({str(genuine / 'genuine.pt2')!r}, {{}}),\n"
        f"        ({str(tmp_path / 'sd.pt')!r}, dict(architecture='torch.nn:Linear', kwargs=dict(in_features="
        f"{FEATURES}, out_features=2)))]:\n"
        f"    print(tuple(model_outputs(load_model(path, **arguments), torch.zeros(3, {FEATURES})).shape))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["(3,", "2)"] * 3
