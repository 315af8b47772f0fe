"""Hostile input: bad input is one line on stderr (``pacbayes: error: ...``), exit status 2, no traceback,
nothing executed (no unpickling, no computation) and nothing lost (no half-written or re-moded file).

Everything runs on tiny data (24 training and 20 test points of 784 random features, a linear model
that separates them) so the whole battery takes seconds.
"""

import json
import math
import os
import pathlib
import shutil
import stat
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from pacbayes.certification import CertifyOptions, certify
from pacbayes.cli import emit, main
from pacbayes.data import from_arrays
from pacbayes.errors import PacBayesError
from pacbayes.families.settings import MarginalSettings, SubspaceSettings
from pacbayes.models import load_model
from pacbayes.monitor import BoundMonitor
from pacbayes.report import write_json_atomically
from pacbayes.testing import assert_certified

UNWRITABLE = "/proc/pacbayes-no-such-place/out"  # /proc refuses new files, even for root


class Executed(Exception):
    """Raised by a stubbed computation: bad input reached it."""


# ---------------------------------------------------------------- fixtures
class _Evil:
    """Unpickling this object opens (creates) ``marker`` for writing: code runs from the file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _flip_a_byte(source, target):
    """Copy a zip archive with one byte of its largest member's data flipped (a CRC error)."""
    raw = bytearray(pathlib.Path(source).read_bytes())
    with zipfile.ZipFile(source) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)
    offset = info.header_offset
    name_length = int.from_bytes(raw[offset + 26 : offset + 28], "little")
    extra_length = int.from_bytes(raw[offset + 28 : offset + 30], "little")
    raw[offset + 30 + name_length + extra_length + info.compress_size // 2] ^= 0xFF
    pathlib.Path(target).write_bytes(bytes(raw))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Tiny separable data, a linear model that fits it (TorchScript, state_dict), broken copies."""
    root = tmp_path_factory.mktemp("hostile")
    w = np.random.default_rng(0).normal(size=784)

    def make(n, seed):
        x = np.random.default_rng(seed).random((n, 784)).astype(np.float32)
        return x, (x @ w > np.median(x @ w)).astype(np.int64)

    x, y = make(24, 1)
    xt, yt = make(20, 2)
    np.savez(root / "train.npz", x=x, y=y)
    np.savez(root / "test.npz", x=xt, y=yt)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 1))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor(w, dtype=torch.float32)[None])
        model[1].bias.fill_(-float(np.median(x @ w)))
    torch.jit.script(model).save(str(root / "ts.pt"))
    torch.save(model.state_dict(), root / "sd.pt")
    _flip_a_byte(root / "ts.pt", root / "ts_crc.pt")
    _flip_a_byte(root / "sd.pt", root / "sd_crc.pt")
    torch.save((torch.from_numpy(x), torch.from_numpy(y)), root / "train.pt")
    _flip_a_byte(root / "train.pt", root / "train_crc.pt")
    (root / "a_file").write_text("not a directory")
    (root / "a_dir").mkdir()
    paths = {
        name: str(root / name)
        for name in (
            "train.npz",
            "test.npz",
            "ts.pt",
            "sd.pt",
            "ts_crc.pt",
            "sd_crc.pt",
            "train.pt",
            "train_crc.pt",
            "a_file",
            "a_dir",
        )
    }
    paths["root"] = str(root)
    paths["data"] = (from_arrays(x, y, name="train", info={}), from_arrays(xt, yt, name="test", info={}))
    paths["model"] = model
    return paths


@pytest.fixture
def evil(tmp_path):
    """(path of a malicious pickle, the marker file unpickling it would create)."""
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    torch.save(_Evil(marker), path)
    assert not marker.exists()
    return str(path), marker


@pytest.fixture
def no_compute(monkeypatch):
    """Every expensive step raises Executed: a refused input must never reach one."""
    import pacbayes.certification
    import pacbayes.claims
    import pacbayes.demo
    import pacbayes.evidence.label_model
    import pacbayes.kernels
    import pacbayes.report_cache

    def stub(*args, **kwargs):
        raise Executed("the computation ran")

    for module, name in (
        (pacbayes.certification, "certify"),
        (pacbayes.report_cache, "certify"),
        (pacbayes.demo, "run_demo"),
        (pacbayes.claims, "train_to_zero_error"),
        *(
            (pacbayes.evidence.label_model, name)
            for name in (
                "ep_log_evidence",
                "certified_log_evidence",
                "multiclass_ep_log_evidence",
                "multiclass_certified_log_evidence",
            )
        ),
    ):
        monkeypatch.setattr(module, name, stub)
    for kernel in ("CompiledNNGP", "FullyConnectedNNGP", "ConvolutionalNNGP", "MonteCarloNNGP"):
        monkeypatch.setattr(getattr(pacbayes.kernels, kernel), "matrix", stub)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_refused(result, *words):
    """Exit status 2, exactly one stderr line ``pacbayes: error: ...`` containing ``words``, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, repr(result.exception))
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pacbayes: error: "), result.stderr
    assert "Traceback" not in result.output
    for word in words:
        assert word in lines[0], lines[0]


