"""The :class:`Dataset` record, and the one place raw arrays become one.

Every loader (embedded MNIST, idx, CIFAR-10 batches, ``.npz``, ``.pt``) hands its raw ``x`` and
``y`` to :func:`from_arrays`, which checks them and converts them to the layout the rest of the
package expects: ``x`` float32 of shape (n, c, h, w) for images (or (n, d) for feature vectors),
``labels`` int64 class indices 0..K-1, ``classes`` the original label value of each index.
"""

import copy
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from pacbayes.errors import DataWarning, InputError

RANGE_FACTOR = 10.0
"""Train and test inputs whose largest absolute values differ by more than this were scaled differently."""


@dataclass(frozen=True)
class Dataset:
    """Examples, class indices and their provenance.

    x: float32 tensor (n, ...): images as (n, c, h, w), pixels in [0, 1] unless
        ``info["normalisation"]`` says otherwise; flat feature vectors as (n, d).
    labels: int64 tensor (n,) of class indices in 0..num_classes-1.
    classes: the original label value of each class index, in index order. After a class split
        by :func:`pacbayes.data.binarise` an entry is the tuple of original values it groups.
    name: a short human-readable name (``"mnist-embedded"``, a file name, ...).
    info: JSON-serialisable provenance (source, split, seed, binarisation, corruption, subset,
        normalisation); every transformation appends to it.
    """

    x: torch.Tensor
    labels: torch.Tensor
    classes: tuple
    name: str
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.x, torch.Tensor) or self.x.dtype != torch.float32:
            raise InputError("Dataset.x must be a float32 torch tensor; convert it with .float()")
        if not isinstance(self.labels, torch.Tensor) or self.labels.dtype != torch.int64 or self.labels.dim() != 1:
            raise InputError("Dataset.labels must be a 1-D int64 torch tensor of class indices")
        if self.x.dim() < 2 or self.x.shape[0] != self.labels.shape[0]:
            raise InputError(
                f"Dataset.x has shape {tuple(self.x.shape)} but there are "
                f"{self.labels.shape[0]} labels: need one row of x per label"
            )
        if len(self.labels) and (int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.classes)):
            raise InputError(f"Dataset.labels must lie in 0..{len(self.classes) - 1} (one index per entry of classes)")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, indices) -> "Dataset":
        """The examples at ``indices`` (a 1-D integer sequence), same classes; info records the count."""
        index = torch.as_tensor(np.asarray(indices), dtype=torch.int64)
        if index.dim() != 1:
            raise InputError("Dataset.subset takes a 1-D sequence of integer indices")
        if len(index) and (int(index.min()) < -len(self) or int(index.max()) >= len(self)):
            raise InputError(f"Dataset.subset index out of range for a dataset of {len(self)} examples")
        return self.derive(x=self.x[index], labels=self.labels[index], subset={"m": len(index), "of": len(self)})

    def derive(self, *, x=None, labels=None, classes=None, **info_updates) -> "Dataset":
        """A copy with some fields replaced and ``info_updates`` recorded in ``info``."""
        info = copy.deepcopy(self.info)
        info.update(info_updates)
        return Dataset(
            x=self.x if x is None else x,
            labels=self.labels if labels is None else labels,
            classes=self.classes if classes is None else tuple(classes),
            name=self.name,
            info=info,
        )


def from_arrays(x, y, *, name: str, info: dict) -> Dataset:
    """Check raw arrays and convert them to a :class:`Dataset`.

    x: any numeric array (numpy or torch). Integer pixels (uint8 and the like) are divided by 255;
        float (and boolean, as 0/1) arrays are taken as given. Shape (n, h, w) gains a channel axis; (n, h, w, c) with
        c in {1, 3} and the second axis not in {1, 3} is channels-last and is moved to (n, c, h, w);
        (n, d) stays a matrix of feature vectors.
    y: integer labels (integer-valued floats are accepted); the sorted distinct values become the
        classes, the smallest value class 0.
    """
    x = _as_numpy(x, "x")
    y = _as_numpy(y, "y")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise InputError(
            f"{name}: labels must be a 1-D array, got shape {y.shape}; pass class labels, not one-hot vectors"
        )
    if x.ndim < 2:
        raise InputError(f"{name}: x must have one row per example, got shape {x.shape}")
    if x.shape[0] != y.shape[0]:
        raise InputError(
            f"{name}: x has {x.shape[0]} examples but y has {y.shape[0]} labels; they must have the same length"
        )
    if x.shape[0] == 0:
        raise InputError(f"{name}: the data set is empty")
    if x.size == 0:
        raise InputError(
            f"{name}: x has shape {x.shape}: every example is empty; store one non-empty "
            "feature vector or image per example"
        )
    if not isinstance(info, dict):
        raise InputError(f"{name}: info must be a dict of facts about the data, got {type(info).__name__}")
    info = dict(info)
    if np.issubdtype(x.dtype, np.integer):
        pixels = torch.from_numpy(x.astype(np.float32) / np.float32(255.0))
        info.setdefault("pixel_scale", "integer values divided by 255")
    elif np.issubdtype(x.dtype, np.floating) or x.dtype == np.bool_:
        _check_float32_range(x, name)
        _warn_unscaled_floats(x, name)
        pixels = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        info.setdefault("pixel_scale", "float values taken as given")
    else:
        raise InputError(f"{name}: x must be numeric, got dtype {x.dtype}")
    pixels = _channels_first(pixels)
    values = _integer_labels(y, name)
    classes, labels = np.unique(values, return_inverse=True)
    if len(classes) < 2:
        raise InputError(
            f"{name}: labels take only the value {classes[0]}; a classification bound needs at least 2 classes"
        )
    info.setdefault("normalisation", "none")
    return Dataset(
        x=pixels,
        labels=torch.from_numpy(labels.reshape(-1).astype(np.int64)),
        classes=tuple(int(c) for c in classes),
        name=name,
        info=info,
    )


