"""Choosing examples: a seeded subset of size m, the training set certify uses, and the checks that
S holds distinct points and that the test set shares none of them."""

import numbers

import numpy as np
import torch

from pacbayes import checks
from pacbayes.data.dataset import Dataset
from pacbayes.data.labels import binarise, corrupt_labels
from pacbayes.errors import InputError
from pacbayes.hashing import row_keys
from pacbayes.seeds import numpy_rng


def subset_positions(ds: Dataset, m: int, seed: int) -> np.ndarray:
    """The ascending positions in ``ds`` of the m examples :func:`take` keeps."""
    if isinstance(m, bool) or not isinstance(m, numbers.Integral) or m < 1:
        raise InputError(f"subset size m must be a positive integer, got {m!r}")
    if m > len(ds):
        raise InputError(
            f"{ds.name}: asked for m = {m} examples but it has only {len(ds)}; use m <= {len(ds)} or more data"
        )
    seed = checks.integer_at_least(seed, "seed", 0)
    return np.sort(numpy_rng(seed).permutation(len(ds))[: int(m)])


def take(ds: Dataset, m: int, seed: int) -> Dataset:
    """m examples of ``ds`` drawn without replacement (``numpy.random.default_rng(seed)``), in
    their original order. Drawn uniformly, the subset of an iid sample is an iid sample."""
    index = torch.from_numpy(subset_positions(ds, m, seed))
    return ds.derive(x=ds.x[index], labels=ds.labels[index], subset={"m": int(m), "seed": int(seed), "of": len(ds)})


def certified_subset(
    train: Dataset,
    *,
    m=None,
    seed: int = 0,
    binary: bool = True,
    negative_classes=None,
    corrupt: float = 0.0,
    allow_duplicates: bool = False,
) -> Dataset:
    """The training examples ``certify(model, train, test, CertifyOptions(m=m, seed=seed, ...))`` computes
    its bounds and training error on, in the same order: for a single-logit model (``binary``) the
    labels binarised by ``negative_classes``, then the seeded subset of m (:func:`take`; all of
    ``train`` if m is None), checked to hold distinct inputs (:func:`check_distinct`), then the seeded
    label corruption. Train the model on it (or on any superset) and give certify the whole ``train``;
    the test set must be disjoint from all of it.
    """
    data = binarise(train, negative_classes) if binary else train
    positions = np.arange(len(data))
    if m is not None:
        positions = subset_positions(data, m, seed)
        data = take(data, m, seed=seed)
    data = check_distinct(data, allow_duplicates=allow_duplicates, positions=positions)
    if corrupt > 0.0:
        data = corrupt_labels(data, corrupt, seed=seed)
    return data


def check_distinct(ds: Dataset, *, allow_duplicates: bool = False, positions=None) -> Dataset:
    """``ds`` with ``info["distinct_points"]``; InputError if an input repeats, unless ``allow_duplicates``.

    A bound counts every row of S as an independent draw, so an input copied k times counts k times
    at no cost (random labels repeated 4 times certify far below chance). Rows are the flattened
    inputs compared as :func:`check_disjoint` compares them; labels play no part: the same input
    with another label is as much a copy (a relabelled one) as an exact one. With
    ``allow_duplicates`` the repeats are taken as independent draws that coincided (the data
    distribution has atoms) and ``info["duplicates_assumption"]`` says so. ``positions``: where each
    row of ``ds`` sits in the data as given, for the message (default: its own index).
    """
    checks.flag(allow_duplicates, "allow_duplicates")
    first = _first_copies(ds)
    repeats = np.flatnonzero(first != np.arange(len(ds)))
    distinct = len(ds) - len(repeats)
    if len(repeats) == 0:
        return ds.derive(distinct_points=distinct)
    if not allow_duplicates:
        raise _repeated_inputs(ds, first, repeats, np.arange(len(ds)) if positions is None else positions)
    return ds.derive(
        distinct_points=distinct,
        duplicates_assumption=(
            f"the data distribution has atoms: the {len(ds)} training points hold {distinct} distinct inputs, and "
            "every repeated input (also one in both parts of a data-dependent prior's split) is an independent "
            "draw that happened to coincide, not a copy"
        ),
    )


def _repeated_inputs(ds: Dataset, first: np.ndarray, repeats: np.ndarray, positions) -> InputError:
    """The refusal of ``ds``'s repeated rows: how many, the first pair (at ``positions``), how many relabelled."""
    relabelled = int((ds.labels[repeats] != ds.labels[first[repeats]]).sum())
    return InputError(
        f"{ds.name}: {len(repeats)} of the {len(ds)} training examples repeat an earlier input exactly "
        f"(first: indices {positions[first[repeats[0]]]} and {positions[repeats[0]]}"
        + (f"; {relabelled} of them under another label" if relabelled else "")
        + "); a bound counts each row as an independent draw, so copies inflate m: remove the duplicates, "
        "or pass --allow-duplicates (allow_duplicates=True) if the data distribution has atoms"
    )


def duplicates_assumption(ds: Dataset) -> tuple:
    """The assumption :func:`check_distinct` recorded for ``ds`` (one string), or () if none was needed."""
    text = ds.info.get("duplicates_assumption")
    return (text,) if text else ()


def check_disjoint(train: Dataset, test: Dataset) -> None:
    """InputError if any example of ``test`` equals (bit for bit) an example of ``train``.

    A test error measured on points the bound was computed from is not an independent check.
    Rows are the flattened inputs, so a copy in another shape ((n, 4, 5) against (n, 20)) is
    caught; they are compared exactly through their float32 bytes (-0.0 counted equal to 0.0).
    """
    shared = shared_examples(train, test)
    if len(shared):
        raise InputError(
            f"{len(shared)} test examples (first: test index {shared[0]}) also appear "
            f"in the training data ({train.name}); use a test set disjoint from it"
        )


def shared_examples(reference: Dataset, other: Dataset) -> list:
    """The indices of the examples of ``other`` whose flattened input equals one of ``reference``."""
    seen = set(_row_keys(reference))
    return [i for i, key in enumerate(_row_keys(other)) if key in seen]


def _first_copies(ds: Dataset) -> np.ndarray:
    """For each row, the index of the first row with the same input (its own index if none is earlier)."""
    first: dict = {}
    return np.array([first.setdefault(key, i) for i, key in enumerate(_row_keys(ds))], dtype=np.int64)


def _row_keys(ds: Dataset, chunk: int = 4096) -> list:
    """One key per example: the 128-bit BLAKE2b digest of its flattened float32 input, -0.0 made 0.0
    (a chunk of rows at a time, so large sets are not copied whole; a collision could only refuse)."""
    flat = ds.x.reshape(len(ds), -1)
    keys = []
    for start in range(0, len(ds), chunk):
        rows = np.ascontiguousarray(flat[start : start + chunk].numpy() + np.float32(0.0), dtype=np.float32)
        keys += row_keys(rows)
    return keys
