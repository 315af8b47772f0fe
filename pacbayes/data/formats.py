"""``load_dataset``: the embedded default or a user's files, in the formats people have.

Supported (never downloads):

- ``"mnist-embedded"``: see :mod:`pacbayes.data.embedded`.
- A directory of MNIST / Fashion-MNIST / KMNIST idx files, gzip-compressed or not:
  ``train-images-idx3-ubyte[.gz]`` + ``train-labels-idx1-ubyte[.gz]`` (split "train") and
  ``t10k-images-idx3-ubyte[.gz]`` + ``t10k-labels-idx1-ubyte[.gz]`` (split "test"); a "." in
  place of the last "-" is accepted too.
- A torchvision root: ``root/MNIST/raw`` (also FashionMNIST, KMNIST), or ``root/raw``.
- A CIFAR-10 python directory ``cifar-10-batches-py`` (or its parent): ``data_batch_1..5`` are
  split "train", ``test_batch`` split "test"; read without running code (:mod:`.cifar`).
- ``.npz`` with arrays ``x`` and ``y`` (or ``x_train``/``y_train`` and ``x_test``/``y_test``,
  picked by ``split``), read with ``allow_pickle=False``.
- ``.pt`` / ``.pth`` holding an ``(x, y)`` tuple or a ``{"x": ..., "y": ...}`` dict (or the
  ``_train``/``_test`` keys above), read with ``torch.load(weights_only=True)``.

When a directory or file holds both splits, ``split`` must say which one; a file holding a single
``x``, ``y`` pair is that pair whatever ``split`` is (``info["split"]`` records the request).
"""

import os
import re
import zipfile
import zlib

import numpy as np
import torch

from pacbayes.arguments import open_regular
from pacbayes.checks import zip_damage
from pacbayes.data.cifar import is_cifar_directory, read_cifar_split
from pacbayes.data.dataset import Dataset, from_arrays
from pacbayes.data.embedded import NAME as EMBEDDED_NAME
from pacbayes.data.embedded import load_mnist_embedded
from pacbayes.data.idx import read_idx
from pacbayes.errors import InputError, one_line

SPLITS = ("train", "test")
TORCHVISION_FOLDERS = ("MNIST", "FashionMNIST", "KMNIST")
_IDX_PREFIX = {"train": "train", "test": "t10k"}
_PICKLED_CLASS = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
"""How torch.load(weights_only=True) names the class of a pickled object it refuses."""


def load_dataset(spec: str, *, split=None) -> Dataset:
    """Load ``spec`` ("mnist-embedded" or a path, see the module docstring) as a :class:`Dataset`.

    split: None, "train" or "test". Pixels come back in [0, 1] (integer pixels / 255), images as
    (n, c, h, w), labels as class indices of the sorted distinct label values.
    """
    if split is not None and split not in SPLITS:
        raise InputError(f"unknown split {split!r}; use 'train', 'test' or none")
    if not isinstance(spec, (str, os.PathLike)):
        raise InputError(f"spec must be a path or '{EMBEDDED_NAME}', got {type(spec).__name__}")
    if spec == EMBEDDED_NAME:
        return load_mnist_embedded(split)
    path = os.fspath(spec)
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file or directory; give a data file or directory, or '{EMBEDDED_NAME}'")
    if os.path.isdir(path):
        return _load_directory(path, split)
    extension = os.path.splitext(path)[1].lower()
    if extension == ".npz":
        return _load_npz(path, split)
    if extension in (".pt", ".pth"):
        return _load_torch(path, split)
    raise InputError(
        f"{path}: unknown data format; give a .npz or .pt file, a directory of idx "
        f"files or CIFAR-10 batches, or '{EMBEDDED_NAME}'"
    )


def _load_directory(path, split) -> Dataset:
    candidates = [path, os.path.join(path, "raw"), os.path.join(path, "cifar-10-batches-py")]
    candidates += [os.path.join(path, name, "raw") for name in TORCHVISION_FOLDERS]
    found = [
        (folder, kind)
        for folder in candidates
        if os.path.isdir(folder)
        for kind in ("idx", "cifar")
        if _holds(folder, kind)
    ]
    if not found:
        raise InputError(
            f"{path}: found no MNIST-style idx files or CIFAR-10 batches here "
            "(nor in raw/, MNIST/raw/, FashionMNIST/raw/, cifar-10-batches-py/)"
        )
    if len(found) > 1:
        places = ", ".join(folder for folder, _ in found)
        raise InputError(f"{path}: holds more than one data set ({places}); point at one of them")
    folder, kind = found[0]
    available = [s for s in SPLITS if _has_split(folder, kind, s)]
    chosen = _choose_split(path, split, available)
    info = {"source": os.path.abspath(folder), "split": chosen}
    if kind == "cifar":
        x, y = read_cifar_split(folder, chosen)
        info["format"] = "cifar-10 python batches"
    else:
        images, labels = (_idx_file(folder, chosen, part) for part in ("images", "labels"))
        x, y = read_idx(images), read_idx(labels)
        info["format"] = "idx"
    return from_arrays(x, y, name=os.path.basename(os.path.normpath(path)), info=info)


