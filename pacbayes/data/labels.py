"""Labels: the one label map of a report, class splits, -1/+1 signs, and seeded label corruption."""

import numbers

import torch

from pacbayes import checks
from pacbayes.data.dataset import Dataset
from pacbayes.errors import InputError
from pacbayes.seeds import numpy_rng

DEFAULT_NEGATIVE_CLASSES = (0, 1, 2, 3, 4)


def binarise(ds: Dataset, negative_classes=None) -> Dataset:
    """A two-class version of ``ds``: class 0 (sign -1) and class 1 (sign +1).

    Labels that take exactly two values are used as given (the smaller original value -> class 0)
    unless ``negative_classes`` is passed. Otherwise the original label values in
    ``negative_classes`` (default 0-4, the MNIST split of Valle-Pérez et al. 2019) become class 0
    and every other value class 1. The split is a prior choice: fix it before looking at the data.
    """
    if not isinstance(ds, Dataset):
        raise InputError(f"binarise needs a pacbayes.data.Dataset, got {type(ds).__name__}; load one with load_dataset")
    if negative_classes is None and ds.num_classes == 2:
        return ds.derive(
            binarisation={
                "rule": "two label values used as given",
                "negative": _jsonable(ds.classes[0]),
                "positive": _jsonable(ds.classes[1]),
            }
        )
    negative = _class_values(DEFAULT_NEGATIVE_CLASSES if negative_classes is None else negative_classes)
    is_negative = torch.tensor([c in negative for c in ds.classes], dtype=torch.bool)
    if bool(is_negative.all()) or not bool(is_negative.any()):
        side = "every" if bool(is_negative.all()) else "no"
        raise InputError(
            f"{ds.name}: the class split puts {side} label value among the negatives "
            f"{sorted(negative)} (labels: {list(ds.classes)}); choose negative "
            "classes that leave both sides non-empty"
        )
    positive = tuple(c for c, neg in zip(ds.classes, is_negative.tolist(), strict=False) if not neg)
    labels = (~is_negative[ds.labels]).to(torch.int64)
    classes = (tuple(sorted(negative)), positive)
    return ds.derive(
        labels=labels,
        classes=classes,
        binarisation={"rule": "class split", "negative": list(classes[0]), "positive": list(positive)},
    )


def signs(labels) -> torch.Tensor:
    """The -1/+1 (float64) labels y of binary class indices: class 0 -> -1, class 1 -> +1."""
    labels = torch.as_tensor(labels)
    if (
        labels.dim() != 1
        or labels.dtype.is_floating_point
        or labels.dtype.is_complex
        or not bool(((labels == 0) | (labels == 1)).all())
    ):
        raise InputError("signs needs a 1-D tensor of binary class indices 0/1; binarise the data first")
    return labels.to(torch.float64) * 2.0 - 1.0


def apply_label_map(ds: Dataset, reference: Dataset) -> Dataset:
    """``ds`` re-indexed to the classes of ``reference``: the one label map of a report.

    The training data (after any explicit class split) fixes which original label value is which
    class index; every other set is indexed by that map, never on its own (a test file holding only
    digits 6 and 8 must not become 6 -> 0, 8 -> 1). A class of ``ds`` (an original value, or a
    group of values after a split) maps to the class of ``reference`` that contains it; a class the
    map lacks is refused.
    """
    if ds.classes == reference.classes:
        return ds
    groups = [_members(c) for c in reference.classes]
    index = []
    for value in ds.classes:
        members = _members(value)
        owners = [i for i, group in enumerate(groups) if members <= group]
        if not owners:
            raise InputError(
                f"{ds.name}: label value {_jsonable(value)} does not occur among the classes "
                f"{[_jsonable(c) for c in reference.classes]} fixed by the training data "
                f"{reference.name}; drop those examples or give training data that has them"
            )
        index.append(owners[0])
    labels = torch.tensor(index, dtype=torch.int64)[ds.labels]
    return ds.derive(
        labels=labels,
        classes=reference.classes,
        label_map={"fixed_by": reference.name, "classes": [_jsonable(c) for c in reference.classes]},
    )


def corrupt_labels(ds: Dataset, fraction: float, seed: int) -> Dataset:
    """``ds`` with each label, independently with probability ``fraction``, replaced by a uniform class.

    Label corruption as in the experiments of Valle-Pérez, Camargo & Louis (ICLR 2019), done so that
    the corrupted sample is iid from the corrupted distribution: each example is corrupted on its
    own coin (probability c), and a corrupted label is uniform over the K classes, so it equals the
    original with probability 1/K (binary: each label flips with probability c/2). This is the noise
    model that :func:`pacbayes.families.marginal.clean_distribution_bound` inverts. A bound computed on
    corrupted data is for the corrupted distribution. Seeded with ``numpy.random.default_rng(seed)``.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0.0 <= float(fraction) <= 1.0:
        raise InputError(f"corruption fraction must be a number in [0, 1], got {fraction!r}")
    seed = checks.integer_at_least(seed, "seed", 0)
    n = len(ds)
    rng = numpy_rng(seed)
    chosen = rng.random(n) < float(fraction)
    replacement = rng.integers(0, ds.num_classes, size=n)
    labels = ds.labels.clone()
    labels[torch.from_numpy(chosen)] = torch.from_numpy(replacement[chosen])
    changed = int((labels != ds.labels).sum())
    return ds.derive(
        labels=labels,
        corruption={
            "fraction": float(fraction),
            "seed": seed,
            "rule": "each label independently replaced by a uniform class with probability fraction",
            "replaced": int(chosen.sum()),
            "changed": changed,
        },
    )


def _members(value) -> set:
    return set(value) if isinstance(value, tuple) else {value}


def _class_values(values) -> set:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise InputError(f"negative classes must be a list of label values, got {values!r}")
    result = set()
    for value in values:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise InputError(f"negative classes must be integer label values, got {value!r}")
        result.add(int(value))
    if not result:
        raise InputError("negative classes is empty; name at least one label value")
    return result


def _jsonable(value):
    return list(value) if isinstance(value, tuple) else value
