"""Counting attempts, so that re-running with new seeds is union-bounded, not cherry-picked.

Attempt k >= 1 at a statement spends delta_k = 6 delta / (pi^2 k^2) of its family's share
(:func:`pacbayes.bounds.series_delta`); sum_k delta_k = delta, so every attempt ever made holds at
once with probability >= 1 - delta and keeping the best of them is valid. One mechanism serves
every family: :func:`count_attempt` returns an :class:`Attempt`, which gives the share the run
spends, the reserve for the other attempts and the assumption the report states.

The number is read from an attempts ledger (``--attempts-ledger FILE``): JSON lines, one per
attempt, each with the key of the statement it was an attempt at. The key (:func:`attempt_key`)
is a SHA-256 of

* the family's name;
* what S was drawn from (:func:`sample_record`): the content hash of the whole training set as
  given (before the seeded subset and label corruption), m, the corruption rate and the class
  split of a single-logit model;
* the model's architecture (parameter and buffer names, shapes and dtypes) and the family's
  settings that define its prior or the classifier its statement is about -- marginal: the kernel
  as resolved, sigma_w, sigma_b, the Monte Carlo sample count, the jitter or the declared jitter
  grid; dziugaite-roy: the mode, objective, surrogate, the prior (init kind, split, std, lambda
  grid, dropout, epochs), the posterior's epochs and optimiser (optimizer, learning rates, momentum),
  per-point training and the training precision; subspace: d, the level grid,
  every training setting, the learned-origin split and --configurations (for a compressed model
  given as MODEL, its d, levels, quantisation, configurations and origin kind);
* the model's weights where the statement depends on them: dziugaite-roy around MODEL (posterior
  start "model" or a fixed mean) and subspace distilled from MODEL.

Never in the key: seeds (the run's, which draws the subset, a Monte Carlo kernel, the sampling
and the training; an init seed), settings that evaluate the same statement another way (marginal
--variant, dziugaite-roy --mc-samples and --mc-sampling: keeping the better of two is a selection,
so such runs count against each other), baselines and reporting (--q-star-test-points, test draws,
device, progress) and the ledger's path. Runs that differ in a keyed setting make different
statements and are counted apart.

A run is recorded once its inputs are validated and before the draws its bound depends on (the
importance sampling, the posterior's or the subspace model's training): a refused run is not
counted, the count never depends on a run's result, and no certified number exists whose attempt
was not counted. Without a ledger a run is attempt 1 and its assumptions say that no other seed
was tried; the marginal and Dziugaite-Roy families still spend only delta_1 (the rest reserved),
the subspace family its whole share (it counts declared tries in --configurations).

The ledger is appended under an exclusive ``flock`` on the file itself (read, count, append,
fsync), so parallel runs get distinct consecutive numbers; fcntl needs no extra dependency and
leaves no lock file beside the ledger. A last line cut short (a full disk, a killed run) is
recovered with a warning and counted, on the safe side: for its key when the fragment names one,
for every key when it does not. Any other line that is not a ledger entry is refused, naming the
file and the line: an unreadable line may hide attempts, and a file that is not a ledger must not
be appended to.
"""

import json
import os
import re
import stat
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from itertools import chain

from pacbayes import checks
from pacbayes.arguments import check_output_path
from pacbayes.bounds import series_delta
from pacbayes.errors import InputError, one_line
from pacbayes.hashing import feed_tensor, json_digest, tensors_sha256
from pacbayes.options import LEDGER_FLAG, ledger_option
from pacbayes.progress import announce

OTHER_ATTEMPTS = "other attempts (reserved for reruns, see --attempts-ledger)"
MAX_LEDGER_BYTES = 1 << 28
"""A ledger larger than this (about a million attempts) is refused rather than read."""
MAX_TORN_BYTES = 1 << 16
"""A cut-short last line longer than this is not one pacbayes wrote."""
_ENTRY_START = b'{"key": '
_NAMED_KEY = re.compile(rb'\{"key": "([0-9a-f]{64})"')
_JSON_KINDS = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}


_REPLAY: ContextVar[dict | None] = ContextVar("pacbayes_attempt_replay", default=None)


@contextmanager
def replaying(numbers: dict):
    """Within the block :func:`count_attempt` writes nothing and gives each family the attempt number a
    report recorded (``numbers``: family -> number): ``pacbayes verify --rerun`` recomputes an attempt
    that was counted, it is not another one."""
    token = _REPLAY.set(dict(numbers))
    try:
        yield
    finally:
        _REPLAY.reset(token)