# ---------------------------------------------------------------- 1. pickles: only a command-line flag
@pytest.mark.parametrize(
    "claims",
    [
        '[[claim]]\nname = "p"\nmodel = "{evil}"\ntrust_pickle = true\nat_most = 1.0\n',
        '[defaults]\ntrust_pickle = true\n[[claim]]\nname = "p"\nmodel = "{evil}"\nat_most = 1.0\n',
        '[defaults]\ntrust_pickle = false\n[[claim]]\nname = "p"\nmodel = "{evil}"\nat_most = 1.0\n',
        '[[claim]]\nname = "p"\nmodel = "{ts}"\ntrain = "{train}"\ntest = "{test}"\n'
        'compare = {{ op = ">", with = {{ model = "{evil}", trust_pickle = true }} }}\n',
        '[[claim]]\nname = "p"\nmodel = "{evil}"\nat_most = 1.0\n[claim.extra]\ntrust_pickle = true\n',
    ],
    ids=["claim", "defaults", "defaults-false", "compare-with", "nested-table"],
)
def test_a_claims_file_cannot_enable_unpickling(files, evil, claims, tmp_path):
    path, marker = evil
    claims_file = tmp_path / "claims.toml"
    claims_file.write_text(
        claims.format(evil=path, ts=files["ts.pt"], train=files["train.npz"], test=files["test.npz"])
    )
    result = run("check", claims_file, "--quiet")
    assert_refused(result, "trust_pickle", "--trust-pickle")
    assert not marker.exists()


@pytest.mark.parametrize(
    "command",
    [
        ["certify", "{evil}", "--train", "{train}", "--test", "{test}"],
        ["kernel", "{inputs}", "--model", "{evil}", "-o", "{out}"],
        ["data", "info", "{evil}"],
    ],
    ids=["certify", "kernel-model", "data-info"],
)
def test_a_pickle_is_never_unpickled_without_the_flag(files, evil, command, tmp_path, no_compute):
    path, marker = evil
    np.save(tmp_path / "inputs.npy", np.zeros((3, 784)))
    args = [
        a.format(
            evil=path,
            train=files["train.npz"],
            test=files["test.npz"],
            inputs=tmp_path / "inputs.npy",
            out=tmp_path / "K.npy",
        )
        for a in command
    ]
    assert_refused(run(*args))
    assert not marker.exists()


