"""Reading the idx file format of MNIST, Fashion-MNIST and KMNIST (gzip-compressed or not).

Format (LeCun, Cortes & Burges, http://yann.lecun.com/exdb/mnist/, "file formats"): two zero
bytes, one byte naming the element type, one byte giving the number of dimensions d, then d
big-endian uint32 sizes, then the elements in C order, big-endian.
"""

import gzip
import math
import os
import zlib

import numpy as np

from pacbayes.arguments import open_regular
from pacbayes.errors import InputError

_GZIP_MAGIC = b"\x1f\x8b"
_ELEMENT_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_DEFLATE_RATIO = 1032
"""Deflate (gzip) expands data at most 1032-fold: a .gz file of n bytes never holds more than 1032 n."""
MAX_IDX_BYTES = 1 << 34
"""The largest idx payload read (16 GiB; MNIST's training images are 47 MB)."""


def read_idx(path) -> np.ndarray:
    """The array stored in the idx file at ``path`` (gzip detected from its magic bytes).

    The header's shape is checked against what the file can hold before its data is read, so a
    header that overflows or promises more than the file has is refused without allocating it."""
    with open_regular(path, "idx file") as handle:
        compressed = handle.read(2) == _GZIP_MAGIC
        handle.seek(0)
        size = os.fstat(handle.fileno()).st_size
        capacity = min(size * _DEFLATE_RATIO if compressed else size, MAX_IDX_BYTES)
        try:
            return _read_array(gzip.GzipFile(fileobj=handle) if compressed else handle, path, capacity)
        except (OSError, EOFError, zlib.error) as err:
            raise InputError(f"{path}: gzip data is corrupt or truncated ({err}); download the file again") from None


def _read_array(stream, path, capacity: int) -> np.ndarray:
    """Header, then exactly the promised elements, from ``stream`` (which holds at most ``capacity`` bytes)."""
    head = stream.read(4)
    if len(head) < 4 or head[0] != 0 or head[1] != 0:
        raise InputError(
            f"{path}: not an idx file (bad magic number); "
            "expected an MNIST-style idx file such as t10k-images-idx3-ubyte[.gz]"
        )
    element_type, ndim = head[2], head[3]
    if element_type not in _ELEMENT_TYPES:
        raise InputError(f"{path}: unknown idx element type 0x{element_type:02x}; the file is corrupt")
    sizes = stream.read(4 * ndim)
    if ndim == 0 or len(sizes) < 4 * ndim:
        raise InputError(f"{path}: idx header is truncated; the file is corrupt, download it again")
    shape = tuple(int(s) for s in np.frombuffer(sizes, dtype=">u4"))
    dtype = np.dtype(_ELEMENT_TYPES[element_type])
    expected = math.prod(shape) * dtype.itemsize  # Python integers: no overflow
    room = capacity - 4 - 4 * ndim
    if expected > room:
        raise _size_error(path, shape, expected, f"the file can hold at most {max(room, 0):,}")
    data = stream.read(expected + 1)
    if len(data) != expected:
        raise _size_error(
            path, shape, expected, "the file holds more" if data[expected:] else f"it holds {len(data):,}"
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _size_error(path, shape: tuple, expected: int, held: str) -> InputError:
    return InputError(
        f"{path}: idx header promises shape {shape} ({expected:,} bytes of data) but {held}; it is truncated or corrupt"
    )
