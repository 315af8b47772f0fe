"""Sealed inputs: an output never replaces an input, only regular files are read and every read is
bounded, refusals come before any work, and hostile files or arguments give one line (exit status 2),
never a traceback or a hang.

Tiny data throughout (24 training and 20 test points of 784 features, a linear model that fits them).
Reads that would block (FIFOs, /dev/zero) run in one subprocess whose timeout is the hang guard.
"""

import gzip
import json
import os
import pickle
import resource
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
import torch
from test_hostile_input import Executed, assert_refused, files, no_compute, run  # noqa: F401  (registers the fixtures used below)
from torch import nn

from pacbayes import bounds
from pacbayes.certification import CertifyOptions, certify
from pacbayes.data import binarise, from_arrays, load_dataset, read_idx
from pacbayes.data.cifar import read_cifar_batch
from pacbayes.errors import InputError, ModelLoadError, PacBayesError
from pacbayes.families.subspace import SubspaceSettings
from pacbayes.memory import free_bytes
from pacbayes.models import load_model
from pacbayes.subspace import load_subspace_model, save_subspace_model, train_subspace_model

MAX_SEED = 2**63 - 1  # torch's generators take a signed 64-bit seed
MAX_LEVELS = 4096  # pacbayes.subspace.training.MAX_LEVELS
TOO_LONG = "n" * 300  # over every common file system's 255-byte name limit
DEEP = 5000  # nesting that exhausts a recursive parser's stack


def _executed(*args, **kwargs):
    raise Executed("the computation ran")


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def originals(request, tmp_path_factory):
    """The hostile-input fixture's tiny data and linear model (as model.pt, its weights as init.pt), and
    small arrays for the kernel and evidence commands, in one folder."""
    hostile, root = request.getfixturevalue("files"), tmp_path_factory.mktemp("seal")
    for name, target in (("train.npz", "train.npz"), ("test.npz", "test.npz"), ("ts.pt", "model.pt")):
        shutil.copy(hostile[name], root / target)
    shutil.copy(hostile["sd.pt"], root / "init.pt")
    np.save(root / "x.npy", np.load(root / "train.npz")["x"][:5].astype(np.float64))
    np.save(root / "K.npy", np.eye(4) + 0.5)
    np.save(root / "y.npy", np.array([1.0, -1.0, 1.0, -1.0]))
    return root


@pytest.fixture
def work(originals, tmp_path):
    """A fresh copy of the tiny files for one test (a test that fails may overwrite them)."""
    for entry in originals.iterdir():
        shutil.copy(entry, tmp_path / entry.name)
    return tmp_path


def _fill(args, root):
    return [str(a).format(root=root) for a in args]


CERTIFY = ["certify", "{root}/model.pt", "--train", "{root}/train.npz", "--test", "{root}/test.npz", "--quiet"]


# ---------------------------------------------------------------- an output is never one of the inputs
OVERWRITES = {  # command, the file it must leave alone, a word of the refusal
    "certify-out-model": (CERTIFY + ["--out", "{root}/model.pt"], "model.pt", "MODEL"),
    "certify-out-train": (CERTIFY + ["--out", "{root}/train.npz"], "train.npz", "--train"),
    "certify-out-test": (CERTIFY + ["--out", "{root}/test.npz"], "test.npz", "--test"),
    "certify-out-symlink": (CERTIFY + ["--out", "{root}/alias.pt"], "model.pt", "MODEL"),
    "certify-out-hard-link": (CERTIFY + ["--out", "{root}/hard.pt"], "model.pt", "MODEL"),
    "certify-out-init": (
        CERTIFY + ["--bounds", "dziugaite-roy", "--init", "{root}/init.pt", "--out", "{root}/init.pt"],
        "init.pt",
        "--init",
    ),
    "certify-ledger-model": (CERTIFY + ["--attempts-ledger", "{root}/model.pt"], "model.pt", "MODEL"),
    "certify-ledger-train": (CERTIFY + ["--attempts-ledger", "{root}/train.npz"], "train.npz", "--train"),
    "kernel-output-inputs": (["kernel", "{root}/x.npy", "-o", "{root}/x.npy"], "x.npy", "INPUTS"),
    "kernel-output-model": (
        ["kernel", "{root}/x.npy", "--model", "{root}/model.pt", "-o", "{root}/model.pt"],
        "model.pt",
        "--model",
    ),
    "export-output-data": (
        ["data", "export", "{root}/train.npz", "-o", "{root}/train.npz", "--labels", "{root}/labels.npy"],
        "train.npz",
        "DATA",
    ),
    "export-labels-data": (
        ["data", "export", "{root}/train.npz:train", "-o", "{root}/xs.npy", "--labels", "{root}/train.npz"],
        "train.npz",
        "DATA",
    ),
}


