"""Regression-testing generalisation claims: :func:`assert_certified` and a content-hash cache.

``assert_certified(model, train, test=test, bound="marginal", at_most=0.2)`` runs
:func:`pacbayes.certification.certify` for one bound family and raises an ``AssertionError`` that shows
the certified value, the threshold, the delta, what the number certifies and its assumptions when
the bound is larger than ``at_most``.

The expensive part (the whole certify report) is cached on disk under a SHA-256 of everything
the number depends on: the model's architecture and every parameter tensor, the training and
test inputs and labels, the options, and the package version. Each cache entry stores its key
and a SHA-256 of its own content; an entry that fails to parse, names another key or does not
match its checksum (a truncated write, a flipped byte) is reported with a :class:`CacheWarning`
and recomputed -- never trusted. A checksum proves nothing against an edit that recomputes it, so an
entry that parses is also re-verified (:func:`pacbayes.verification.check_report`: every certified
number recomputed from its stored inputs, the data hashed) before it is used, and recomputed when a
check fails. Entries are written atomically (temporary file + rename).
"""

import hashlib
import json
import os
import warnings
from dataclasses import replace
from typing import Optional

import torch

from pacbayes import __version__, arguments, checks
from pacbayes.certification import CertifyOptions, certify
from pacbayes.data import Dataset
from pacbayes.errors import InputError, PacBayesError
from pacbayes.families.marginal import MarginalSettings
from pacbayes.provenance import hash_tensor
from pacbayes.report import json_safe, write_json_atomically
from pacbayes.results import BoundResult
from pacbayes.verification import check_report, failed

CACHE_ENV = "PACBAYES_CACHE_DIR"
DEFAULT_CACHE_DIR = ".pacbayes-cache"
CACHE_FORMAT = 1


class CacheWarning(UserWarning):
    """A cache entry was unreadable or corrupt and has been recomputed."""


# ---------------------------------------------------------------- content hashing
def content_key(model: torch.nn.Module, train: Dataset, test: Optional[Dataset], options: CertifyOptions) -> str:
    """SHA-256 (hex) of the architecture, the parameters, the data and the options."""
    silent = replace(options, quiet=True, marginal=replace(options.marginal, quiet=True))  # bars change nothing
    digest = hashlib.sha256()
    digest.update(f"pacbayes {__version__}|{type(model).__qualname__}|{model}|{silent!r}|".encode())
    for name, tensor in sorted(model.state_dict().items()):
        hash_tensor(digest, tensor, f"param:{name}|")
    for role, data in (("train", train), ("test", test)):
        if data is None:
            digest.update(f"{role}:none|".encode())
            continue
        digest.update(f"{role}:{data.classes!r}|".encode())
        hash_tensor(digest, data.x, f"{role}.x|")
        hash_tensor(digest, data.labels, f"{role}.labels|")
    return digest.hexdigest()


def _checksum(report: dict) -> str:
    # the stored report has null where the fresh one had inf/NaN (JSON has neither): hash that form
    return hashlib.sha256(
        json.dumps(json_safe(report, note=False), sort_keys=True, allow_nan=False).encode()
    ).hexdigest()


def _cache_dir(cache_dir) -> Optional[str]:
    if cache_dir is False:
        return None
    return str(cache_dir) if cache_dir else os.environ.get(CACHE_ENV, DEFAULT_CACHE_DIR)