def _check_float32_range(x: np.ndarray, name: str) -> None:
    """Refuse float inputs that are not finite, or finite beyond the float32 range (about 3.4e38) in which
    inputs are stored and computed, before they are cast to it."""
    if not bool(np.isfinite(x).all()):
        raise InputError(f"{name}: x contains NaN or infinite values; clean the data first")
    largest, limit = float(np.abs(x).max()), float(np.finfo(np.float32).max)
    if largest > limit:
        raise InputError(
            f"{name}: x holds values as large as {largest:.3g}, beyond the float32 range (+-{limit:.3g}) in which "
            "inputs are stored; rescale the data"
        )


def _warn_unscaled_floats(x: np.ndarray, name: str) -> None:
    """A DataWarning when float inputs are non-negative and exceed 1, as raw pixel values in [0, 255] do:
    integer pixels are divided by 255, float ones are taken as given."""
    if x.dtype == np.bool_ or float(x.min()) < 0.0:
        return  # 0/1 flags, or centred data (standardised features), not raw pixels
    largest = float(x.max())
    if largest > 1.0:
        warnings.warn(
            f"{name}: float inputs reach {largest:.4g}, above 1, and were taken as given (integer pixels are "
            "divided by 255, floats are not); if these are raw pixel values, divide them by 255 (or store them "
            "as uint8) so that they match how the model was trained and how the other set is scaled",
            DataWarning,
            stacklevel=4,
        )


def largest_value(ds: "Dataset") -> float:
    """The largest absolute input value of ``ds`` (0.0 for an empty set)."""
    return float(ds.x.abs().max()) if ds.x.numel() else 0.0


def scaling(ds: "Dataset") -> str:
    """How ``ds``'s inputs were scaled, from its info: the pixel scale and the normalisation."""
    normalisation = ds.info.get("normalisation", "none")
    mode = normalisation.get("mode") if isinstance(normalisation, dict) else normalisation
    return f"{ds.info.get('pixel_scale', 'as given')}, normalisation {mode}"


def check_value_ranges(train: "Dataset", test: "Dataset", factor: float = RANGE_FACTOR) -> None:
    """A DataWarning when the largest absolute input of ``train`` and of ``test`` differ by more than
    ``factor``: the two sets were almost surely scaled differently (e.g. floats in [0, 255] against
    uint8 pixels divided by 255), and the test error would measure the scaling, not the model."""
    a, b = largest_value(train), largest_value(test)
    if min(a, b) == 0.0 or max(a, b) / min(a, b) <= factor:
        return
    warnings.warn(
        f"the training inputs reach {a:.4g} but the test inputs {b:.4g} ({max(a, b) / min(a, b):.0f}x apart): "
        f"training set {train.name} was scaled by {scaling(train)}; test set {test.name} by {scaling(test)}; "
        "scale both sets the same way, as the model was trained",
        DataWarning,
        stacklevel=3,
    )


def _as_numpy(array, what: str) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        tensor = array.detach().cpu()
        try:
            if tensor.layout != torch.strided:
                tensor = tensor.to_dense()
            if tensor.is_floating_point() and tensor.dtype not in (torch.float16, torch.float32, torch.float64):
                tensor = tensor.to(torch.float32)  # bfloat16, float8: numpy has no such dtype
            return tensor.numpy()
        except (TypeError, RuntimeError) as err:
            raise InputError(
                f"{what} is a {tensor.dtype} tensor that numpy cannot represent ({err}); "
                "store a float or integer tensor"
            ) from None
    try:
        result = np.asarray(array)
    except (TypeError, ValueError) as err:
        raise InputError(f"{what} is not an array ({err}); store a numeric array") from None
    if result.dtype == object:
        raise InputError(f"{what} is not a numeric array (dtype object); store a numeric array")
    return result


def _integer_labels(y: np.ndarray, name: str) -> np.ndarray:
    if y.dtype == np.bool_ or (
        np.issubdtype(y.dtype, np.integer) and (y.size == 0 or int(y.max()) <= np.iinfo(np.int64).max)
    ):
        return y.astype(np.int64)
    if (
        np.issubdtype(y.dtype, np.floating)
        and np.all(np.isfinite(y))
        and np.all(y == np.round(y))
        and np.all(np.abs(y) <= 2.0**53)
    ):
        return y.astype(np.int64)
    if y.dtype.kind in "USO":
        raise InputError(
            f"{name}: labels are strings (dtype {y.dtype}), but they must be integer class labels; map the "
            "names to integers with a label map first, e.g. names, y = numpy.unique(y, return_inverse=True), "
            "and use the same map for the test labels"
        )
    raise InputError(
        f"{name}: labels must be integers (class labels: finite whole numbers of size at most "
        f"2^53), got dtype {y.dtype} with other values"
    )


def _channels_first(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 3:
        return x.unsqueeze(1)
    if x.dim() == 4 and x.shape[3] in (1, 3) and x.shape[1] not in (1, 3):
        return x.permute(0, 3, 1, 2).contiguous()
    return x
