"""Reading the idx file format of MNIST, Fashion-MNIST and KMNIST (gzip-compressed or not).

Format (LeCun, Cortes & Burges, http://yann.lecun.com/exdb/mnist/, "file formats"): two zero
bytes, one byte naming the element type, one byte giving the number of dimensions d, then d
big-endian uint32 sizes, then the elements in C order, big-endian.
"""

import gzip
import os
import zlib

import numpy as np

from pacbayes.errors import InputError

_GZIP_MAGIC = b"\x1f\x8b"
_ELEMENT_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """The array stored in the idx file at ``path`` (gzip detected from its magic bytes)."""
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise InputError(
            f"{path}: not an idx file (bad magic number); "
            "expected an MNIST-style idx file such as t10k-images-idx3-ubyte[.gz]"
        )
    element_type, ndim = raw[2], raw[3]
    if element_type not in _ELEMENT_TYPES:
        raise InputError(f"{path}: unknown idx element type 0x{element_type:02x}; the file is corrupt")
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise InputError(f"{path}: idx header is truncated; the file is corrupt, download it again")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_ELEMENT_TYPES[element_type])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise InputError(
            f"{path}: idx header promises shape {shape} ({expected} bytes of data) but "
            f"the file holds {len(raw) - header}; it is truncated or corrupt"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def _read_bytes(path) -> bytes:
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file; give the path of an idx file")
    with open(path, "rb") as handle:
        raw = handle.read()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise InputError(f"{path}: gzip data is corrupt or truncated ({err}); download the file again") from None
