"""The report cache behind :func:`pacbayes.testing.assert_certified`, claims files and the pytest plugin.

:func:`cached_report` returns a whole certify report, read from disk when a valid entry exists. An entry is
stored under :func:`content_key`, a SHA-256 of everything the number depends on: the model's
architecture and every parameter tensor, the training and test inputs and labels, the options, and
the package version. Each entry stores its key and a SHA-256 of its own content; an entry that fails
to parse, names another key or does not match its checksum (a truncated write, a flipped byte) is
reported with a :class:`CacheWarning` and recomputed -- never trusted. A checksum proves nothing
against an edit that recomputes it, so an entry that parses is also re-verified
(:func:`pacbayes.verification.check_report`: every certified number recomputed from its stored inputs,
the data hashed) before it is used, and recomputed when a check fails. Entries are written atomically
(temporary file + rename).
"""

import json
import os
import warnings
from dataclasses import replace

import torch

from pacbayes import __version__, arguments, checks
from pacbayes.certification import CertifyOptions, certify
from pacbayes.data import Dataset
from pacbayes.errors import PacBayesError
from pacbayes.hashing import feed_tensor, json_sha256, sha256
from pacbayes.report import json_safe, write_json_atomically
from pacbayes.verification import check_report, failed

CACHE_ENV = "PACBAYES_CACHE_DIR"
DEFAULT_CACHE_DIR = ".pacbayes-cache"
CACHE_FORMAT = 1


class CacheWarning(UserWarning):
    """A cache entry was unreadable or corrupt and has been recomputed."""


def content_key(model: torch.nn.Module, train: Dataset, test: Dataset | None, options: CertifyOptions) -> str:
    """SHA-256 (hex) of the architecture, the parameters, the data and the options."""
    silent = replace(options, quiet=True, marginal=replace(options.marginal, quiet=True))  # bars change nothing
    digest = sha256(f"pacbayes {__version__}|{type(model).__qualname__}|{model}|{silent!r}|".encode())
    for name, tensor in sorted(model.state_dict().items()):
        feed_tensor(digest, tensor, f"param:{name}|")
    for role, data in (("train", train), ("test", test)):
        if data is None:
            digest.update(f"{role}:none|".encode())
            continue
        digest.update(f"{role}:{data.classes!r}|".encode())
        feed_tensor(digest, data.x, f"{role}.x|")
        feed_tensor(digest, data.labels, f"{role}.labels|")
    return digest.hexdigest()


def _checksum(report: dict) -> str:
    # the stored report has null where the fresh one had inf/NaN (JSON has neither): hash that form
    return json_sha256(json_safe(report, note=False), allow_nan=False)


def _cache_dir(cache_dir) -> str | None:
    if cache_dir is False:
        return None
    return str(cache_dir) if cache_dir else os.environ.get(CACHE_ENV, DEFAULT_CACHE_DIR)


def _read_entry(path: str, key: str) -> dict | None:
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


def _verification_failure(report: dict, train: Dataset, test: Dataset) -> str | None:
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


__all__ = ["CACHE_ENV", "DEFAULT_CACHE_DIR", "CacheWarning", "cached_report", "content_key"]
