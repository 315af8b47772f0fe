"""The attempts ledger: one mechanism for every family, keyed on the whole training set and the
statement (never on seeds), appended under a lock, a cut last line recovered, bad lines refused
in one line, and an unusable ledger refused before any work.

Everything runs on tiny data (40 training points of 6 features, a linear model that separates them,
m = 20 of them per run) and the cheapest settings of each family.
"""

import errno
import fcntl
import json
import multiprocessing
import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from pacbayes import attempts
from pacbayes.attempts import record_attempt
from pacbayes.bounds import series_delta
from pacbayes.certification import CertifyOptions, certify, delta_shares
from pacbayes.cli import main
from pacbayes.data import from_arrays
from pacbayes.errors import PacBayesError
from pacbayes.families.dziugaite_roy import DziugaiteRoySettings
from pacbayes.families.marginal import OTHER_ATTEMPTS, MarginalSettings
from pacbayes.families.subspace import SubspaceSettings

FEATURES = 6
M = 20
KEY = "a" * 64
OTHER_KEY = "b" * 64
COUNTED = "every earlier attempt is counted"
UNCOUNTED = "no other seed was tried"
CHEAP = {
    "marginal": lambda ledger, **kw: {"marginal": MarginalSettings(attempts_ledger=ledger, **kw)},
    "dziugaite-roy": lambda ledger, **kw: {
        "dziugaite_roy": DziugaiteRoySettings(
            attempts_ledger=ledger, **{"mc_samples": 5, "posterior_epochs": 1, "test_draws": 1, **kw}
        )
    },
    "subspace": lambda ledger, **kw: {
        "subspace": SubspaceSettings(
            attempts_ledger=ledger, **{"dim": 2, "epochs": 1, "qat_epochs": 1, "levels": (2.0,), **kw}
        )
    },
}
FAMILY_NAMES = tuple(CHEAP)


class Executed(Exception):
    """Raised by a stubbed computation: a refused run reached it."""


# ---------------------------------------------------------------- fixtures
def _separable(w, n, seed):
    x = np.random.default_rng(seed).normal(size=(n, FEATURES)).astype(np.float32)
    return x, (x @ w > 0).astype(np.int64)