def test_check_trust_pickle_flag_is_the_only_way(files, evil, tmp_path):
    path, marker = evil
    claims_file = tmp_path / "claims.toml"
    claims_file.write_text(
        f'[[claim]]\nname = "p"\nmodel = "{path}"\ntrain = "{files["train.npz"]}"\n'
        f'test = "{files["test.npz"]}"\nat_most = 1.0\n'
    )
    refused = run("check", claims_file, "--quiet")
    assert refused.exit_code == 2 and not marker.exists() and "--trust-pickle" in refused.stderr
    trusted = run("check", claims_file, "--quiet", "--trust-pickle")
    assert marker.exists()  # the flag (and only the flag) allowed it
    assert trusted.exit_code == 2 and "ERROR" in trusted.stdout  # it unpickles to a file, not a model


# ---------------------------------------------------------------- 2. damaged archives
@pytest.mark.parametrize("name", ["ts_crc.pt", "sd_crc.pt"])
def test_a_damaged_model_archive_is_refused(files, name, no_compute):
    extra = ["--architecture", "pacbayes.demo:demo_network"] if name.startswith("sd") else []
    assert_refused(
        run("certify", files[name], "--train", files["train.npz"], "--test", files["test.npz"], *extra), "corrupt"
    )


def test_a_damaged_torchscript_archive_is_refused_by_the_library(files):
    with pytest.raises(PacBayesError, match="corrupt"):
        load_model(files["ts_crc.pt"])
    assert load_model(files["ts.pt"]) is not None  # the intact archive still loads


def test_a_damaged_data_archive_is_refused(files):
    assert_refused(run("data", "info", files["train_crc.pt"]), "corrupt")


# ---------------------------------------------------------------- 3. output locations, checked first
@pytest.mark.parametrize("where", ["under-a-file", "a-directory", "unwritable"])
@pytest.mark.parametrize("command", ["certify", "demo"])
def test_report_location_is_checked_before_computing(files, command, where, no_compute):
    out = {
        "under-a-file": os.path.join(files["a_file"], "report.json"),
        "a-directory": files["a_dir"],
        "unwritable": UNWRITABLE + ".json",
    }[where]
    args = (
        ["certify", files["ts.pt"], "--train", files["train.npz"], "--test", files["test.npz"]]
        if command == "certify"
        else ["demo", "--m", "10", "--workdir", files["a_dir"]]
    )
    assert_refused(run(*args, "--out", out), "--out")


@pytest.mark.parametrize("where", ["under-a-file", "a-directory", "unwritable"])
def test_kernel_output_is_checked_before_computing(files, where, tmp_path, no_compute):
    np.save(tmp_path / "x.npy", np.ones((4, 3)))
    out = {
        "under-a-file": os.path.join(files["a_file"], "K.npy"),
        "a-directory": files["a_dir"],
        "unwritable": UNWRITABLE + ".npy",
    }[where]
    assert_refused(run("kernel", tmp_path / "x.npy", "-o", out), "-o")


@pytest.mark.parametrize("flag, value", [("--cache-dir", "a_file"), ("--cache-dir", "unwritable")])
def test_check_cache_dir_is_checked_before_computing(files, flag, value, tmp_path, no_compute):
    claims = tmp_path / "claims.toml"
    claims.write_text(
        f'[[claim]]\nname = "c"\nmodel = "{files["ts.pt"]}"\ntrain = "{files["train.npz"]}"\n'
        f'test = "{files["test.npz"]}"\nat_most = 1.0\n'
    )
    assert_refused(run("check", claims, flag, files[value] if value in files else UNWRITABLE), flag)


def test_demo_workdir_that_is_a_file_is_refused(files, no_compute):
    assert_refused(run("demo", "--m", "10", "--workdir", files["a_file"]), "--workdir")


def test_kernel_reports_the_path_it_wrote(tmp_path):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(4, 3)))
    out = tmp_path / "K"  # numpy.save(path) would append .npy
    result = run("kernel", tmp_path / "x.npy", "-o", out, "--json", "--quiet")
    assert result.exit_code == 0, result.output
    written = json.loads(result.stdout)["output"]
    assert written == str(out) and np.load(written).shape == (4, 4)  # exactly the path given
    assert not os.path.exists(str(out) + ".npy")


