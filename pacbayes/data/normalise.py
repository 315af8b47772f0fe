"""Input normalisation, which must match how the model was trained.

Modes:

- ``"none"`` (default): pixels stay in [0, 1] (integer pixels / 255), as loaded.
- ``"standard"``: x <- (x - mean) / std per channel (axis 1), with mean and std given by the user,
  either one number for all channels or one per channel. The usual MNIST values are
  ``MNIST_MEAN_STD`` = (0.1307, 0.3081), the pixel mean and standard deviation of MNIST's
  training images in [0, 1] (as in torchvision's MNIST examples).

A model trained on normalised inputs must be evaluated (and its kernel built) on inputs
normalised the same way; the choice is recorded in ``info["normalisation"]``.
"""

import math
import numbers

import torch

from pacbayes.data.dataset import Dataset
from pacbayes.errors import InputError

MODES = ("none", "standard")
MNIST_MEAN_STD = (0.1307, 0.3081)


def normalise(ds: Dataset, mode: str = "none", *, mean=None, std=None) -> Dataset:
    """``ds`` normalised by ``mode`` ("none" or "standard"; see the module docstring)."""
    if mode not in MODES:
        raise InputError(f"unknown normalisation {mode!r}; use one of {', '.join(MODES)}")
    if mode == "none":
        if mean is not None or std is not None:
            raise InputError("mean/std are only used with normalisation 'standard'")
        return ds
    if ds.info.get("normalisation", "none") != "none":
        raise InputError(f"{ds.name}: already normalised ({ds.info['normalisation']}); normalise once")
    channels = ds.x.shape[1] if ds.x.dim() == 4 else 1
    means = _per_channel(mean, "mean", channels)
    stds = _per_channel(std, "std", channels)
    if any(s <= 0 for s in stds):
        raise InputError(f"std must be > 0, got {stds}")
    shape = (1, channels) + (1,) * (ds.x.dim() - 2) if ds.x.dim() == 4 else (1,)
    x = (ds.x - torch.tensor(means).reshape(shape)) / torch.tensor(stds).reshape(shape)
    return ds.derive(x=x.to(torch.float32), normalisation={"mode": "standard", "mean": means, "std": stds})


def _per_channel(value, what: str, channels: int) -> list:
    if value is None:
        raise InputError(
            f"normalisation 'standard' needs {what}: one number or one per channel "
            f"(MNIST: mean {MNIST_MEAN_STD[0]}, std {MNIST_MEAN_STD[1]})"
        )
    values = [value] if isinstance(value, numbers.Real) else list(value)
    if len(values) == 1:
        values = values * channels
    if len(values) != channels or not all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in values
    ):
        raise InputError(f"{what} must be one finite number or {channels} (one per channel), got {value!r}")
    return [float(v) for v in values]
