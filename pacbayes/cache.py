"""A content-keyed cache for the long phases of a certify run, so that a stopped run resumes.

``certify(..., CertifyOptions(cache_dir=DIR))`` stores the result of each long phase (a learned
prior, a trained posterior, a subspace fit, ...) in DIR under the SHA-256 of the phase's exact inputs:
its name and code version, the package version, its settings, and the dtype, shape and bytes of every
input tensor (data, model weights, the state of each random generator it draws from; hashed by
:func:`pacbayes.hashing.feed_tensor`). A later run with the same inputs reads the result instead
of recomputing it, and continues from the generators' stored states, so every certified number is
the one a fresh run gives; any change of data, model, settings or seed changes the key.

An entry is one ``.npz`` file of plain arrays, read with ``allow_pickle=False`` (never code). It is
untrusted input: an entry that cannot be read, lacks an array, has another shape or dtype than the
phase expects, holds a non-finite number, or whose checksum (SHA-256 of its key and arrays) does not
match is ignored with one warning and the phase recomputed. Entries are written atomically.
"""

import os
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from pacbayes import __version__
from pacbayes.arguments import open_regular
from pacbayes.errors import PacBayesWarning
from pacbayes.hashing import canonical_json, feed_tensor, sha256
from pacbayes.report import write_atomically

CHECKSUM = "checksum"
"""The entry's array holding the SHA-256 of its key and its other arrays."""
ENTRY_LIMIT = 1 << 32
"""The largest entry read (bytes): far above any phase's result."""


class PhaseCacheWarning(PacBayesWarning):
    """A phase cache entry was unreadable, corrupt or tampered with and has been ignored (recomputed)."""


@dataclass(frozen=True)
class Phase:
    """One cacheable phase: ``name`` (part of the file name), ``version`` (raise it when the phase's code
    changes what it computes), ``settings`` (plain JSON values), ``inputs`` (name -> tensor) and
    ``expected`` (result name -> (shape, numpy dtype); None for a length that may vary): what a valid
    entry holds."""

    name: str
    version: int
    settings: dict
    inputs: dict
    expected: dict

    def key(self) -> str:
        """SHA-256 (hex) of the package version, the phase's name, version and settings, then its inputs."""
        plain = canonical_json(self.settings).decode()
        digest = sha256(f"pacbayes {__version__}|{self.name} v{self.version}|{plain}|".encode())
        for label in sorted(self.inputs):
            feed_tensor(digest, torch.as_tensor(self.inputs[label]), f"{label}|")
        return digest.hexdigest()


def like(tensor: torch.Tensor) -> tuple:
    """The ``expected`` entry (shape, numpy dtype) of a result shaped like ``tensor``."""
    return tuple(tensor.shape), torch.empty(0, dtype=tensor.dtype).numpy().dtype


def _checksum(key: str, arrays: dict) -> np.ndarray:
    digest = sha256(key.encode())
    for label in sorted(arrays):
        feed_tensor(digest, np.array(arrays[label], order="C"), f"{label}|")
    return np.frombuffer(digest.digest(), dtype=np.uint8).copy()


def _problem(arrays: dict, expected: dict) -> str | None:
    """Why ``arrays`` is not what the phase stores (None when it is)."""
    if set(arrays) != set(expected):
        return f"holds arrays {sorted(arrays)}, expected {sorted(expected)}"
    for label, (shape, dtype) in expected.items():
        array = arrays[label]
        fits = len(array.shape) == len(shape) and all(
            want in (None, got) for want, got in zip(shape, array.shape, strict=False)
        )
        if not fits or array.dtype != np.dtype(dtype):
            return f"{label} is {array.dtype}{tuple(array.shape)}, expected {np.dtype(dtype)}{tuple(shape)}"
        if array.dtype.kind in "fc" and not np.isfinite(array).all():
            return f"{label} has non-finite values"
    return None


class PhaseCache:
    """The phase results stored in ``folder`` (created on the first write)."""

    def __init__(self, folder):
        self.folder = os.fspath(folder)

    def path(self, phase: Phase, key: str) -> str:
        return os.path.join(self.folder, f"{phase.name}-{key}.npz")

    def get(self, phase: Phase, key: str) -> dict | None:
        """The stored result (name -> tensor) for ``phase`` under ``key`` (its :meth:`Phase.key`); None when
        there is none, or (with one :class:`PhaseCacheWarning`) when the entry is unreadable or invalid."""
        path = self.path(phase, key)
        if not os.path.lexists(path):
            return None
        try:
            with (
                open_regular(path, "phase cache entry", ENTRY_LIMIT) as stream,
                np.load(stream, allow_pickle=False) as entry,
            ):
                arrays = {label: entry[label] for label in entry.files}
            stored = arrays.pop(CHECKSUM, None)
            problem = _problem(arrays, phase.expected)
            if problem is None and (stored is None or not np.array_equal(stored, _checksum(key, arrays))):
                problem = "its checksum does not match its contents"
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
            problem = f"it cannot be read ({' '.join(str(err).split())})"
        if problem is not None:
            warnings.warn(f"cache entry {path} is ignored and recomputed: {problem}", PhaseCacheWarning, stacklevel=3)
            return None
        return {label: torch.from_numpy(array) for label, array in arrays.items()}

    def put(self, phase: Phase, key: str, result: dict) -> None:
        """Store ``result`` (name -> tensor, as ``phase.expected`` describes it) under ``key`` atomically."""
        arrays = {
            label: np.array(torch.as_tensor(value).detach().cpu().numpy(), order="C") for label, value in result.items()
        }
        arrays[CHECKSUM] = _checksum(key, arrays)
        os.makedirs(self.folder, exist_ok=True)
        write_atomically(self.path(phase, key), lambda stream: np.savez(stream, **arrays), binary=True)


def cached(cache: PhaseCache | None, phase: Phase, compute: Callable[[], dict], generators=()) -> dict:
    """``compute()`` (name -> tensor), or its stored result when ``cache`` holds one for ``phase``.

    ``generators``: the torch generators ``compute`` draws from: their states are inputs of the key and
    are stored with the result; on a hit each is set to the state it had after the stored run, so the
    draws that follow are the same as after a fresh run. The result's tensors are on the CPU.
    """
    if cache is None:
        return compute()
    states = {f"generator_{i}": g.get_state() for i, g in enumerate(generators)}
    keyed = Phase(
        phase.name,
        phase.version,
        phase.settings,
        {**phase.inputs, **states},
        {**phase.expected, **{label: like(s) for label, s in states.items()}},
    )
    key = keyed.key()  # before the work: it may change its inputs in place
    result = cache.get(keyed, key)
    if result is not None:
        for i, generator in enumerate(generators):
            generator.set_state(result.pop(f"generator_{i}"))
        return result
    result = compute()
    cache.put(keyed, key, {**result, **{f"generator_{i}": g.get_state() for i, g in enumerate(generators)}})
    return {label: torch.as_tensor(value).detach().cpu() for label, value in result.items()}


def phase_cache(folder) -> PhaseCache | None:
    """A :class:`PhaseCache` on ``folder``, or None for no folder (None or empty)."""
    return PhaseCache(folder) if folder else None