# ---------------------------------------------------------------- 4. numeric options are finite
FINITE_CASES = [  # the non-finite option is the last one of each command
    ["bound", "marginal", "--m", "100", "--log-evidence", "-inf"],
    ["bound", "marginal", "--log-evidence", "-5", "--m", "100", "--delta", "nan"],
    ["bound", "kl-inverse", "--c", "0.1", "--q", "nan"],
    ["bound", "kl-inverse", "--q", "0.1", "--c", "inf"],
    ["certify", "{ts}", "--train", "{train}", "--test", "{test}", "--max-bound", "nan"],
    ["certify", "{ts}", "--train", "{train}", "--test", "{test}", "--max-bound", "inf"],
    ["certify", "{ts}", "--train", "{train}", "--test", "{test}", "--delta", "nan"],
    ["certify", "{ts}", "--train", "{train}", "--test", "{test}", "--corrupt", "nan"],
    ["certify", "{ts}", "--train", "{train}", "--test", "{test}", "--jitter", "nan"],
    ["certify", "{ts}", "--train", "{train}", "--test", "{test}", "--jitter", "inf"],
    ["certify", "{ts}", "--train", "{train}", "--test", "{test}", "--sigma-w", "nan"],
    ["certify", "{ts}", "--train", "{train}", "--test", "{test}", "--prior-split", "nan"],
    ["evidence", "--kernel", "{K}", "--labels", "{y}", "--jitter", "nan"],
    ["evidence", "--kernel", "{K}", "--labels", "{y}", "--jitter", "inf"],
    ["evidence", "--kernel", "{K}", "--labels", "{y}", "--delta-prime", "nan"],
    ["evidence", "--kernel", "{K}", "--labels", "{y}", "--tol", "nan"],
    ["kernel", "{x}", "-o", "{out}", "--sigma-w", "nan"],
    ["kernel", "{x}", "-o", "{out}", "--sigma-w", "inf"],
    ["kernel", "{x}", "-o", "{out}", "--sigma-b", "nan"],
    ["kernel", "{x}", "-o", "{out}", "--sigma-b", "0.1,inf,0.1"],
    ["demo", "--workdir", "{dir}", "--delta", "nan"],
]


@pytest.mark.parametrize("command", FINITE_CASES, ids=lambda c: f"{c[0]}{c[-2]}={c[-1]}")
def test_non_finite_numbers_are_refused_before_anything_runs(files, command, tmp_path, no_compute):
    np.save(tmp_path / "K.npy", np.eye(3))
    np.save(tmp_path / "y.npy", np.array([1.0, -1.0, 1.0]))
    np.save(tmp_path / "x.npy", np.ones((3, 2)))
    args = [
        a.format(
            ts=files["ts.pt"],
            train=files["train.npz"],
            test=files["test.npz"],
            K=tmp_path / "K.npy",
            y=tmp_path / "y.npy",
            x=tmp_path / "x.npy",
            out=tmp_path / "K_out.npy",
            dir=files["a_dir"],
        )
        for a in command
    ]
    result = run(*args)
    assert_refused(result)
    assert "nan" in result.stderr or "inf" in result.stderr
    assert not os.path.exists(tmp_path / "K_out.npy")


# ---------------------------------------------------------------- 5. arrays: container, dtype, emptiness, finiteness
def _save(path, array):
    if path.endswith(".npz"):
        np.savez(path, **array)
    else:
        np.save(path, array)


EVIDENCE_ARRAYS = {
    "kernel-npz": ("K.npz", {"K": np.eye(3)}, None),
    "kernel-strings": ("K.npy", np.array([["1", "0", "0"], ["0", "1", "0"], ["0", "0", "1"]]), None),
    "kernel-bool": ("K.npy", np.eye(3, dtype=bool), None),
    "kernel-nan": ("K.npy", np.array([[1.0, np.nan, 0], [np.nan, 1, 0], [0, 0, 1]]), None),
    "kernel-empty": ("K.npy", np.zeros((0, 0)), None),
    "kernel-scalar": ("K.npy", np.array(3.0), None),
    "kernel-complex": ("K.npy", np.eye(3, dtype=complex), None),
    "labels-npz": (None, None, ("y.npz", {"y": np.ones(3)})),
    "labels-strings": (None, None, ("y.npy", np.array(["1", "-1", "1"]))),
    "labels-inf": (None, None, ("y.npy", np.array([1.0, np.inf, 1.0]))),
}