def _linear(w) -> nn.Module:
    model = nn.Sequential(nn.Linear(FEATURES, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor(w, dtype=torch.float32)[None])
        model[0].bias.zero_()
    return model


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    """(train, test, model, folder with train.npz, test.npz and model.pt): 40 separable training points."""
    root = tmp_path_factory.mktemp("ledger")
    w = np.random.default_rng(0).normal(size=FEATURES)
    x, y = _separable(w, 40, 1)
    xt, yt = _separable(w, 16, 2)
    np.savez(root / "train.npz", x=x, y=y)
    np.savez(root / "test.npz", x=xt, y=yt)
    model = _linear(w)
    torch.jit.script(model).save(str(root / "model.pt"))
    return from_arrays(x, y, name="train", info={}), from_arrays(xt, yt, name="test", info={}), model, root


def run_family(task, family, ledger, seed=0, *, m=M, corrupt=0.0, model=None, train=None, **settings):
    train_set, test, trained, _ = task
    options = CertifyOptions(
        bounds=(family,),
        m=m,
        seed=seed,
        corrupt=corrupt,
        **CHEAP[family](None if ledger is None else str(ledger), **settings),
    )
    return certify(model or trained, train or train_set, test, options)


def attempt_of(report, family) -> int:
    return report.diagnostics[family]["attempt"]


def certified(report, family):
    return next(b for b in report.bounds if b.certified and b.family == family)


def ledger_lines(path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


# ---------------------------------------------------------------- re-seeding is paid, by every family
@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_eight_seeds_on_one_ledger_are_attempts_one_to_eight(task, family, tmp_path):
    ledger = tmp_path / "runs.jsonl"
    reports = [run_family(task, family, ledger, seed=seed) for seed in range(8)]
    assert [attempt_of(r, family) for r in reports] == list(range(1, 9))
    share = delta_shares(0.05, (family,))[family]
    for k, report in enumerate(reports, start=1):
        spent = report.delta_ledger[family]
        assert spent[OTHER_ATTEMPTS] == pytest.approx(share - series_delta(k, share), rel=1e-12)
        assert sum(spent.values()) == pytest.approx(share, rel=1e-12)
        assert any(f"this is attempt {k} " in a and COUNTED in a for a in certified(report, family).assumptions)
    assert [entry["attempt"] for entry in ledger_lines(ledger)] == list(range(1, 9))


def cli_certify(task, ledger, *extra):
    """``pacbayes certify`` of the task's model with the cheapest Dziugaite-Roy run and ``ledger``."""
    root = task[3]
    files = ["--train", root / "train.npz", "--test", root / "test.npz", "--attempts-ledger", ledger]
    cheap = ["--bounds", "dziugaite-roy", "--m", M, "--mc-samples", 5, "--posterior-epochs", 1, "--quiet"]
    return CliRunner().invoke(main, [str(a) for a in ["certify", root / "model.pt", *files, *cheap, *extra]])


def test_seeds_through_the_cli_are_counted(task, tmp_path):
    found = []
    for seed in range(3):
        result = cli_certify(task, tmp_path / "runs.jsonl", "--seed", seed, "--json")
        assert result.exit_code == 0, result.output
        found.append(json.loads(result.stdout)["diagnostics"]["dziugaite-roy"]["attempt"])
    assert found == [1, 2, 3]


@pytest.mark.parametrize(
    ("family", "other"),
    [
        ("marginal", {"q_star_test_points": 3}),
        ("marginal", {"variant": "mcallester"}),
        ("dziugaite-roy", {"mc_samples": 7}),
        ("dziugaite-roy", {"mc_sampling": "point"}),
    ],
    ids=["q-star-test-points", "variant", "mc-samples", "mc-sampling"],
)
def test_evaluation_and_baseline_options_share_the_count(task, family, other, tmp_path):
    """Options that evaluate the same statement another way or only change a baseline: keeping the
    better of two runs is a selection, so the second run is attempt 2."""
    ledger = tmp_path / "runs.jsonl"
    first = run_family(task, family, ledger, seed=0)
    second = run_family(task, family, ledger, seed=0, **other)
    assert (attempt_of(first, family), attempt_of(second, family)) == (1, 2)


@pytest.mark.parametrize(
    ("family", "change"),
    [
        ("marginal", {"jitter": 1e-5}),
        ("marginal", {"m": 16}),
        ("dziugaite-roy", {"corrupt": 0.1}),
        ("dziugaite-roy", {"objective": "quad"}),
        ("dziugaite-roy", {"prior_std": 0.1}),
        ("subspace", {"dim": 3}),
        ("subspace", {"levels": (3.0,)}),
    ],
    ids=["jitter", "m", "corruption", "objective", "prior-std", "subspace-dim", "levels"],
)
def test_a_setting_that_changes_the_statement_starts_its_own_count(task, family, change, tmp_path):
    ledger = tmp_path / "runs.jsonl"
    first = run_family(task, family, ledger, seed=0)
    second = run_family(task, family, ledger, seed=1, **change)
    assert (attempt_of(first, family), attempt_of(second, family)) == (1, 1)


def test_another_training_set_starts_its_own_count_and_the_subset_does_not(task, tmp_path):
    train, test, model, _ = task
    ledger = tmp_path / "runs.jsonl"
    fewer = from_arrays(train.x[:-1].numpy(), train.labels[:-1].numpy(), name="fewer", info={})
    counts = [
        attempt_of(run_family(task, "dziugaite-roy", ledger, seed=s, train=t), "dziugaite-roy")
        for s, t in [(0, train), (0, fewer), (1, train), (2, fewer)]
    ]
    assert counts == [1, 1, 2, 2]


@pytest.mark.parametrize(
    ("start", "expected"), [("prior", 2), ("model", 1)], ids=["learned-from-prior", "around-model"]
)
def test_the_weights_are_keyed_only_where_the_statement_depends_on_them(task, start, expected, tmp_path):
    """Learned from the prior, MODEL gives only the architecture: retraining it is no new statement."""
    ledger = tmp_path / "runs.jsonl"
    model = task[2]
    retrained = _linear(model[0].weight.detach().numpy()[0] * 2.0)
    run_family(task, "dziugaite-roy", ledger, posterior_start=start)
    second = run_family(task, "dziugaite-roy", ledger, seed=1, model=retrained, posterior_start=start)
    assert attempt_of(second, "dziugaite-roy") == expected


def test_compressed_models_from_other_seeds_are_counted_together(task, tmp_path):
    """A compressed model given as MODEL is keyed on its d, levels and configurations, not its seed."""
    from pacbayes.subspace import train_subspace_model

    train, test, model, _ = task
    ledger = str(tmp_path / "runs.jsonl")
    found = []
    for seed in (0, 1):
        compressed = train_subspace_model(
            model, train.x, train.labels, SubspaceSettings(dim=2, epochs=1, qat_epochs=1, levels=(2,)), seed=seed
        )
        options = CertifyOptions(
            bounds=("subspace",), seed=seed, subspace=SubspaceSettings(compressed=compressed, attempts_ledger=ledger)
        )
        found.append(attempt_of(certify(compressed.decode().eval(), train, test, options), "subspace"))
    assert found == [1, 2]


# ---------------------------------------------------------------- what a report says without a ledger
@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_only_a_ledger_run_claims_that_earlier_attempts_are_counted(task, family, tmp_path):
    alone = certified(run_family(task, family, None), family)
    counted = certified(run_family(task, family, tmp_path / "runs.jsonl"), family)
    assert not any(COUNTED in a for a in alone.assumptions)
    assert any(COUNTED in a for a in counted.assumptions)
    if family != "subspace":  # its --configurations count states the tries
        assert any(UNCOUNTED in a for a in alone.assumptions)
        assert counted.value == alone.value  # attempt 1 spends what a run without a ledger spends


def test_a_subspace_run_without_a_ledger_spends_its_whole_share(task):
    report = run_family(task, "subspace", None)
    spent = report.delta_ledger["subspace"]
    assert OTHER_ATTEMPTS not in spent
    assert sum(spent.values()) == pytest.approx(delta_shares(0.05, ("subspace",))["subspace"], rel=1e-12)


# ---------------------------------------------------------------- one writer at a time
def _append_many(path, key, count, queue):
    queue.put([record_attempt(path, key, {"pid": os.getpid()}) for _ in range(count)])


@pytest.mark.parametrize("writers", [2, 4])
def test_parallel_writers_get_distinct_consecutive_numbers(tmp_path, writers):
    path, per_writer = str(tmp_path / "runs.jsonl"), 25
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    processes = [context.Process(target=_append_many, args=(path, KEY, per_writer, queue)) for _ in range(writers)]
    for process in processes:
        process.start()
    numbers = sorted(n for _ in processes for n in queue.get(timeout=120))
    for process in processes:
        process.join(timeout=60)
    total = writers * per_writer
    assert numbers == list(range(1, total + 1))
    assert sorted(entry["attempt"] for entry in ledger_lines(tmp_path / "runs.jsonl")) == list(range(1, total + 1))


def _append_when(go, path, queue):
    go.wait(60)
    _append_many(path, KEY, 1, queue)


def test_a_writer_waits_while_another_holds_the_ledger(tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps({"key": KEY, "attempt": 1}) + "\n")
    context = multiprocessing.get_context("fork")
    queue, go = context.Queue(), context.Event()
    writer = context.Process(target=_append_when, args=(go, str(path), queue))
    writer.start()  # before the lock is taken: a forked child would share the lock's open file
    with open(path, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        go.set()
        writer.join(timeout=1.0)
        assert writer.is_alive()  # blocked on the lock, nothing appended
        assert len(ledger_lines(path)) == 1
    assert queue.get(timeout=60) == [2]
    writer.join(timeout=60)


# ---------------------------------------------------------------- a cut last line is recovered
CUT = {
    "own-key": (f'{{"key": "{KEY}", "attem', 2, 1),
    "other-key": (f'{{"key": "{OTHER_KEY}", "time": 1', 1, 2),
    "key-cut": ('{"key": "aaaa', 2, 2),
    "brace-only": ("{", 2, 2),
}


@pytest.mark.parametrize("fragment, ours, theirs", CUT.values(), ids=CUT.keys())
def test_a_cut_last_line_is_counted_and_rewritten_whole(tmp_path, capsys, fragment, ours, theirs):
    """Counting a cut line is the safe side: for its key when the fragment names it, else for every key."""
    path = tmp_path / "runs.jsonl"
    path.write_bytes(b"\n" + fragment.encode())
    assert record_attempt(path, KEY, {}) == ours
    assert "cut short" in capsys.readouterr().err
    assert path.read_bytes().endswith(b"\n")
    assert all(isinstance(entry, dict) for entry in ledger_lines(path))  # every line whole again
    assert record_attempt(path, OTHER_KEY, {}) == theirs
    assert "cut short" not in capsys.readouterr().err


def test_a_whole_last_line_without_its_newline_is_kept(tmp_path, capsys):
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps({"key": KEY, "attempt": 1}))
    assert record_attempt(path, KEY, {}) == 2
    assert "cut short" not in capsys.readouterr().err
    assert [entry["attempt"] for entry in ledger_lines(path)] == [1, 2]


def test_a_failed_append_is_one_line_and_leaves_the_ledger_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps({"key": KEY, "attempt": 1}) + "\n")
    before = path.read_bytes()

    def disk_full(fd, data):
        os.write(fd, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(attempts, "_write_all", disk_full)
    with pytest.raises(PacBayesError, match="No space left") as err:
        record_attempt(path, KEY, {})
    assert "\n" not in str(err.value)
    assert path.read_bytes() == before
    monkeypatch.undo()
    assert record_attempt(path, KEY, {}) == 2


# ---------------------------------------------------------------- lines that are not entries: one line
VALID = json.dumps({"key": KEY, "attempt": 1}).encode() + b"\n"
BAD = {
    "number": (VALID + b"42\n", 2),
    "array": (VALID + b"[1, 2]\n", 2),
    "string": (b'"text"\n' + VALID, 1),
    "null": (VALID + b"null\n", 2),
    "boolean": (VALID + b"true\n", 2),
    "no-key": (b'{"attempt": 1}\n', 1),
    "number-key": (b'{"key": 7}\n', 1),
    "bad-utf8": (VALID + b'{"key": "\xff\xfe"}\n', 2),
    "not-json": (VALID + VALID + b"{not json\n", 3),
    "deep-nesting": (b"[" * 100_000 + b"\n", 1),
    "huge-integer": (b"1" * 10_000 + b"\n", 1),
    "cut-line-inside": (b'{"key": "abc\n' + VALID, 1),
    "binary-without-newline": (b"PK\x03\x04\x14\x00\x00\x00\x08\x00binary", 1),
    "text-last-line": (VALID + b"a last line of prose", 2),
}


@pytest.mark.parametrize("content, line", BAD.values(), ids=BAD.keys())
def test_a_line_that_is_not_an_entry_is_refused_naming_the_file_and_line(tmp_path, content, line):
    path = tmp_path / "runs.jsonl"
    path.write_bytes(content)
    for call in (lambda: attempts.check_ledger(path), lambda: record_attempt(path, KEY, {})):
        with pytest.raises(PacBayesError) as err:
            call()
        message = str(err.value)
        assert "\n" not in message and str(path) in message and f"line {line} " in message
    assert path.read_bytes() == content  # never appended to, never truncated


def test_a_bad_ledger_is_one_line_on_the_command_line(task, tmp_path):
    ledger = tmp_path / "runs.jsonl"
    ledger.write_bytes(VALID + b"[1, 2]\n")
    result = cli_certify(task, ledger)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pacbayes: error: ") and "line 2" in lines[0]
    assert "Traceback" not in result.output


# ---------------------------------------------------------------- refused before work, counted after checks
def _unusable(kind, tmp_path):
    if kind == "directory":
        return tmp_path
    if kind == "under-a-file":
        (tmp_path / "a_file").write_text("x")
        return tmp_path / "a_file" / "runs.jsonl"
    if kind == "unwritable-folder":
        return "/proc/pacbayes-no-such-place/runs.jsonl"
    if kind == "fifo":
        os.mkfifo(tmp_path / "pipe")
        return tmp_path / "pipe"
    (tmp_path / "runs.jsonl").write_bytes(VALID + b"42\n")
    return tmp_path / "runs.jsonl"


@pytest.mark.parametrize("kind", ["directory", "under-a-file", "unwritable-folder", "fifo", "bad-line"])
def test_an_unusable_ledger_is_refused_before_any_work(task, tmp_path, monkeypatch, kind):
    import pacbayes.families.marginal as marginal

    def stub(*args, **kwargs):
        raise Executed("the kernel was built")

    monkeypatch.setattr(marginal, "build_kernel", stub)
    with pytest.raises(PacBayesError):
        run_family(task, "marginal", _unusable(kind, tmp_path))


def test_a_run_refused_for_memory_is_not_counted(task, tmp_path, monkeypatch):
    from pacbayes.evidence import budget

    ledger = tmp_path / "runs.jsonl"
    monkeypatch.setattr(budget, "EP_MATRICES", 10**15)  # EP would need more memory than any machine has
    with pytest.raises(PacBayesError, match="--m"):
        run_family(task, "marginal", ledger)
    assert ledger_lines(ledger) == []


@pytest.mark.parametrize(
    "settings",
    [{"init_state": "garbage"}, {"prior_split": 0.9}],
    ids=["unreadable-init", "prior-split-leaves-too-few"],
)
def test_a_refused_dziugaite_roy_run_is_not_counted(task, tmp_path, settings):
    ledger = tmp_path / "runs.jsonl"
    if settings.get("init_state") == "garbage":
        (tmp_path / "init.pt").write_bytes(b"not a checkpoint")
        settings = {"init_state": str(tmp_path / "init.pt")}
    with pytest.raises(PacBayesError):
        run_family(task, "dziugaite-roy", ledger, **settings)
    assert ledger_lines(ledger) == []