def _read_entry(path: str, key: str) -> Optional[dict]:
    """The cached report, or None if absent; a corrupt entry warns and returns None."""
    if not os.path.exists(path):
        return None
    try:
        with arguments.open_regular(path, "cache entry") as stream:  # a FIFO would block the read
            entry = checks.parsed(json.loads, stream.read().decode("utf-8"), f"cache entry {path}")
        if not isinstance(entry, dict) or entry.get("format") != CACHE_FORMAT or entry.get("key") != key:
            raise ValueError("wrong format or key")
        if entry.get("sha256") != _checksum(entry["report"]):
            raise ValueError("checksum mismatch")
        return entry["report"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        warnings.warn(f"pacbayes cache entry {path} is corrupt ({err}); recomputing", CacheWarning, stacklevel=3)
        return None


def _verification_failure(report: dict, train: Dataset, test: Dataset) -> Optional[str]:
    """The first check :func:`pacbayes.verification.check_report` fails on a cached report, else None."""
    try:
        mismatches = failed(check_report(report, train=train, test=test))
    except PacBayesError as err:
        return " ".join(str(err).split())
    return mismatches[0].name if mismatches else None


def cached_report(
    model: torch.nn.Module, train: Dataset, test: Dataset, options: CertifyOptions, cache_dir=None
) -> tuple:
    """``certify(model, train, test, options).to_dict()``, from the cache when a valid entry exists.

    cache_dir: a folder, None for ``$PACBAYES_CACHE_DIR`` or ``.pacbayes-cache``, False for no cache.
    Returns (report dict, True if it came from the cache).
    """
    folder = _cache_dir(cache_dir)
    if folder:
        arguments.check_output_dir(folder, "cache_dir")  # before computing, not after
    key = content_key(model, train, test, options)
    path = os.path.join(folder, key + ".json") if folder else None
    if path:
        report = _read_entry(path, key)
        reason = None if report is None else _verification_failure(report, train, test)
        if report is not None and reason is None:
            return report, True
        if reason is not None:
            warnings.warn(
                f"pacbayes cache entry {path} fails verification ({reason}); recomputing", CacheWarning, stacklevel=2
            )
    report = certify(model, train, test, options).to_dict()
    if path:
        write_json_atomically({"format": CACHE_FORMAT, "key": key, "report": report, "sha256": _checksum(report)}, path)
    return report, False


# ---------------------------------------------------------------- the assertion
def family_bound(report: dict, bound: str, kind: str = "certified") -> dict:
    """The smallest ``kind`` ("certified" or "estimate") bound record of family ``bound`` in a report."""
    if kind not in ("certified", "estimate"):
        raise InputError(f"kind must be 'certified' or 'estimate', got {kind!r}")
    records = [
        b
        for b in report["bounds"]
        if b.get("family") == bound and b["certified"] == (kind == "certified") and "converted_from" not in b["details"]
    ]
    if not records:
        raise InputError(
            f"the report has no {kind} bound of family {bound!r} "
            f"(it has: {', '.join(b['name'] for b in report['bounds'])})"
        )
    return min(records, key=lambda b: b["value"])


def assert_certified(
    model: torch.nn.Module,
    train: Dataset,
    *,
    test: Optional[Dataset] = None,
    bound: str = "marginal",
    at_most: float,
    delta: float = 0.05,
    m: Optional[int] = None,
    seed: int = 0,
    marginal: MarginalSettings = MarginalSettings(),
    cache_dir=None,
    quiet: bool = True,
) -> BoundResult:
    """Assert that the certified ``bound`` of ``model`` on ``train`` is at most ``at_most``.

    ``test`` is the held-out data certify measures the test error on (required: it must not
    overlap ``train``). Returns the certified :class:`BoundResult`; raises ``AssertionError``
    with value, threshold, delta, what is certified and the assumptions otherwise.
    """
    arguments.assert_certified_arguments(
        model,
        train,
        test=test,
        bound=bound,
        at_most=at_most,
        delta=delta,
        m=m,
        seed=seed,
        marginal=marginal,
        cache_dir=cache_dir,
        quiet=quiet,
    )
    if test is None:
        raise InputError(
            "assert_certified needs held-out data for the measured test error: pass test=... (disjoint from train)"
        )
    if not isinstance(at_most, (int, float)) or not 0.0 <= at_most <= 1.0:
        raise InputError(f"at_most must be an error rate in [0, 1], got {at_most!r}")
    options = CertifyOptions(bounds=(bound,), delta=delta, m=m, seed=seed, marginal=marginal, quiet=quiet)
    report, from_cache = cached_report(model, train, test, options, cache_dir)
    record = family_bound(report, bound)
    result = BoundResult(**{**record, "assumptions": tuple(record["assumptions"])})
    if result.value > at_most:
        lines = [
            f"certified bound {result.name} = {result.value:.4f} exceeds at_most = {at_most:.4f}",
            f"  delta = {delta:g} (this number spends {sum(result.delta.values()):.3g}), m = {report['m']}, "
            f"train error {report['train_error']:.4f}, test error {report['test_error']:.4f}"
            + (" [from cache]" if from_cache else ""),
            f"  certifies: {result.certifies}",
            "  assumptions:",
        ]
        lines += [f"    - {a}" for a in result.assumptions]
        raise AssertionError("\n".join(lines))
    return result


__all__ = [
    "assert_certified",
    "cached_report",
    "content_key",
    "family_bound",
    "CacheWarning",
    "CACHE_ENV",
    "DEFAULT_CACHE_DIR",
]