@pytest.mark.parametrize("case", list(EVIDENCE_ARRAYS))
def test_evidence_arrays_are_validated(case, tmp_path, no_compute):
    kernel_name, kernel, labels = EVIDENCE_ARRAYS[case]
    kernel_path = str(tmp_path / (kernel_name or "K.npy"))
    _save(kernel_path, np.eye(3) if kernel is None else kernel)
    labels_path = str(tmp_path / (labels[0] if labels else "y.npy"))
    _save(labels_path, labels[1] if labels else np.array([1.0, -1.0, 1.0]))
    assert_refused(
        run("evidence", "--kernel", kernel_path, "--labels", labels_path), "kernel" if kernel_name else "labels"
    )


CLASS_LABELS = {  # (labels, --classes, a word the one-line refusal must contain)
    "index-beyond-classes": (np.array([0, 1, 3]), "3", "0..2"),
    "negative-index": (np.array([0, -1, 2]), "3", "0..2"),
    "fractional-index": (np.array([0, 0.5, 2]), "3", "integer"),
    "signs-for-three-classes": (np.array([1.0, -1.0, 1.0]), "3", "0..2"),
    "binary-with-index-2": (np.array([0, 1, 2]), "2", "labels"),
    "one-class": (np.array([0, 0, 0]), "1", "classes"),
}


@pytest.mark.parametrize("case", list(CLASS_LABELS))
def test_class_labels_are_validated_before_any_work(case, tmp_path, no_compute):
    labels, classes, word = CLASS_LABELS[case]
    np.save(tmp_path / "K.npy", np.eye(3))
    np.save(tmp_path / "y.npy", labels)
    result = run("evidence", "--kernel", tmp_path / "K.npy", "--labels", tmp_path / "y.npy", "--classes", classes)
    assert_refused(result, word)


KERNEL_INPUTS = {
    "nan": np.array([[0.0, np.nan], [1.0, 2.0]]),
    "inf": np.array([[0.0, np.inf], [1.0, 2.0]]),
    "empty": np.zeros((0, 3)),
    "no-features": np.zeros((3, 0)),
    "strings": np.array([["0.5", "1"], ["2", "3"]]),
    "complex": np.ones((2, 2), dtype=complex),
    "one-dimensional": np.ones(5),
    "structured": np.zeros(3, dtype=[("a", "f8"), ("b", "f8")]),
}


@pytest.mark.parametrize("case", list(KERNEL_INPUTS))
def test_kernel_inputs_are_validated(case, tmp_path, no_compute):
    np.save(tmp_path / "x.npy", KERNEL_INPUTS[case])
    assert_refused(run("kernel", tmp_path / "x.npy", "-o", tmp_path / "K.npy"), "inputs")
    assert not os.path.exists(tmp_path / "K.npy")


DATA_FILES = {
    "pt-complex-x": lambda: (torch.ones(4, 3, dtype=torch.complex64), torch.tensor([0, 1, 0, 1])),
    "pt-bfloat16-labels": lambda: (torch.ones(4, 3), torch.tensor([0.0, 1.5, 0.0, 1.0], dtype=torch.bfloat16)),
    "pt-string-x": lambda: (["a", "b"], [0, 1]),
    "pt-huge-labels": lambda: (torch.ones(2, 3), torch.tensor([0.0, 1e30])),
    "npz-no-features": lambda: {"x": np.zeros((4, 0)), "y": np.array([0, 1, 0, 1])},
    "npz-nan-labels": lambda: {"x": np.ones((2, 3)), "y": np.array([0.0, np.nan])},
    "npz-complex-x": lambda: {"x": np.ones((2, 3), dtype=complex), "y": np.array([0, 1])},
}