def _holds(folder, kind) -> bool:
    return any(_has_split(folder, kind, s) for s in SPLITS) if kind == "idx" else is_cifar_directory(folder)


def _has_split(folder, kind, split) -> bool:
    if kind == "cifar":
        name = "data_batch_1" if split == "train" else "test_batch"
        return os.path.isfile(os.path.join(folder, name))
    return _idx_file(folder, split, "images") is not None and _idx_file(folder, split, "labels") is not None


def _idx_file(folder, split, part):
    """Path of the ``part`` ("images"/"labels") idx file of ``split`` in ``folder``, or None."""
    prefix, rank = _IDX_PREFIX[split], "idx3" if part == "images" else "idx1"
    for separator in ("-", "."):
        for suffix in ("", ".gz"):
            candidate = os.path.join(folder, f"{prefix}-{part}{separator}{rank}-ubyte{suffix}")
            if os.path.isfile(candidate):
                return candidate
    return None


def _choose_split(path, split, available):
    if split is None:
        if len(available) > 1:
            raise InputError(f"{path}: holds both a train and a test split; choose one with split 'train' or 'test'")
        return available[0]
    if split not in available:
        raise InputError(f"{path}: has no {split} split (found: {', '.join(available)})")
    return split


def _load_npz(path, split) -> Dataset:
    fix = "save it with numpy.savez(path, x=..., y=...)"
    with open_regular(path, "data file") as stream:
        try:
            loaded = np.load(stream, allow_pickle=False)
            arrays = None
            if isinstance(loaded, np.lib.npyio.NpzFile):
                with loaded:
                    arrays = {key: loaded[key] for key in loaded.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
            raise InputError(f"{path}: not a readable .npz of numeric arrays ({err}); {fix}") from None
    if arrays is None:
        raise InputError(f"{path}: holds one .npy array, not an .npz archive of x and y; {fix}")
    x, y, chosen = _pick_arrays(path, arrays, split)
    info = {"source": os.path.abspath(path), "format": "npz", "split": chosen}
    return from_arrays(x, y, name=os.path.basename(path), info=info)


def _load_torch(path, split) -> Dataset:
    with open_regular(path, "data file") as stream:
        damage = zip_damage(stream)
        if damage:
            raise InputError(f"{path}: the data file is corrupt ({damage}); save or copy it again")
        stream.seek(0)
        try:
            content = torch.load(stream, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises many types for foreign files (UnpicklingError, RuntimeError, ...)
            raise InputError(_unloadable_torch_file(path, err)) from None
    if isinstance(content, (tuple, list)) and len(content) == 2:
        content = {"x": content[0], "y": content[1]}
    if not isinstance(content, dict):
        raise InputError(
            f"{path}: holds a {type(content).__name__}; expected an (x, y) tuple or a dict with keys 'x' and 'y'"
        )
    x, y, chosen = _pick_arrays(path, content, split)
    info = {"source": os.path.abspath(path), "format": "pt", "split": chosen}
    return from_arrays(x, y, name=os.path.basename(path), info=info)


def _unloadable_torch_file(path, err: Exception) -> str:
    """The one-line refusal of a .pt file torch.load(weights_only=True) would not read: a pickled object
    (a TensorDataset, a DataLoader, ...) is named with the fix; any other failure quotes torch's reason."""
    pickled = _PICKLED_CLASS.search(str(err))
    if pickled:
        return (
            f"{path}: holds a pickled {pickled.group(1)} object, which pacbayes does not unpickle (it could run "
            "code); save its tensors instead: torch.save((x, y), path) (for a TensorDataset ds: "
            "torch.save(ds.tensors, path))"
        )
    return (
        f"{path}: not a .pt file of plain tensors that loads with weights_only=True ({one_line(err)}); "
        "save torch.save((x, y), path)"
    )


def _pick_arrays(path, arrays: dict, split):
    """(x, y, split) from a mapping with keys x, y or x_train, y_train, x_test, y_test."""
    if "x" in arrays and "y" in arrays:
        return arrays["x"], arrays["y"], split
    available = [s for s in SPLITS if f"x_{s}" in arrays and f"y_{s}" in arrays]
    if not available:
        raise InputError(
            f"{path}: needs arrays 'x' and 'y' (or x_train/y_train, x_test/y_test); found {sorted(map(str, arrays))}"
        )
    chosen = _choose_split(path, split, available)
    return arrays[f"x_{chosen}"], arrays[f"y_{chosen}"], chosen
