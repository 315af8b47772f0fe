"""CIFAR-10 "python version" batches, read without running code from the files.

The batches (Krizhevsky 2009, https://www.cs.toronto.edu/~kriz/cifar.html) are Python pickles of
a dict with ``data`` (n x 3072 uint8: 1024 red, 1024 green, 1024 blue values, each a 32x32 image
in row-major order) and ``labels`` (n ints in 0..9). A pickle may name any callable to run, so
they are read by an unpickler that resolves only the few names numpy arrays need and refuses
everything else. numpy pickles an array as an empty one filled from bytes in the file; a request
to allocate a non-empty array (which could ask for terabytes) is refused, and so is a file larger
than any CIFAR-10 batch.
"""

import codecs
import io
import math
import os
import pickle

import numpy as np

from pacbayes.arguments import open_regular
from pacbayes.errors import InputError

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
MAX_BATCH_BYTES = 1 << 28
"""The largest batch file read (256 MiB; a CIFAR-10 batch is 31 MB)."""

_NUMPY_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]


def _empty_only(shape) -> None:
    """Refuse an allocation that is not numpy's empty placeholder (its bytes come from the file)."""
    count = math.prod(shape) if isinstance(shape, (tuple, list)) else shape
    if isinstance(count, bool) or not isinstance(count, int) or count != 0:
        raise pickle.UnpicklingError(f"the pickle allocates an array of shape {shape!r} before its data")


def _reconstruct(subtype, shape, dtype):
    _empty_only(shape)
    return _NUMPY_RECONSTRUCT(subtype, shape, dtype)


class _PickledArray(np.ndarray):
    """numpy.ndarray as a pickle sees it: calling it to allocate a non-empty array is refused."""

    def __new__(cls, shape, *args, **kwargs):
        _empty_only(shape)
        return super().__new__(cls, shape, *args, **kwargs)


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _PickledArray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}


class _RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a callable outside the allowed set."""


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays; any other global is refused."""

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise _RefusedGlobal(f"refusing to load {module}.{name}") from None


def is_cifar_directory(path) -> bool:
    """True if ``path`` holds CIFAR-10 python batches (a test batch or the first train batch)."""
    return any(os.path.isfile(os.path.join(path, name)) for name in (TEST_BATCH, TRAIN_BATCHES[0]))


def read_cifar_split(directory, split: str):
    """(x uint8 (n, 3, 32, 32), y int64 (n,)) for split "train" (data_batch_1..5) or "test" (test_batch)."""
    names = TRAIN_BATCHES if split == "train" else (TEST_BATCH,)
    parts = [read_cifar_batch(os.path.join(directory, name)) for name in names]
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])


def read_cifar_batch(path):
    """(x uint8 (n, 3, 32, 32), y int64 (n,)) from one CIFAR-10 python batch file."""
    if not os.path.isfile(path):
        raise InputError(
            f"{path}: CIFAR-10 batch missing; the directory must hold data_batch_1..data_batch_5 and test_batch"
        )
    with open_regular(path, "CIFAR-10 batch", MAX_BATCH_BYTES) as handle:
        raw = handle.read()
    try:
        batch = _ArrayOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except _RefusedGlobal as err:
        raise InputError(
            f"{path}: not a CIFAR-10 batch we can read safely ({err}, which could "
            "run code); use the original cifar-10-batches-py files"
        ) from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        OverflowError,
    ) as err:
        raise InputError(
            f"{path}: corrupt CIFAR-10 batch ({type(err).__name__}: {err}); download the file again"
        ) from None
    if not isinstance(batch, dict):
        raise InputError(f"{path}: a CIFAR-10 batch must be a dict with 'data' and 'labels'")
    batch = {key.decode("latin1") if isinstance(key, bytes) else key: value for key, value in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise InputError(
            f"{path}: CIFAR-10 batch lacks 'data' or 'labels' (CIFAR-100 files, with 'fine_labels', are not supported)"
        )
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise InputError(f"{path}: CIFAR-10 'data' must be a uint8 array of shape (n, 3072)")
    labels = np.asarray(batch["labels"])
    if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"{path}: CIFAR-10 'labels' must be {data.shape[0]} integers, one per image")
    return np.asarray(data).reshape(-1, 3, 32, 32), labels.astype(np.int64)