@dataclass(frozen=True)
class Attempt:
    """Which attempt at its statement a run is, and what that costs.

    number: k (1 without a ledger, or as a caller counted it); ledger: the ledger's path (None: no
    ledger kept); reserves: whether a run without a ledger keeps delta back for other attempts.
    """

    number: int = 1
    ledger: str | None = None
    reserves: bool = True

    def share(self, delta: float) -> float:
        """The delta this run spends: 6 delta / (pi^2 k^2), or all of it without a ledger or reserve."""
        if self.ledger is None and not self.reserves:
            return delta
        return series_delta(self.number, delta)

    def reserve(self, delta: float) -> dict:
        """The delta ledger's entry for the other attempts (empty when nothing is reserved)."""
        rest = delta - self.share(delta)
        return {OTHER_ATTEMPTS: rest} if rest > 0.0 else {}

    def assumptions(self) -> tuple:
        """The report's assumption about other attempts (none for an unledgered run that spends its all:
        its family states its own count of tries)."""
        series = "(delta_k = 6 delta / (pi^2 k^2))"
        if self.ledger is not None:
            return (
                f"this is attempt {self.number} on this data and these settings (any seed), and every earlier "
                f"attempt is counted in the attempts ledger {series}",
            )
        if self.number > 1:
            return (f"this is attempt {self.number} on this data and these settings, as its caller counted {series}",)
        if not self.reserves:
            return ()
        return (
            "no other seed was tried on this data and these settings (or pass an attempts ledger that counts them)",
        )


def sample_record(train_sha256: str, m: int, corrupt: float = 0.0, negative_classes=None) -> dict:
    """What S was drawn from, as the key holds it: the content hash of the training set as given
    (before subset and corruption), m, the corruption rate and a single-logit model's class split."""
    classes = None if negative_classes is None else sorted(int(c) for c in negative_classes)
    return {"train_sha256": train_sha256, "m": int(m), "corrupt": float(corrupt), "negative_classes": classes}


def architecture(model) -> list:
    """The names, shapes and dtypes of ``model``'s parameters and buffers: what its weights fill, not their values."""
    named = chain(model.named_parameters(), model.named_buffers())
    return [[name, list(tensor.shape), str(tensor.dtype)] for name, tensor in named]


def attempt_key(family: str, sample: dict, statement: dict, model, weights: bool = False) -> str:
    """SHA-256 of the statement a run is an attempt at (see the module docstring): the family, what S
    was drawn from, the statement's settings, the architecture and, when ``weights``, the weights."""
    described = {"family": family, "sample": sample, "statement": statement, "architecture": architecture(model)}
    digest = json_digest(_canonical(described))
    if weights:
        for name, tensor in model.named_parameters():
            feed_tensor(digest, tensor, name)
    return digest.hexdigest()


def _canonical(value):
    """``value`` as plain JSON: tuples and arrays as lists, numpy scalars as Python numbers and whole floats as
    ints, so that 2.0 from the CLI, 2 from Python and numpy's int64(2) key alike."""
    if hasattr(value, "tolist") and not isinstance(value, (list, tuple, dict, str)):  # a numpy scalar or array
        value = value.tolist()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, (list, tuple)):
        return [_canonical(item) for item in value]
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items()}
    return value


def count_attempt(
    ledger,
    family: str,
    *,
    sample: dict | None,
    data: tuple,
    statement: dict,
    model,
    weights: bool = False,
    seed: int = 0,
    reserves: bool = True,
) -> Attempt:
    """This run's :class:`Attempt`: number 1 without a ``ledger``, else recorded in it under
    :func:`attempt_key`. ``sample``: :func:`sample_record` of what S was drawn from (None: S itself,
    the tensors ``data``); ``statement``: plain JSON values; ``weights``: the statement depends on them."""
    if ledger is None:
        return Attempt(reserves=reserves)
    replay = _REPLAY.get()
    if replay is not None:
        if family not in replay:
            raise InputError(f"the report records no attempt number for the {family} family; rerun pacbayes certify")
        return Attempt(checks.sample_size(replay[family], name="attempt", minimum=1), os.fspath(ledger), reserves)
    sample = sample or sample_record(tensors_sha256(*data), len(data[-1]))
    key = attempt_key(family, sample, statement, model, weights)
    number = record_attempt(ledger, key, {"family": family, "seed": int(seed), "m": sample["m"], **statement})
    return Attempt(number, os.fspath(ledger), reserves)


def check_ledger(path) -> str | None:
    """Refuse, before any work, a ledger that cannot be appended to (a directory, a path under a file,
    a folder that refuses new files, a file that is not regular or not writable) or read (a line
    that is not a ledger entry). Returns the path as a string (None stays None)."""
    shown = check_output_path(path, LEDGER_FLAG)
    if shown is not None and os.path.exists(shown):
        with _locked(shown, exclusive=False, create=False) as fd:
            _parse(_read(fd, shown), shown)
    return shown


def record_attempt(ledger, key: str, settings: dict) -> int:
    """Append one attempt for ``key`` to ``ledger`` under its lock and return its number (1 for the first)."""
    path = os.fspath(ledger)
    created = not os.path.exists(path)
    with _locked(path, exclusive=True, create=True) as fd:
        data = _read(fd, path)
        contents = _parse(data, path)
        if contents.torn is not None:
            announce(f"pacbayes: warning: {contents.torn}")
        number = 1 + sum(1 for entry in contents.entries if entry["key"] in (key, None))
        line = _line({"key": key, "attempt": number, "time": time.time(), **settings})
        _write(fd, path, contents, len(data), line)
    if created:
        _sync_folder(path)
    return number