@pytest.mark.parametrize("case", list(DATA_FILES))
def test_data_files_are_validated(case, tmp_path):
    content = DATA_FILES[case]()
    if case.startswith("pt"):
        path = tmp_path / "data.pt"
        torch.save(content, path)
    else:
        path = tmp_path / "data.npz"
        np.savez(path, **content)
    assert_refused(run("data", "info", path))


def test_bfloat16_data_is_converted_not_a_traceback(tmp_path):
    torch.save((torch.ones(4, 3, dtype=torch.bfloat16), torch.tensor([0, 1, 0, 1])), tmp_path / "data.pt")
    result = run("data", "info", tmp_path / "data.pt", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["shape"] == [3]


# ---------------------------------------------------------------- 6. claims: typed values, ERROR rows, relative data
CLAIM_VALUES = [
    ("at_most", '"0.2"'),
    ("at_most", "true"),
    ("at_least", "nan"),
    ("m", '"40"'),
    ("m", "1.5"),
    ("delta", '"0.05"'),
    ("delta", "nan"),
    ("corrupt", '"0.1"'),
    ("seed", "1.5"),
    ("width", '"32"'),
    ("depth", "0"),
    ("bound", "3"),
    ("kind", '"guess"'),
    ("model", "3"),
    ("train", "5"),
    ("architecture", "5"),
]


@pytest.mark.parametrize("key, value", CLAIM_VALUES, ids=[f"{k}={v}" for k, v in CLAIM_VALUES])
def test_claim_values_are_type_checked_naming_claim_and_key(files, key, value, tmp_path, no_compute):
    settings = {
        "model": f'"{files["ts.pt"]}"',
        "train": f'"{files["train.npz"]}"',
        "test": f'"{files["test.npz"]}"',
        "at_most": "1.0",
    }
    if key == "at_least":
        del settings["at_most"]
    settings[key] = value
    text = '[[claim]]\nname = "my claim"\n' + "".join(f"{k} = {v}\n" for k, v in settings.items())
    (tmp_path / "claims.toml").write_text(text)
    assert_refused(run("check", tmp_path / "claims.toml", "--quiet"), "my claim", key)


@pytest.mark.parametrize(
    "text",
    [
        'defaults = 3\n[[claim]]\nname = "c"\nat_most = 1.0\n',
        "claim = [1, 2]\n",
        '[[claim]]\nname = "c"\nat_most = 1.0\ncompare = 3\n',
        '[[claim]]\nname = "c"\ncompare = { op = ">", with = { m = "3" } }\n',
    ],
    ids=["defaults-not-a-table", "claims-not-tables", "two-tests", "compare-with-typed"],
)
def test_malformed_claims_files_are_one_line(text, tmp_path, no_compute):
    (tmp_path / "claims.toml").write_text(text)
    assert_refused(run("check", tmp_path / "claims.toml"))


def test_an_undecodable_claims_file_is_one_line(tmp_path, no_compute):
    (tmp_path / "claims.toml").write_bytes(b'name = "\xff\xfe"\n')
    assert_refused(run("check", tmp_path / "claims.toml"))


def test_a_claims_path_that_is_a_directory_is_one_line(tmp_path, no_compute):
    assert_refused(run("check", tmp_path))


def test_an_erring_claim_is_an_error_row_and_the_others_still_run(files, tmp_path):
    claims = tmp_path / "claims.toml"
    claims.write_text(
        f'[defaults]\ntrain = "{files["train.npz"]}"\ntest = "{files["test.npz"]}"\n'
        f'[[claim]]\nname = "missing model"\nmodel = "absent.pt"\nat_most = 1.0\n'
        f'[[claim]]\nname = "fine"\nmodel = "{files["ts.pt"]}"\nat_most = 1.0\n'
    )
    result = run("check", claims, "--json", "--quiet")
    assert result.exit_code == 2 and "Traceback" not in result.output
    payload = json.loads(result.stdout)
    rows = {row["name"]: row for row in payload["claims"]}
    assert rows["fine"]["passed"] and rows["fine"]["error"] is None
    assert not rows["missing model"]["passed"] and "absent.pt" in rows["missing model"]["error"]
    assert len(result.stderr.strip().splitlines()) == 1
    table = run("check", claims, "--quiet")
    assert "ERROR" in table.stdout and "PASS" in table.stdout and table.exit_code != 0


def test_claim_data_paths_are_relative_to_the_claims_file(files, tmp_path):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    for name in ("train.npz", "test.npz", "ts.pt"):
        shutil.copy(files[name], folder / name)
    (folder / "claims.toml").write_text(
        '[[claim]]\nname = "relative"\nmodel = "ts.pt"\ntrain = "train.npz"\ntest = "test.npz:test"\nat_most = 1.0\n'
    )
    result = run("check", folder / "claims.toml", "--quiet")
    assert result.exit_code == 0, result.output


# ---------------------------------------------------------------- 7. library entry points: own error types
def _certify_case(files, case):
    model = files["model"]
    train, test = files["data"]
    cases = {
        "model-str": ("model.pt", train, test, CertifyOptions()),
        "train-tuple": (model, (train.x, train.labels), test, CertifyOptions()),
        "test-none": (model, train, None, CertifyOptions()),
        "options-dict": (model, train, test, {"delta": 0.05}),
        "delta-nan": (model, train, test, CertifyOptions(delta=float("nan"))),
        "delta-str": (model, train, test, CertifyOptions(delta="0.05")),
        "delta-none": (model, train, test, CertifyOptions(delta=None)),
        "corrupt-none": (model, train, test, CertifyOptions(corrupt=None)),
        "seed-str": (model, train, test, CertifyOptions(seed="0")),
        "bounds-str": (model, train, test, CertifyOptions(bounds="marginal")),
        "quiet-str": (model, train, test, CertifyOptions(quiet="no")),
        "negative-classes-str": (model, train, test, CertifyOptions(negative_classes="0,1")),
    }
    return cases[case]


@pytest.mark.parametrize(
    "case",
    [
        "model-str",
        "train-tuple",
        "test-none",
        "options-dict",
        "delta-nan",
        "delta-str",
        "delta-none",
        "corrupt-none",
        "seed-str",
        "bounds-str",
        "quiet-str",
        "negative-classes-str",
    ],
)
def test_certify_raises_its_own_errors(files, case):
    with pytest.raises(PacBayesError) as caught:
        certify(*_certify_case(files, case))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "case, kwargs",
    [
        ("model-str", {"model": "model.pt"}),
        ("train-tuple", {"train": ("x", "y")}),
        ("test-tuple", {"test": ("x", "y")}),
        ("at-most-true", {"at_most": True}),
        ("at-most-nan", {"at_most": float("nan")}),
        ("delta-nan", {"delta": float("nan")}),
        ("m-str", {"m": "5"}),
        ("bound-int", {"bound": 3}),
        ("cache-dir-int", {"cache_dir": 5}),
        ("settings-dict", {"settings": {}}),
        ("settings-of-another-family", {"settings": SubspaceSettings()}),
    ],
)
def test_assert_certified_raises_its_own_errors(files, case, kwargs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train, test = files["data"]
    arguments = {"model": files["model"], "train": train, "test": test, "at_most": 1.0, "cache_dir": False}
    arguments.update(kwargs)
    with pytest.raises(PacBayesError):
        assert_certified(arguments.pop("model"), arguments.pop("train"), **arguments)
    assert os.listdir(tmp_path) == []  # no cache folder "5" or anything else was created


def test_assert_certified_checks_its_cache_folder_before_computing(files, no_compute):
    train, test = files["data"]
    with pytest.raises(PacBayesError, match="cache_dir"):
        assert_certified(files["model"], train, test=test, at_most=1.0, cache_dir=files["a_file"])


@pytest.mark.parametrize(
    "case, kwargs",
    [
        ("model-str", {"model": "model.pt"}),
        ("train-tuple", {"train": ("x", "y")}),
        ("test-tuple", {"test": ("x", "y")}),
        ("delta-nan", {"delta": float("nan")}),
        ("delta-none", {"delta": None}),
        ("every-true", {"every": True}),
        ("overhead-str", {"overhead": "0.05"}),
        ("max-checkpoints-true", {"max_checkpoints": True}),
        ("callback-int", {"callback": 5}),
        ("seed-float", {"seed": 1.5}),
        ("settings-dict", {"settings": {}}),
        ("settings-twice", {"settings": (MarginalSettings(), MarginalSettings())}),
    ],
)
def test_bound_monitor_raises_its_own_errors(files, case, kwargs):
    train, test = files["data"]
    arguments = {"model": files["model"], "train": train, "test": test}
    arguments.update(kwargs)
    with pytest.raises(PacBayesError):
        BoundMonitor(arguments.pop("model"), arguments.pop("train"), **arguments)


# ---------------------------------------------------------------- 8. JSON without inf/NaN, atomic writes, SIGINT
def test_emit_writes_null_and_notes_for_non_finite_values(capsys):
    emit({"a": float("inf"), "b": [1.0, float("nan")], "c": {"d": -math.inf}, "e": 2.0}, True, "")
    payload = json.loads(capsys.readouterr().out)
    assert payload["a"] is None and payload["b"] == [1.0, None] and payload["c"] == {"d": None}
    assert payload["e"] == 2.0
    assert set(payload["notes"]["non_finite"]) == {"a", "b[1]", "c.d"}


def test_write_json_atomically_writes_null_and_notes(tmp_path):
    path = tmp_path / "r.json"
    write_json_atomically({"bound": float("nan"), "ok": 1}, str(path))
    payload = json.loads(path.read_text())
    assert payload["bound"] is None and payload["notes"]["non_finite"] == {"bound": "nan"}


def test_a_failed_atomic_write_leaves_no_temporary_file_and_the_old_report(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{"old": true}')
    with pytest.raises(TypeError):
        write_json_atomically({"value": object()}, str(path))
    assert os.listdir(tmp_path) == ["r.json"] and json.loads(path.read_text()) == {"old": True}


def test_an_atomic_write_keeps_the_mode_of_the_file_it_replaces(tmp_path):
    path = tmp_path / "r.json"
    path.write_text("{}")
    os.chmod(path, 0o644)
    write_json_atomically({"a": 1}, str(path))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_a_new_atomic_write_gets_the_umask_default_mode(tmp_path):
    mask = os.umask(0o022)
    try:
        write_json_atomically({"a": 1}, str(tmp_path / "new.json"))
    finally:
        os.umask(mask)
    assert stat.S_IMODE(os.stat(tmp_path / "new.json").st_mode) == 0o644


def test_ctrl_c_exits_130_with_one_line(monkeypatch):
    import pacbayes.bounds

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pacbayes.bounds, "marginal_likelihood_bound", interrupted)
    result = run("bound", "marginal", "--log-evidence", "-5", "--m", "100")
    assert result.exit_code == 130
    assert result.stderr.strip().splitlines() == ["pacbayes: interrupted"]


def test_a_real_sigint_exits_130_with_one_line():
    code = (
        "import os, signal, time\n"
        "import pacbayes.bounds\n"
        "def slow(*a, **k):\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(30)\n"
        "pacbayes.bounds.marginal_likelihood_bound = slow\n"
        "from pacbayes.cli import main\n"
        "main(['bound', 'marginal', '--log-evidence', '-5', '--m', '100'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.strip().splitlines() == ["pacbayes: interrupted"] and "Traceback" not in proc.stderr
