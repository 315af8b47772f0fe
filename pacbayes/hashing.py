"""Content digests: the one place pacbayes hashes files, arrays, tensors and JSON records.

Every key and checksum the package writes is built from these primitives, so records written by one
version are matched by the next only while they stay exactly as they are:

- :func:`feed_tensor` feeds a label, an array's dtype (numpy's ``dtype.str``, e.g. ``"<f4"``) and
  shape, then its C-ordered bytes to a digest, so that equal values of another dtype or shape differ
  (the attempts ledger's keys, the phase and report caches, the data hashes of a report's provenance);
- :func:`tensors_sha256` is SHA-256 over tensors fed in turn, :func:`file_sha256` over a file's bytes,
  :func:`bytes_sha256` over raw byte strings (no dtype or shape);
- :func:`json_digest` starts a SHA-256 with a record's canonical JSON (keys sorted), to which tensors
  may be fed; :func:`json_sha256` is its hex digest;
- :func:`row_keys` gives each row of a matrix a 128-bit BLAKE2b digest of its bytes (duplicate checks).

Torch-free: a tensor is anything with ``detach().cpu().numpy()``; a numpy array is hashed as given.
"""

import hashlib
import json

import numpy as np

FILE_BLOCK = 1 << 20
"""Bytes read at a time when hashing a file."""
ROW_KEY_BYTES = 16
"""Digest size of :func:`row_keys` (128 bits: a collision is far less likely than a flipped bit)."""


def sha256(data: bytes = b""):
    """A new SHA-256 digest (``hashlib``), fed ``data``."""
    return hashlib.sha256(data)


def _array(value) -> np.ndarray:
    """A tensor's (CPU) values, or a numpy array, as a C-ordered array of at least one dimension."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.ascontiguousarray(value)


def feed_tensor(digest, tensor, label: str = "") -> None:
    """Feed ``label``, the tensor's dtype and shape, then its (C-ordered, CPU) bytes to ``digest``."""
    array = _array(tensor)
    digest.update(f"{label}{array.dtype.str}{array.shape};".encode())
    digest.update(array.tobytes())


def tensors_sha256(*tensors) -> str:
    """SHA-256 over each tensor's dtype, shape and (C-ordered, CPU) bytes, in order (hex)."""
    digest = sha256()
    for tensor in tensors:
        feed_tensor(digest, tensor)
    return digest.hexdigest()


def bytes_sha256(*chunks: bytes) -> str:
    """SHA-256 of the byte strings ``chunks`` one after another (hex): no dtype, shape or separator."""
    digest = sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path) -> str:
    """SHA-256 of the bytes of the file at ``path`` (hex)."""
    digest = sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(FILE_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def canonical_json(value, *, allow_nan: bool = True) -> bytes:
    """``value`` as JSON with its keys sorted (UTF-8): equal records give equal bytes. ``allow_nan=False``
    refuses infinities and NaN (ValueError) instead of writing JavaScript's ``Infinity`` and ``NaN``."""
    return json.dumps(value, sort_keys=True, allow_nan=allow_nan).encode()


def json_digest(value, *, allow_nan: bool = True):
    """A SHA-256 digest fed the :func:`canonical_json` of ``value``, to feed tensors to or read."""
    return sha256(canonical_json(value, allow_nan=allow_nan))


def json_sha256(value, *, allow_nan: bool = True) -> str:
    """SHA-256 of the :func:`canonical_json` of ``value`` (hex)."""
    return json_digest(value, allow_nan=allow_nan).hexdigest()


def row_keys(rows: np.ndarray) -> list:
    """One key per row of the 2-D array ``rows``: the :data:`ROW_KEY_BYTES`-byte BLAKE2b digest of its bytes."""
    rows = np.ascontiguousarray(rows)
    return [hashlib.blake2b(row.data, digest_size=ROW_KEY_BYTES).digest() for row in rows]


__all__ = [
    "bytes_sha256",
    "canonical_json",
    "feed_tensor",
    "file_sha256",
    "json_digest",
    "json_sha256",
    "row_keys",
    "sha256",
    "tensors_sha256",
]
