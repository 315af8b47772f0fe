"""Choosing examples: a seeded subset of size m, the training set certify uses, the train/test overlap check."""

import numbers

import numpy as np
import torch

from pacbayes import checks
from pacbayes.data.dataset import Dataset
from pacbayes.data.labels import binarise, corrupt_labels
from pacbayes.errors import InputError


def take(ds: Dataset, m: int, seed: int) -> Dataset:
    """m examples of ``ds`` drawn without replacement (``numpy.random.default_rng(seed)``), in
    their original order. Drawn uniformly, the subset of an iid sample is an iid sample."""
    if isinstance(m, bool) or not isinstance(m, numbers.Integral) or m < 1:
        raise InputError(f"subset size m must be a positive integer, got {m!r}")
    if m > len(ds):
        raise InputError(
            f"{ds.name}: asked for m = {m} examples but it has only {len(ds)}; use m <= {len(ds)} or more data"
        )
    seed = checks.integer_at_least(seed, "seed", 0)
    chosen = np.sort(np.random.default_rng(seed).permutation(len(ds))[: int(m)])
    index = torch.from_numpy(chosen)
    return ds.derive(x=ds.x[index], labels=ds.labels[index], subset={"m": int(m), "seed": seed, "of": len(ds)})


def certified_subset(
    train: Dataset,
    *,
    m=None,
    seed: int = 0,
    binary: bool = True,
    negative_classes=None,
    corrupt: float = 0.0,
) -> Dataset:
    """The training examples ``certify(model, train, test, CertifyOptions(m=m, seed=seed, ...))`` computes
    its bounds and training error on, in the same order: for a single-logit model (``binary``) the
    labels binarised by ``negative_classes``, then the seeded subset of m (:func:`take`; all of
    ``train`` if m is None), then the seeded label corruption. Train the model on it (or on any
    superset) and give certify the whole ``train``; the test set must be disjoint from all of it.
    """
    data = binarise(train, negative_classes) if binary else train
    if m is not None:
        data = take(data, m, seed=seed)
    if corrupt > 0.0:
        data = corrupt_labels(data, corrupt, seed=seed)
    return data


def check_disjoint(train: Dataset, test: Dataset) -> None:
    """InputError if any example of ``test`` equals (bit for bit) an example of ``train``.

    A test error measured on points the bound was computed from is not an independent check.
    Rows are compared exactly through their bytes (-0.0 counted equal to 0.0).
    """
    if train.x.shape[1:] != test.x.shape[1:]:
        return
    seen = {row.tobytes() for row in _rows(train)}
    shared = [i for i, row in enumerate(_rows(test)) if row.tobytes() in seen]
    if shared:
        raise InputError(
            f"{len(shared)} test examples (first: test index {shared[0]}) also appear "
            f"in the training data ({train.name}); use a test set disjoint from it"
        )


def _rows(ds: Dataset) -> np.ndarray:
    return (ds.x.reshape(len(ds), -1).numpy() + np.float32(0.0)).astype(np.float32)
