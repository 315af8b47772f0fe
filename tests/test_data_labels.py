"""Binarisation, signs, seeded corruption and subsets, normalisation, the overlap check."""

import json

import numpy as np
import pytest
import torch

from pacbayes.data import (
    Dataset,
    apply_label_map,
    binarise,
    check_disjoint,
    corrupt_labels,
    from_arrays,
    normalise,
    signs,
    take,
)
from pacbayes.errors import InputError


def digits_dataset(n=2000, seed=0, classes=10):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 1, 4, 4), dtype=np.uint8)
    return from_arrays(x, rng.integers(0, classes, size=n), name="synthetic", info={"split": None})


def test_default_class_split_is_0_4_versus_5_9():
    ds = digits_dataset()
    original = np.array([ds.classes[i] for i in ds.labels.tolist()])
    binary = binarise(ds)
    assert binary.num_classes == 2 and binary.classes == ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9))
    assert np.array_equal(binary.labels.numpy(), (original >= 5).astype(np.int64))
    assert torch.equal(binary.x, ds.x)
    assert binary.info["binarisation"]["negative"] == [0, 1, 2, 3, 4]
    custom = binarise(ds, negative_classes=[1, 7])
    assert np.array_equal(custom.labels.numpy(), (~np.isin(original, [1, 7])).astype(np.int64))
    assert custom.classes == ((1, 7), (0, 2, 3, 4, 5, 6, 8, 9))
    json.dumps(custom.info)


def test_two_valued_labels_are_used_as_given():
    ds = from_arrays(np.zeros((4, 2)), np.array([9, -3, 9, -3]), name="pm", info={})
    binary = binarise(ds)
    assert binary.classes == (-3, 9) and binary.labels.tolist() == [1, 0, 1, 0]
    assert signs(binary.labels).tolist() == [1.0, -1.0, 1.0, -1.0]
    assert signs(binary.labels).dtype == torch.float64
    assert binarise(binarise(digits_dataset())).classes == ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9))


@pytest.mark.parametrize(
    "negative,words",
    [
        ([11], "no label value"),
        (range(10), "every label value"),
        ([], "empty"),
        ("012", "list of label values"),
        ([1.5], "integer label values"),
    ],
)
def test_bad_class_splits(negative, words):
    with pytest.raises(InputError, match=words):
        binarise(digits_dataset(), negative_classes=negative)


def test_signs_refuses_non_binary_indices():
    for bad in (torch.tensor([0, 2]), torch.tensor([0.0, 1.0]), torch.tensor([[0, 1]])):
        with pytest.raises(InputError, match="binary class indices"):
            signs(bad)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 1.0])
def test_corruption_replaces_the_stated_fraction_reproducibly(fraction):
    ds = binarise(digits_dataset(n=4000))
    corrupted = corrupt_labels(ds, fraction, seed=3)
    assert torch.equal(corrupted.labels, corrupt_labels(ds, fraction, seed=3).labels)
    changed = float((corrupted.labels != ds.labels).float().mean())
    # each label is replaced with probability fraction by a fair coin: it changes with probability fraction/2
    p = fraction / 2
    assert abs(changed - p) < 4 * np.sqrt(p * (1 - p) / 4000) + 1e-12
    record = corrupted.info["corruption"]
    assert abs(record["replaced"] - fraction * 4000) <= 4 * np.sqrt(4000 * fraction * (1 - fraction)) + 1e-12
    assert record["seed"] == 3
    assert record["changed"] == int((corrupted.labels != ds.labels).sum())
    if 0 < fraction:
        assert not torch.equal(corrupted.labels, corrupt_labels(ds, fraction, seed=4).labels)


def test_corruption_with_ten_classes_changes_nine_tenths_of_the_replaced():
    ds = digits_dataset(n=5000)
    corrupted = corrupt_labels(ds, 0.6, seed=1)
    changed = int((corrupted.labels != ds.labels).sum())
    assert abs(changed - 0.6 * 5000 * 0.9) < 4 * np.sqrt(3000 * 0.09)
    assert int(corrupted.labels.max()) <= 9


@pytest.mark.parametrize("fraction", [-0.1, 1.5, float("nan"), "0.5", True])
def test_bad_corruption_fraction(fraction):
    with pytest.raises(InputError, match="fraction must be a number in"):
        corrupt_labels(digits_dataset(n=10), fraction, seed=0)


def test_take_is_seeded_uniform_and_checked():
    ds = digits_dataset(n=50)
    first = take(ds, 20, seed=5)
    assert torch.equal(first.x, take(ds, 20, seed=5).x)
    assert not torch.equal(first.x, take(ds, 20, seed=6).x)
    rows = {bytes(r) for r in ds.x.reshape(50, -1).numpy()}
    picked = [bytes(r) for r in first.x.reshape(20, -1).numpy()]
    assert len(set(picked)) == 20 and set(picked) <= rows
    assert first.info["subset"] == {"m": 20, "seed": 5, "of": 50}
    assert len(take(ds, 50, seed=0)) == 50
    for m, words in [(51, "only 50"), (0, "positive integer"), (2.5, "positive integer")]:
        with pytest.raises(InputError, match=words):
            take(ds, m, seed=0)
    with pytest.raises(InputError, match="seed must be"):
        take(ds, 5, seed=-1)


def test_take_is_uniform_over_positions():
    ds = from_arrays(np.arange(10, dtype=np.float32)[:, None], np.arange(10) % 2, name="t", info={})
    counts = np.zeros(10)
    for seed in range(2000):
        counts[take(ds, 3, seed).x[:, 0].numpy().astype(int)] += 1
    assert np.all(np.abs(counts - 600) < 4 * np.sqrt(600 * 0.7))