@dataclass(frozen=True)
class _Contents:
    """A ledger as read: its entries, where its sound part ends, what to write there to end it on a
    whole line (the recovered entry of a cut-short line, or a newline), and a warning when a line was cut."""

    entries: list
    end: int
    repair: bytes
    torn: str | None = None


def _parse(data: bytes, path: str) -> _Contents:
    body = data.rfind(b"\n") + 1
    entries = [
        _entry(raw, path, number) for number, raw in enumerate(data[:body].split(b"\n")[:-1], start=1) if raw.strip()
    ]
    tail = data[body:]
    if not tail.strip():
        return _Contents(entries, len(data), b"\n" if tail else b"")
    number = data.count(b"\n") + 1
    try:
        return _Contents([*entries, _entry(tail, path, number)], len(data), b"\n")
    except InputError:
        torn = _torn(tail)
        if torn is None:
            raise
    whose = f"for its key {torn['key'][:12]}..." if torn["key"] else "for every key (its key was cut)"
    note = (
        f"attempts ledger {path} line {number} was cut short (a full disk or a killed run); it is counted "
        f"as an attempt {whose} and rewritten as a whole line"
    )
    return _Contents([*entries, torn], body, _line(torn), note)


def _entry(raw: bytes, path: str, number: int) -> dict:
    """The ledger entry on line ``number`` (InputError naming the file and line if it is not one)."""
    try:
        entry = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        problem = "it is not UTF-8 text"
    except (ValueError, RecursionError) as err:
        problem = f"it is not JSON: {one_line(err, 80)}"
    else:
        key = entry.get("key", 0) if isinstance(entry, dict) else 0
        if isinstance(key, str) or (key is None and entry.get("torn") is True):
            return entry
        problem = "an object without a string key" if isinstance(entry, dict) else _JSON_KINDS.get(type(entry), "null")
    raise InputError(
        f"attempts ledger {path} line {number} is not an attempt record ({problem}); pass the ledger pacbayes "
        "wrote, or repair that line (deleting lines breaks the union bound over past attempts)"
    )


def _torn(tail: bytes) -> dict | None:
    """The entry a cut-short last line stands for, or None when ``tail`` is not the start of a ledger line."""
    head = tail.lstrip()
    if len(tail) > MAX_TORN_BYTES or not head.isascii():
        return None
    if not (head.startswith(_ENTRY_START) or _ENTRY_START.startswith(head)):
        return None
    named = _NAMED_KEY.match(head)
    key = named.group(1).decode() if named else None
    return {"key": key, "torn": True, "fragment": head[:200].decode(), "recovered": time.time()}


def _line(entry: dict) -> bytes:
    """One ledger line: the key first (so a cut line still names it), ASCII, newline-terminated."""
    return (json.dumps(entry) + "\n").encode("ascii")


@contextmanager
def _locked(path: str, *, exclusive: bool, create: bool):
    """The ledger opened for reading and writing (a regular file only), under a shared or exclusive flock."""
    import fcntl  # POSIX (Linux, macOS); imported here so that the package loads where it is missing

    try:
        if create:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | (os.O_CREAT if create else 0), 0o644)
    except OSError as err:
        raise InputError(
            f"{LEDGER_FLAG} {path}: cannot open it for appending ({err.strerror or err}); choose a writable file"
        ) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputError(f"{LEDGER_FLAG} {path} is not a regular file; give a file path such as runs.jsonl")
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield fd
    finally:
        os.close(fd)  # releases the lock


def _read(fd: int, path: str) -> bytes:
    size = os.fstat(fd).st_size
    if size > MAX_LEDGER_BYTES:
        raise InputError(
            f"attempts ledger {path} holds {size:,} bytes, more than any ledger of runs should; pass the right file"
        )
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _write(fd: int, path: str, contents: _Contents, size: int, line: bytes) -> None:
    """End the file on a whole line, append ``line`` and fsync; on failure take back a partial line."""
    try:
        os.lseek(fd, contents.end, os.SEEK_SET)
        _write_all(fd, contents.repair + line)
        os.ftruncate(fd, contents.end + len(contents.repair) + len(line))
        os.fsync(fd)
    except OSError as err:
        if contents.end == size:  # nothing was cut: the file as it was is whole
            try:
                os.ftruncate(fd, size)
            except OSError:
                pass  # the next run recovers the cut line and counts it
        raise InputError(
            f"{LEDGER_FLAG} {path}: cannot append this run ({err.strerror or err}); nothing was certified: "
            "free space or choose another ledger"
        ) from None


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` at the file position (os.write may write less than it is given)."""
    payload = memoryview(data)
    while payload:
        payload = payload[os.write(fd, payload) :]


def _sync_folder(path: str) -> None:
    """fsync the folder of a new ledger, so that the file itself survives a crash."""
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


__all__ = [
    "Attempt",
    "LEDGER_FLAG",
    "OTHER_ATTEMPTS",
    "architecture",
    "attempt_key",
    "check_ledger",
    "count_attempt",
    "ledger_option",
    "record_attempt",
    "sample_record",
]