@pytest.mark.parametrize("case", list(OVERWRITES))
@pytest.mark.usefixtures("no_compute")
def test_an_output_that_is_an_input_is_refused_before_any_work(case, work):
    args, protected, word = OVERWRITES[case]
    os.symlink(work / "model.pt", work / "alias.pt")
    os.link(work / "model.pt", work / "hard.pt")
    before = (work / protected).read_bytes()
    assert_refused(run(*_fill(args, work)), word, "destroy")
    assert (work / protected).read_bytes() == before


@pytest.mark.usefixtures("no_compute")
def test_the_report_is_not_written_over_the_ledger(work):
    result = run(*_fill(CERTIFY, work), "--attempts-ledger", work / "ledger.jsonl", "--out", work / "ledger.jsonl")
    assert_refused(result, "--attempts-ledger")
    assert not (work / "ledger.jsonl").exists()


@pytest.mark.usefixtures("no_compute")
def test_the_demo_report_is_not_written_over_the_demo_model(work):
    assert_refused(run("demo", "--workdir", work / "demo", "--out", work / "demo" / "model.pt"), "demo's trained model")


# ---------------------------------------------------------------- only regular files are read (hang guard)
_CHILD = """
import json, sys
from click.testing import CliRunner
from pacbayes.cli import main
outcomes = {}
for name, args in json.loads(sys.argv[1]).items():
    result = CliRunner().invoke(main, args)
    outcomes[name] = [result.exit_code, result.stderr]
print(json.dumps(outcomes))
"""

SPECIAL_FILES = {
    "data-info-npz-fifo": ["data", "info", "{root}/fifo.npz"],
    "data-info-pt-fifo": ["data", "info", "{root}/fifo.pt"],
    "data-info-npz-dev-zero": ["data", "info", "{root}/zero.npz"],
    "certify-train-fifo": CERTIFY[:3] + ["{root}/fifo.npz"] + CERTIFY[4:],
    "kernel-inputs-fifo": ["kernel", "{root}/fifo.npy", "-o", "{root}/K_out.npy"],
    "kernel-inputs-dev-zero": ["kernel", "{root}/zero.npy", "-o", "{root}/K_out.npy"],
    "evidence-kernel-fifo": ["evidence", "--kernel-file", "{root}/fifo.npy", "--labels", "{root}/y.npy"],
    "evidence-labels-fifo": ["evidence", "--kernel-file", "{root}/K.npy", "--labels", "{root}/fifo.npy"],
    "verify-report-fifo": ["verify", "{root}/fifo.json"],
    "verify-model-fifo": ["verify", "{root}/report.json", "{root}/fifo.pt"],
    "verify-recorded-model-dev-zero": ["verify", "{root}/zero_model_report.json"],
    "check-claims-fifo": ["check", "{root}/fifo.toml"],
}