def test_standard_normalisation_per_channel():
    x = np.random.default_rng(0).random((5, 3, 2, 2)).astype(np.float32)
    ds = from_arrays(x, np.arange(5) % 2, name="rgb", info={})
    out = normalise(ds, "standard", mean=[0.1, 0.2, 0.3], std=[0.5, 0.25, 2.0])
    expected = (x - np.array([0.1, 0.2, 0.3])[None, :, None, None]) / np.array([0.5, 0.25, 2.0])[None, :, None, None]
    assert np.allclose(out.x.numpy(), expected, atol=1e-6) and out.x.dtype == torch.float32
    assert out.info["normalisation"] == {"mode": "standard", "mean": [0.1, 0.2, 0.3], "std": [0.5, 0.25, 2.0]}
    mnist = normalise(digits_dataset(n=5), "standard", mean=0.1307, std=0.3081)
    assert np.allclose(mnist.x.numpy(), (digits_dataset(n=5).x.numpy() - 0.1307) / 0.3081, atol=1e-6)
    assert normalise(ds, "none") is ds
    for kwargs, words in [
        ({"mean": [0.1, 0.2], "std": 1.0}, "one per channel"),
        ({"mean": 0.1}, "needs std"),
        ({"mean": 0.0, "std": 0.0}, "std must be > 0"),
        ({"mean": float("nan"), "std": 1.0}, "finite"),
    ]:
        with pytest.raises(InputError, match=words):
            normalise(ds, "standard", **kwargs)
    with pytest.raises(InputError, match="already normalised"):
        normalise(out, "standard", mean=0.0, std=1.0)
    with pytest.raises(InputError, match="unknown normalisation"):
        normalise(ds, "minmax")


def test_check_disjoint_finds_shared_examples():
    ds = digits_dataset(n=100)
    train, test = ds.subset(range(0, 60)), ds.subset(range(60, 100))
    check_disjoint(train, test)
    overlapping = ds.subset(list(range(55, 100)))
    with pytest.raises(InputError, match="5 test examples .first: test index 0. also appear"):
        check_disjoint(train, overlapping)
    negative_zero = Dataset(x=-train.x[:1] * 0, labels=train.labels[:1], classes=train.classes, name="z", info={})
    zero = Dataset(x=train.x[:1] * 0, labels=train.labels[:1], classes=train.classes, name="z", info={})
    with pytest.raises(InputError, match="1 test examples"):
        check_disjoint(zero, negative_zero)


def test_dataset_record_checks_and_subset():
    ds = digits_dataset(n=10)
    sub = ds.subset([3, 1])
    assert torch.equal(sub.x, ds.x[[3, 1]]) and sub.labels.tolist() == ds.labels[[3, 1]].tolist()
    assert len(sub) == 2 and sub.num_classes == ds.num_classes and sub.classes == ds.classes
    with pytest.raises(InputError, match="out of range"):
        ds.subset([10])
    with pytest.raises(InputError, match="float32"):
        Dataset(x=ds.x.double(), labels=ds.labels, classes=ds.classes, name="d")
    with pytest.raises(InputError, match="must lie in 0..1"):
        Dataset(x=ds.x, labels=ds.labels, classes=(0, 1), name="d")
    with pytest.raises(InputError, match="one row of x per label"):
        Dataset(x=ds.x[:3], labels=ds.labels, classes=ds.classes, name="d")


def test_corruption_is_independent_per_label_not_a_fixed_count():
    """The (B - c/2)/(1 - c) conversion needs an iid corrupted sample: the number of corrupted labels
    is Binomial(n, c), not exactly round(c n), and each label's coin is independent of the others."""
    ds = binarise(digits_dataset(n=40))
    replaced = np.array([corrupt_labels(ds, 0.25, seed=s).info["corruption"]["replaced"] for s in range(400)])
    assert len(set(replaced.tolist())) > 5  # a fixed count would give one value
    assert abs(replaced.mean() - 10.0) < 4 * np.sqrt(40 * 0.25 * 0.75 / 400)
    assert abs(replaced.var() - 40 * 0.25 * 0.75) < 0.35 * 40 * 0.25 * 0.75
    # pairwise independence: labels 0 and 1 are both changed with probability (c/2)^2
    both = np.mean([bool((corrupt_labels(ds, 0.5, seed=s).labels[:2] != ds.labels[:2]).all()) for s in range(2000)])
    assert abs(both - 0.0625) < 4 * np.sqrt(0.0625 * 0.9375 / 2000)


def test_one_label_map_fixed_by_the_training_data():
    """A test file holding only digits 6 and 8 keeps the training data's map: both are class 1
    after the default split, not 6 -> 0, 8 -> 1 as indexing the file on its own would give."""
    train = digits_dataset(n=200)
    x = torch.rand(10, 1, 4, 4)
    test = from_arrays(x.numpy(), np.array([6, 8] * 5), name="six-eight", info={})
    assert test.classes == (6, 8)
    aligned = apply_label_map(test, train)
    assert aligned.classes == train.classes
    assert [aligned.classes[i] for i in aligned.labels.tolist()] == [6, 8] * 5
    assert binarise(aligned).labels.tolist() == [1] * 10
    # against already-split training data the grouped class that contains each value is used
    binary_train = binarise(train)
    assert apply_label_map(test, binary_train).labels.tolist() == [1] * 10


def test_a_test_class_the_label_map_lacks_is_refused():
    train = from_arrays(np.random.rand(6, 3), np.array([0, 1, 2] * 2), name="train", info={})
    test = from_arrays(np.random.rand(4, 3), np.array([1, 7, 1, 7]), name="odd", info={})
    with pytest.raises(InputError, match="label value 7 does not occur"):
        apply_label_map(test, train)