@pytest.fixture(scope="module")
def special_outcomes(originals, tmp_path_factory):
    """Every SPECIAL_FILES command run in one subprocess: (exit status, stderr) by case, or "hung"."""
    root = tmp_path_factory.mktemp("special")
    for entry in originals.iterdir():
        shutil.copy(entry, root / entry.name)
    for suffix in ("npz", "pt", "npy", "json", "toml"):
        os.mkfifo(root / f"fifo.{suffix}")
    for suffix in ("npz", "npy"):
        os.symlink("/dev/zero", root / f"zero.{suffix}")
    result = run(*_fill(CERTIFY, root), "--out", root / "report.json")
    assert result.exit_code == 0, result.output
    report = json.loads((root / "report.json").read_text())
    (root / "zero_model_report.json").write_text(json.dumps(dict(report, model_path="/dev/zero")))
    cases = {name: _fill(args, root) for name, args in SPECIAL_FILES.items()}
    try:
        child = subprocess.run(
            [sys.executable, "-c", _CHILD, json.dumps(cases)], capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired:
        return "hung"
    assert child.returncode == 0, child.stderr
    return json.loads(child.stdout)


@pytest.mark.parametrize("case", list(SPECIAL_FILES))
def test_fifos_and_devices_are_refused_without_blocking(special_outcomes, case):
    assert special_outcomes != "hung", "a read blocked on a FIFO or never ended on /dev/zero"
    code, stderr = special_outcomes[case]
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("pacbayes: error: "), (code, stderr)
    assert "regular file" in lines[0] or "device" in lines[0], lines[0]


@pytest.mark.parametrize("command", [CERTIFY, ["kernel", "{root}/x.npy"]], ids=["certify-out", "kernel-output"])
@pytest.mark.usefixtures("no_compute")
def test_an_output_onto_a_fifo_is_refused(command, work):
    os.mkfifo(work / "out.fifo")
    flag = "--out" if command[0] == "certify" else "-o"
    assert_refused(run(*_fill(command, work), flag, work / "out.fifo"), "FIFO")
    assert not (work / "out.fifo").is_file()


# ---------------------------------------------------------------- refused before any work
@pytest.mark.parametrize(
    "args, flag",
    [
        (CERTIFY + ["--out", "{root}/" + TOO_LONG + ".json"], "--out"),
        (CERTIFY + ["--out", "{root}/" + TOO_LONG + "/report.json"], "--out"),
        (CERTIFY + ["--attempts-ledger", "{root}/" + TOO_LONG], "--attempts-ledger"),
        (["kernel", "{root}/x.npy", "-o", "{root}/" + TOO_LONG + ".npy"], "-o/--output"),
        (
            ["data", "export", "{root}/train.npz", "-o", "{root}/x_out.npy", "--labels", "{root}/" + TOO_LONG],
            "--labels",
        ),
        (["demo", "--workdir", "{root}/demo", "--out", "{root}/" + TOO_LONG], "--out"),
        (["demo", "--workdir", "{root}/" + TOO_LONG], "--workdir"),
    ],
    ids=["certify-out", "certify-out-folder", "ledger", "kernel", "export-labels", "demo-out", "demo-workdir"],
)
@pytest.mark.usefixtures("no_compute")
def test_a_name_too_long_for_the_file_system_is_refused_first(args, flag, work):
    assert_refused(run(*_fill(args, work)), flag, "limit")


BAD_OPTIONS = {  # (arguments, a word of the refusal)
    "evidence-samples-0": (
        ["evidence", "--kernel-file", "{root}/K.npy", "--labels", "{root}/y.npy", "--samples", "0"],
        "--samples",
    ),
    "evidence-samples-negative": (
        ["evidence", "--kernel-file", "{root}/K.npy", "--labels", "{root}/y.npy", "--importance-samples", "-5"],
        "--importance-samples",
    ),
    "kernel-samples-0": (
        ["kernel", "{root}/x.npy", "--model", "{root}/model.pt", "--kernel-samples", "0", "-o", "{root}/K_out.npy"],
        "--kernel-samples",
    ),
    "certify-seed-2^63": (CERTIFY + ["--seed", str(2**63)], "--seed"),
    "certify-seed-2^64+1": (CERTIFY + ["--seed", str(2**64 + 1)], "--seed"),
    "certify-seed-negative": (CERTIFY + ["--seed", "-1"], "--seed"),
    "evidence-seed-2^64": (
        ["evidence", "--kernel-file", "{root}/K.npy", "--labels", "{root}/y.npy", "--seed", str(2**64)],
        "--seed",
    ),
    "kernel-seed-2^63": (["kernel", "{root}/x.npy", "-o", "{root}/K_out.npy", "--seed", str(2**63)], "--seed"),
    "export-seed-2^70": (
        [
            "data",
            "export",
            "{root}/train.npz",
            "-o",
            "{root}/a.npy",
            "--labels",
            "{root}/b.npy",
            "--m",
            "5",
            "--seed",
            str(2**70),
        ],
        "--seed",
    ),
    "demo-seed-2^63": (["demo", "--workdir", "{root}/demo", "--seed", str(2**63)], "--seed"),
    "certify-device-meta": (CERTIFY + ["--device", "meta"], "meta"),
    "certify-device-mps": (CERTIFY + ["--device", "mps"], "mps"),
    "certify-device-unknown": (CERTIFY + ["--device", "tpu9"], "--device"),
    "certify-device-missing-gpu": (CERTIFY + ["--device", "cuda:97"], "cuda"),
    "kernel-device-meta": (["kernel", "{root}/x.npy", "-o", "{root}/K_out.npy", "--device", "meta"], "meta"),
    "evidence-device-mps": (
        ["evidence", "--kernel-file", "{root}/K.npy", "--labels", "{root}/y.npy", "--device", "mps"],
        "mps",
    ),
    "subspace-levels-1e9": (
        CERTIFY + ["--bounds", "subspace", "--subspace-dim", "5", "--subspace-levels", "1e9"],
        "--subspace-levels",
    ),
    "subspace-levels-0": (
        CERTIFY + ["--bounds", "subspace", "--subspace-dim", "5", "--subspace-levels", "0,4"],
        "--subspace-levels",
    ),
    "bounds-twice": (CERTIFY + ["--bounds", "marginal,marginal"], "marginal more than once"),
    "bounds-twice-among-others": (CERTIFY + ["--bounds", "marginal,subspace,marginal"], "marginal more than once"),
    "demo-m-1": (["demo", "--workdir", "{root}/demo", "--m", "1"], "--m"),
    "kwargs-nested": (
        CERTIFY + ["--architecture", "pacbayes.demo:demo_network", "--kwargs", "[" * DEEP + "]" * DEEP],
        "--kwargs",
    ),
}


@pytest.mark.parametrize("case", list(BAD_OPTIONS))
@pytest.mark.usefixtures("no_compute")
def test_bad_options_are_refused_before_any_work(case, work):
    args, word = BAD_OPTIONS[case]
    assert_refused(run(*_fill(args, work)), word)
    assert not (work / "K_out.npy").exists() and not (work / "demo").exists()


@pytest.fixture
def no_memory(monkeypatch):
    """``ulimit -v`` as if this process could map nothing more."""
    import pacbayes.memory

    monkeypatch.setattr(pacbayes.memory.resource, "getrlimit", lambda kind: (1 << 20, resource.RLIM_INFINITY))


def test_free_memory_honours_the_address_space_limit(no_memory):
    assert free_bytes(torch.device("cpu")) == 0


def test_a_kernel_beyond_the_address_space_limit_is_refused_before_it_is_computed(work, no_memory, monkeypatch):
    import pacbayes.kernels.compiled

    monkeypatch.setattr(pacbayes.kernels.compiled, "fill_kernel", _executed)
    assert_refused(run("kernel", work / "x.npy", "-o", work / "K_out.npy", "--quiet"), "needs about")
    assert not (work / "K_out.npy").exists()


def test_certify_refuses_evidence_that_cannot_fit_before_the_kernel_or_the_ledger(work, no_memory, monkeypatch):
    import pacbayes.kernels

    for kernel in ("FullyConnectedNNGP", "ConvolutionalNNGP", "MonteCarloNNGP"):
        monkeypatch.setattr(getattr(pacbayes.kernels, kernel), "matrix", _executed)
    result = run(*_fill(CERTIFY, work), "--attempts-ledger", work / "ledger.jsonl")
    assert_refused(result, "needs about")
    assert not (work / "ledger.jsonl").exists() or not (work / "ledger.jsonl").read_text().strip()


@pytest.mark.parametrize(
    "levels, dim",
    [((10**9,), 5), ((0, 4), 5), ((4, 4), 5), ((4.5,), 5), ("4", 5), ((MAX_LEVELS + 1,), 5), ((MAX_LEVELS,), 10**12)],
    ids=["1e9", "zero", "twice", "fraction", "string", "above-max", "no-memory"],
)
def test_the_level_grid_is_checked_before_training(levels, dim, monkeypatch):
    import pacbayes.subspace.training

    monkeypatch.setattr(pacbayes.subspace.training, "fit_subspace", _executed)
    with pytest.raises(InputError):
        pacbayes.subspace.training.level_grid(levels, dim)
    with pytest.raises(InputError):
        train_subspace_model(
            nn.Linear(8, 1), torch.zeros(4, 8), torch.tensor([0, 1, 0, 1]), SubspaceSettings(dim=dim, levels=levels)
        )


# ---------------------------------------------------------------- hostile files: one line, no traceback
def test_deeply_nested_report_json_is_one_line(work):
    (work / "deep.json").write_text("[" * DEEP + "]" * DEEP)
    assert_refused(run("verify", work / "deep.json"), "deep")


@pytest.mark.parametrize(
    "text",
    ["a = " + "[" * DEEP + "]" * DEEP, "a = " + "{ b = " * DEEP + "1" + " }" * DEEP],
    ids=["arrays", "inline-tables"],
)
def test_deeply_nested_claims_toml_is_one_line(text, work):
    (work / "claims.toml").write_text(text + "\n")
    assert_refused(run("check", work / "claims.toml"), "deep")


def _idx(path, dims, payload=b"", compress=False):
    raw = bytes([0, 0, 0x08, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload
    path.write_bytes(gzip.compress(raw) if compress else raw)


@pytest.mark.parametrize(
    "dims, payload, compress",
    [
        ((2**31, 2**31, 4), b"", False),  # 2^64 bytes: int64 arithmetic wraps to 0
        ((2**32 - 1,) * 4, b"\0" * 16, False),
        ((60000, 28, 2**31), b"\0" * 16, False),
        ((60000, 28, 2**31), b"\0" * 16, True),  # more than deflate could hold in the file
    ],
    ids=["wraps-to-zero", "overflows", "exceeds-file", "exceeds-gzip"],
)
def test_idx_headers_whose_size_overflows_or_exceeds_the_file_are_refused(dims, payload, compress, tmp_path):
    _idx(tmp_path / "a.idx", dims, payload, compress)
    with pytest.raises(InputError, match="idx header promises"):
        read_idx(tmp_path / "a.idx")


def test_an_idx_directory_with_a_lying_header_is_one_line(tmp_path):
    _idx(tmp_path / "t10k-images-idx3-ubyte", (2**31, 2**31, 4))
    _idx(tmp_path / "t10k-labels-idx1-ubyte", (3,), b"\0\1\2")
    assert_refused(run("data", "info", tmp_path), "idx header")


_NUMPY_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]


class _Allocates:
    """Pickles to a numpy call that allocates ``shape`` before any data is read."""

    def __init__(self, via_reconstruct):
        self.via_reconstruct = via_reconstruct

    def __reduce__(self):
        shape = (10**13,)
        return (_NUMPY_RECONSTRUCT, (np.ndarray, shape, b"b")) if self.via_reconstruct else (np.ndarray, (shape,))


@pytest.mark.parametrize("via_reconstruct", [True, False], ids=["reconstruct", "ndarray"])
def test_a_cifar_pickle_that_allocates_terabytes_is_refused(via_reconstruct, tmp_path):
    with open(tmp_path / "data_batch_1", "wb") as stream:
        pickle.dump({"data": _Allocates(via_reconstruct), "labels": [0]}, stream, protocol=2)
    with pytest.raises(InputError, match="allocates"):
        read_cifar_batch(tmp_path / "data_batch_1")
    assert_refused(run("data", "info", tmp_path), "allocates")


def test_a_single_array_named_npz_is_one_line(work):
    shutil.copy(work / "x.npy", work / "single.npz")
    assert_refused(run("data", "info", work / "single.npz"), "one .npy array")


@pytest.fixture(scope="module")
def subspace_file(tmp_path_factory):
    """A small compressed subspace model file and its architecture."""
    torch.manual_seed(0)
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    y = (x[:, 0] > 0).long()
    net = nn.Sequential(nn.Linear(8, 4), nn.Tanh(), nn.Linear(4, 1))
    compressed = train_subspace_model(net, x, y, SubspaceSettings(dim=6, levels=(4,), epochs=2, qat_epochs=0), seed=0)
    path = tmp_path_factory.mktemp("subspace") / "sub.pt"
    save_subspace_model(compressed, path)
    return path, net


METADATA_EDITS = {
    "dim-string": {"dim": "x"},
    "dim-negative": {"dim": -3},
    "seed-string": {"seed": "x"},
    "seed-beyond-2^63": {"seed": 2**70},
    "levels-string": {"levels": "4"},
    "parameters-number": {"parameters": 5},
    "parameters-not-pairs": {"parameters": [[1, 2]]},
    "code-bits-string": {"code_bits": "x"},
    "configurations-zero": {"configurations": 0},
    "train-error-string": {"train_error": "x"},
    "origin-number": {"origin": 3},
    "learned-origin-bad-split": {
        "origin": {"kind": "data-dependent", "prior_split": "half", "prior_points": 1, "bound_points": 1}
    },
    "metadata-list": [1],
    "metadata-deep": "deep",
}


@pytest.mark.parametrize("case", list(METADATA_EDITS))
def test_subspace_metadata_of_the_wrong_type_is_refused(case, subspace_file, tmp_path):
    path, net = subspace_file
    content = torch.load(path, weights_only=True)
    edit = METADATA_EDITS[case]
    if edit == "deep":
        content["metadata"] = "[" * DEEP + "]" * DEEP
    elif isinstance(edit, dict):
        content["metadata"] = json.dumps({**json.loads(content["metadata"]), **edit})
    else:
        content["metadata"] = json.dumps(edit)
    torch.save(content, tmp_path / "bad.pt")
    with pytest.raises(PacBayesError):
        load_subspace_model(tmp_path / "bad.pt", net)


@pytest.mark.parametrize("part, value", [("message", "abc"), ("theta0", 3)])
def test_subspace_tensors_of_the_wrong_type_are_refused(part, value, subspace_file, tmp_path):
    path, net = subspace_file
    content = torch.load(path, weights_only=True)
    torch.save({**content, part: value}, tmp_path / "bad.pt")
    with pytest.raises(ModelLoadError, match="corrupt"):
        load_subspace_model(tmp_path / "bad.pt", net)


@pytest.mark.parametrize("kind", ["meta", "sparse"])
def test_a_subspace_origin_without_dense_values_is_refused(kind, subspace_file, tmp_path):
    path, net = subspace_file
    content = torch.load(path, weights_only=True)
    theta0 = content["theta0"].to("meta") if kind == "meta" else content["theta0"].to_sparse()
    torch.save({**content, "theta0": theta0}, tmp_path / "bad.pt")
    with pytest.raises(ModelLoadError, match=f"'theta0' is a {kind} tensor"):
        load_subspace_model(tmp_path / "bad.pt", net)


def test_ctrl_c_while_the_package_imports_is_one_line():
    """SIGINT while a command imports torch (seconds; the command line itself loads without it):
    ``pacbayes: interrupted``, status 130, no traceback."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; print('started', flush=True); time.sleep(0.3); "
            "from pacbayes.cli import main; sys.exit(main())",
            "data",
            "info",
            "mnist-embedded",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout.readline().strip() == "started"
    time.sleep(0.6)  # past the sleep and the command line's own imports, inside torch's
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=120)
    if child.returncode == 0:
        pytest.skip("the imports finished before the signal arrived")
    assert child.returncode == 130 and stderr.strip() == "pacbayes: interrupted", (child.returncode, stderr)


def test_the_demo_refuses_one_training_point_before_training(monkeypatch):
    import pacbayes.demo

    monkeypatch.setattr(pacbayes.demo, "train_to_zero_error", _executed)
    with pytest.raises(InputError, match="m must be at least 2"):
        pacbayes.demo.run_demo(m=1, workdir="unused")


@pytest.fixture
def hang_guard():
    """Fail, rather than block forever, a test whose read waits on a FIFO (SIGALRM interrupts it)."""

    def hung(signum, frame):
        raise AssertionError("a read blocked on a FIFO")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("damage", ["deep", "fifo"])
def test_a_deep_or_fifo_cache_entry_is_recomputed_not_a_traceback_or_a_hang(
    damage, library, tmp_path, monkeypatch, hang_guard
):
    import pacbayes.report_cache
    import pacbayes.testing

    class Fresh:
        def to_dict(self):
            return {"fresh": True}

    monkeypatch.setattr(pacbayes.report_cache, "certify", lambda *a, **k: Fresh())
    pacbayes.testing.cached_report(*library, CertifyOptions(), cache_dir=tmp_path)
    (entry,) = tmp_path.glob("*.json")
    entry.unlink()
    if damage == "deep":
        entry.write_text("[" * DEEP + "]" * DEEP)
    else:
        os.mkfifo(entry)
    with pytest.warns(pacbayes.testing.CacheWarning, match="corrupt"):
        report, cached = pacbayes.testing.cached_report(*library, CertifyOptions(), cache_dir=tmp_path)
    assert report == {"fresh": True} and not cached


# ---------------------------------------------------------------- library calls with wrong types
@pytest.fixture(scope="module")
def library(originals):
    from pacbayes.models import load_model

    return (
        load_model(str(originals / "model.pt")),
        load_dataset(originals / "train.npz"),
        load_dataset(originals / "test.npz"),
    )


LIBRARY_CALLS = {  # call, a word the InputError must contain
    "marginal-string-delta": (lambda: bounds.marginal_likelihood_bound(-5.0, 100, "0.05"), "delta"),
    "marginal-string-m": (lambda: bounds.marginal_likelihood_bound(-5.0, "abc", 0.05), "m"),
    "kl-inverse-none": (lambda: bounds.kl_inverse_upper(None, 0.2), "number"),
    "kl-inverse-string": (lambda: bounds.kl_inverse_upper("0.1", 0.2), "string"),
    "load-dataset-number": (lambda: load_dataset(5), "spec"),
    "load-dataset-none": (lambda: load_dataset(None), "spec"),
    "from-arrays-info-number": (lambda: from_arrays(np.ones((3, 2)), np.array([0, 1, 0]), name="a", info=5), "info"),
}


@pytest.mark.parametrize("case", list(LIBRARY_CALLS))
def test_library_calls_with_wrong_types_raise_input_error(case):
    call, word = LIBRARY_CALLS[case]
    with pytest.raises(InputError, match=word):
        call()


CERTIFY_OPTIONS = {  # options that certify must refuse before any work, a word of the refusal
    "seed-beyond-2^63": (CertifyOptions(seed=2**64), "seed"),
    "seed-2^63": (CertifyOptions(seed=MAX_SEED + 1), "seed"),
    "device-meta": (CertifyOptions(device="meta"), "meta"),
    "device-mps": (CertifyOptions(device="mps"), "mps"),
    "bounds-twice": (CertifyOptions(bounds=("marginal", "marginal")), "more than once"),
    "subspace-levels-1e9": (
        CertifyOptions(bounds=("subspace",), subspace=SubspaceSettings(dim=5, levels=(1e9,))),
        "levels",
    ),
}


@pytest.mark.parametrize("case", list(CERTIFY_OPTIONS))
def test_certify_refuses_bad_options_before_any_work(case, library, monkeypatch):
    import pacbayes.certification

    options, word = CERTIFY_OPTIONS[case]
    monkeypatch.setattr(pacbayes.certification, "prepare_data", _executed)
    with pytest.raises(InputError, match=word):
        certify(*library, options)


# ---------------------------------------------------------------- messages say what is wrong
@pytest.mark.parametrize("value", [1e39, -1e39])
def test_a_finite_value_beyond_float32_is_not_called_nan(value, work):
    x = np.ones((4, 3))
    x[1, 2] = value
    np.savez(work / "big.npz", x=x, y=np.array([0, 1, 0, 1]))
    result = run("data", "info", work / "big.npz")
    assert_refused(result, "float32", "1e+39")
    assert "NaN" not in result.stderr


@pytest.mark.parametrize(
    "call, arguments",
    [
        pytest.param(load_model, (5,), id="load_model-int-path"),
        pytest.param(binarise, (None,), id="binarise-none"),
        pytest.param(bounds.marginal_likelihood_bound, ("abc", 10, 0.05), id="marginal-bound-string"),
    ],
)
def test_library_entry_points_name_a_wrong_type(call, arguments):
    with pytest.raises(InputError):
        call(*arguments)


@pytest.mark.parametrize("recorded", [[1], 0, {"path": "m.pt"}])
def test_a_recorded_model_path_that_is_not_a_path_is_one_line(tmp_path, recorded):
    """verify never hashes stdin (``open(0)``) or a list as the recorded model."""
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"model_path": recorded, "provenance": {}, "bounds": []}))
    assert_refused(run("verify", report), "model_path must be a file path")


def test_a_corrupt_compressed_npz_is_one_line(tmp_path):
    """Deflate data that zlib refuses (not only a CRC mismatch) is one line, not a zlib.error traceback."""
    path = tmp_path / "data.npz"
    np.savez_compressed(path, x=np.random.default_rng(0).normal(size=(50, 8)), y=np.arange(50) % 2)
    raw = bytearray(path.read_bytes())
    start = raw.index(b"x.npy") + 5 + 16  # into x's deflate stream, past its first block header
    raw[start : start + 8] = b"\xff" * 8
    path.write_bytes(bytes(raw))
    with pytest.raises(zlib.error):
        np.load(path)["x"]
    assert_refused(run("data", "info", path))


def test_a_claims_file_that_is_a_fifo_is_refused_without_blocking(tmp_path, hang_guard):
    from pacbayes.claims import load_claims

    fifo = tmp_path / "claims.toml"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file|FIFO"):
        load_claims(str(fifo))


def test_the_attempt_key_takes_numpy_settings():
    from pacbayes.attempts import _canonical

    assert _canonical({"levels": np.array([4, 8]), "dim": np.int64(3), "lr": np.float64(2.0)}) == {
        "levels": [4, 8],
        "dim": 3,
        "lr": 2,
    }
