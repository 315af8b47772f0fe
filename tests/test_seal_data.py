"""Data that must not yield a certificate: repeated training inputs, a test set that is the training set
in another shape, a shuffled copy of the monitor's test set, a noisy-label bound below its noise floor.

Tiny data throughout (784 random features, a linear model that separates them); the families that
would run are stubbed where the point is that the data is refused before any of them does.
"""

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from test_hostile_input import assert_refused, run
from torch import nn

import pacbayes.monitor
from pacbayes.bounds import clean_distribution_bound
from pacbayes.certification import CertifyOptions, certify, prepare_data
from pacbayes.data import check_disjoint, from_arrays, subsets
from pacbayes.errors import InputError
from pacbayes.families import FAMILIES, FamilyBase
from pacbayes.families.base import FamilyOutcome, stamped
from pacbayes.monitor import BoundMonitor
from pacbayes.report import render_text
from pacbayes.results import BoundResult
from pacbayes.testing import assert_certified

FEATURES = 784
WEIGHTS = np.random.default_rng(0).normal(size=FEATURES)


class Executed(Exception):
    """Raised by a stubbed family: refused data reached it."""


def points(n: int, seed: int, features: int = FEATURES) -> tuple:
    """n random inputs in [0, 1)^features and the labels of the fixed hyperplane."""
    x = np.random.default_rng(seed).random((n, features)).astype(np.float32)
    return x, (x @ WEIGHTS[:features] > np.sum(WEIGHTS[:features]) / 2).astype(np.int64)


def linear(features: int = FEATURES, outputs: int = 1) -> nn.Module:
    """A linear model; with one output it is the hyperplane that labels :func:`points`."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(features, outputs))
    if outputs == 1:
        with torch.no_grad():
            model[1].weight.copy_(torch.tensor(WEIGHTS[:features], dtype=torch.float32)[None])
            model[1].bias.fill_(-float(np.sum(WEIGHTS[:features]) / 2))
    return model


def dataset(x, y, name: str):
    return from_arrays(x, y, name=name, info={})


@pytest.fixture(scope="module")
def clean():
    """(train, test): 24 and 20 distinct points, disjoint."""
    return dataset(*points(24, 1), "train"), dataset(*points(20, 2), "test")


@dataclass(frozen=True)
class FixedSettings:
    """The fixed family has no settings."""


class FixedFamily(FamilyBase):
    """A family whose certified bounds are the given values (so that certify's own handling is tested);
    standing in for a registered family (``name``), it keeps that family's settings type."""

    classifier = "fixed-classifier"

    def __init__(self, name: str = "fixed", values=(0.01,), explode: bool = False):
        self.name, self.values, self.explode = name, tuple(values), explode
        self.settings_type = FAMILIES[name].settings_type if name in FAMILIES else FixedSettings

    def check(self, context):
        """Any model."""

    def run(self, model, train, test, *, delta, settings, context):
        if self.explode:
            raise Executed("a family ran on refused data")
        bounds = [
            BoundResult(
                name=f"{self.name}-{i}", value=v, certified=True, certifies="a fixed number", delta={"d": delta}
            )
            for i, v in enumerate(self.values)
        ]
        return FamilyOutcome(bounds=stamped(bounds, self))


def save(tmp_path, name: str, x, y) -> str:
    path = tmp_path / name
    np.savez(path, x=x, y=y)
    return str(path)


def save_model(tmp_path, model) -> str:
    path = tmp_path / "model.pt"
    torch.jit.script(model).save(str(path))
    return str(path)


# ---------------------------------------------------------------- repeated training inputs
def _repeated(kind: str) -> tuple:
    """(x, y, outputs, (first index, its first repeat)) of a training set holding repeated inputs."""
    x, y = points(12, 1)
    if kind == "every row twice":
        return np.tile(x, (2, 1)), np.tile(y, 2), 1, (0, 12)
    if kind == "random labels, every row four times":
        labels = np.random.default_rng(3).integers(0, 2, size=48)
        return np.tile(x, (4, 1)), labels, 1, (0, 12)
    if kind == "one row once more":
        return np.concatenate([x, x[5:6]]), np.concatenate([y, y[5:6]]), 1, (5, 12)
    if kind == "a copy under another label":
        return np.concatenate([x, x[3:4]]), np.concatenate([y, 1 - y[3:4]]), 1, (3, 12)
    if kind == "a copy with -0.0 for 0.0":
        x[7, :50] = 0.0
        copy = x[7:8].copy()
        copy[0, :50] = -0.0
        return np.concatenate([x, copy]), np.concatenate([y, y[7:8]]), 1, (7, 12)
    if kind == "ten classes, rows twice":
        labels = np.arange(12) % 10
        return np.tile(x, (2, 1)), np.tile(labels, 2), 10, (0, 12)
    raise AssertionError(kind)


REPEATS = [
    "every row twice",
    "random labels, every row four times",
    "one row once more",
    "a copy under another label",
    "a copy with -0.0 for 0.0",
    "ten classes, rows twice",
]


@pytest.mark.parametrize("kind", REPEATS)
def test_certify_refuses_repeated_training_inputs_before_any_family_runs(kind, clean, monkeypatch):
    monkeypatch.setitem(FAMILIES, "fixed", FixedFamily(explode=True))
    x, y, outputs, (i, j) = _repeated(kind)
    test = clean[1] if outputs == 1 else dataset(points(20, 2)[0], np.arange(20) % 10, "test")
    with pytest.raises(InputError, match="repeat an earlier input exactly") as refused:
        certify(linear(outputs=outputs), dataset(x, y, "train"), test, CertifyOptions(bounds=("fixed",)))
    assert f"first: indices {i} and {j}" in str(refused.value) and "--allow-duplicates" in str(refused.value)
    relabelled = kind in ("a copy under another label", "random labels, every row four times")
    assert ("under another label" in str(refused.value)) == relabelled


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["--m", "20"],
        ["--bounds", "dziugaite-roy", "--prior-split", "0.5"],
        ["--bounds", "subspace", "--subspace-prior-split", "0.5"],
    ],
    ids=["all", "m-subset", "dziugaite-roy-prior-split", "subspace-prior-split"],
)
def test_cli_refuses_repeated_training_inputs(extra, tmp_path, monkeypatch):
    for name in ("marginal", "dziugaite-roy", "subspace"):
        monkeypatch.setitem(FAMILIES, name, FixedFamily(name, explode=True))
    x, y, _, _ = _repeated("every row twice")
    train = save(tmp_path, "train.npz", x, y)
    test = save(tmp_path, "test.npz", *points(20, 2))
    result = run("certify", save_model(tmp_path, linear()), "--train", train, "--test", test, *extra)
    assert_refused(result, "repeat an earlier input exactly", "--allow-duplicates")


@pytest.mark.parametrize("family", ["dziugaite-roy", "subspace"])
def test_prior_splits_are_cut_from_distinct_points_only(family, clean, monkeypatch):
    """The data-dependent priors split the certified S; with S refused, no row can sit in both parts."""
    monkeypatch.setitem(FAMILIES, family, FixedFamily(family, explode=True))
    x, y, _, _ = _repeated("every row twice")
    with pytest.raises(InputError, match="repeat an earlier input"):
        certify(linear(), dataset(x, y, "train"), clean[1], CertifyOptions(bounds=(family,)))


def _one_repeat_and_seeds() -> tuple:
    """Data whose rows 0 and 23 hold the same input, a seed whose m=12 subset keeps both, one keeping one."""
    x, y = points(24, 1)
    x[23], y[23] = x[0], y[0]
    data = dataset(x, y, "train")
    keeps = {seed: set(subsets.subset_positions(data, 12, seed)) for seed in range(50)}
    both = next(seed for seed, chosen in keeps.items() if {0, 23} <= chosen)
    one = next(seed for seed, chosen in keeps.items() if len({0, 23} & chosen) == 1)
    return data, both, one


def test_the_check_runs_on_the_m_points_used_and_names_positions_as_given(clean, monkeypatch):
    family = FixedFamily(values=(0.5,))
    monkeypatch.setitem(FAMILIES, "fixed", family)
    data, both, one = _one_repeat_and_seeds()
    with pytest.raises(InputError, match="first: indices 0 and 23"):
        certify(linear(), data, clean[1], CertifyOptions(bounds=("fixed",), m=12, seed=both))
    report = certify(linear(), data, clean[1], CertifyOptions(bounds=("fixed",), m=12, seed=one))
    assert report.m == 12 and report.data["train"]["distinct_points"] == 12
    assert "duplicates_assumption" not in report.data["train"]


@pytest.mark.parametrize(
    "entry",
    ["certify", "prepare_data", "certified_subset", "monitor with test", "monitor without test", "assert_certified"],
)
def test_every_library_path_refuses_repeated_inputs(entry, clean):
    x, y, _, _ = _repeated("every row twice")
    train, test, model = dataset(x, y, "train"), clean[1], linear()
    calls = {
        "certify": lambda: certify(model, train, test),
        "prepare_data": lambda: prepare_data(model, train, test, CertifyOptions()),
        "certified_subset": lambda: subsets.certified_subset(train),
        "monitor with test": lambda: BoundMonitor(model, train, test=test),
        "monitor without test": lambda: BoundMonitor(model, train),
        "assert_certified": lambda: assert_certified(model, train, test=test, at_most=1.0, cache_dir=False),
    }
    with pytest.raises(InputError, match="repeat an earlier input exactly"):
        calls[entry]()


def test_allow_duplicates_states_the_atoms_assumption_and_counts_distinct_points(clean):
    x, y, _, _ = _repeated("every row twice")
    report = certify(linear(), dataset(x, y, "train"), clean[1], CertifyOptions(allow_duplicates=True))
    assert report.m == 24 and report.data["train"]["distinct_points"] == 12
    for b in report.bounds:
        assert any("atoms" in a and "12 distinct inputs" in a for a in b.assumptions), b.name
    assert "the data distribution has atoms" in render_text(report)
    assert report.to_dict()["provenance"]["options"]["allow_duplicates"] is True


def test_cli_allow_duplicates_reports_distinct_points(tmp_path, monkeypatch):
    monkeypatch.setitem(FAMILIES, "marginal", FixedFamily("marginal", values=(0.5,)))
    x, y, _, _ = _repeated("random labels, every row four times")
    train = save(tmp_path, "train.npz", x, y)
    test = save(tmp_path, "test.npz", *points(20, 2))
    model = save_model(tmp_path, linear())
    result = run("certify", model, "--train", train, "--test", test, "--allow-duplicates", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["m"] == 48 and report["data"]["train"]["distinct_points"] == 12
    assert all(any("atoms" in a for a in b["assumptions"]) for b in report["bounds"])


@pytest.mark.parametrize("value", ["no", 1, None])
@pytest.mark.parametrize("entry", ["certify", "monitor", "certified_subset"])
def test_allow_duplicates_must_be_a_bool(entry, value, clean):
    train, test = clean
    calls = {
        "certify": lambda: certify(linear(), train, test, CertifyOptions(allow_duplicates=value)),
        "monitor": lambda: BoundMonitor(linear(), train, test=test, allow_duplicates=value),
        "certified_subset": lambda: subsets.certified_subset(train, allow_duplicates=value),
    }
    with pytest.raises(InputError, match="allow_duplicates must be True or False"):
        calls[entry]()


# ---------------------------------------------------------------- the training set in another shape
@pytest.mark.parametrize("shape", [(28, 28), (1, 28, 28), (4, 196), (784, 1), (28, 28, 1), (2, 2, 196)])
def test_check_disjoint_compares_content_not_shape(shape, clean):
    train = clean[0]
    reshaped = dataset(train.x.numpy().reshape(len(train), *shape), train.labels.numpy(), "reshaped")
    assert reshaped.x.shape[1:] != train.x.shape[1:]
    with pytest.raises(InputError, match=f"{len(train)} test examples .first: test index 0. also appear"):
        check_disjoint(train, reshaped)


@pytest.mark.parametrize("shape", [(4, 5), (2, 10), (20, 1)])
def test_cli_refuses_the_training_set_reshaped_as_test(shape, tmp_path):
    x, y = points(40, 1, features=20)
    train = save(tmp_path, "train.npz", x, y)
    test = save(tmp_path, "test.npz", x[:25].reshape(25, *shape), y[:25])
    model = save_model(tmp_path, linear(features=20))
    result = run("certify", model, "--train", train, "--test", test, "--json")
    assert_refused(result, "25 test examples", "also appear in the training data")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_float_copy_of_integer_pixels_is_the_same_content(dtype):
    pixels = np.random.default_rng(4).integers(0, 256, size=(10, 6, 6), dtype=np.uint8)
    labels = np.arange(10) % 2
    train = dataset(pixels, labels, "uint8 train")
    copy = dataset((pixels.astype(dtype) / dtype(255)).reshape(10, 36), labels, "float copy")
    with pytest.raises(InputError, match="10 test examples"):
        check_disjoint(train, copy)


def test_other_content_in_another_shape_is_disjoint(clean):
    train, test = clean
    check_disjoint(train, dataset(test.x.numpy().reshape(len(test), 28, 28), test.labels.numpy(), "other"))


# ---------------------------------------------------------------- the monitor pays for selection on any copy
@pytest.fixture(scope="module")
def monitored(clean):
    """A monitor with one computed checkpoint on the clean data."""
    model = linear()
    monitor = BoundMonitor(model, clean[0], test=clean[1], max_checkpoints=7)
    monitor.compute(model)
    return model, monitor


def _final_options(monitor, model, test, monkeypatch) -> CertifyOptions:
    """The options final() would certify with (certify itself stubbed: only the choice is tested)."""
    monkeypatch.setattr(pacbayes.monitor, "certify", lambda model, train, test, options, **_: options)
    return monitor.final(model, test=test)


def _variant(test, kind: str):
    x, y = test.x.numpy(), test.labels.numpy()
    order = np.random.default_rng(9).permutation(len(test))
    fresh_x, fresh_y = points(5, 11)
    variants = {
        "same object": lambda: test,
        "a copy": lambda: dataset(x.copy(), y.copy(), "copy"),
        "shuffled": lambda: dataset(x[order], y[order], "shuffled"),
        "reversed": lambda: dataset(x[::-1].copy(), y[::-1].copy(), "reversed"),
        "a part": lambda: dataset(x[order[:8]], y[order[:8]], "part"),
        "a part and fresh points": lambda: dataset(
            np.concatenate([x[:3], fresh_x]), np.concatenate([y[:3], fresh_y]), "mixed"
        ),
        "another shape": lambda: dataset(x[order].reshape(len(test), 28, 28), y[order], "reshaped"),
    }
    return variants[kind]()


@pytest.mark.parametrize(
    "kind", ["same object", "a copy", "shuffled", "reversed", "a part", "a part and fresh points", "another shape"]
)
def test_final_pays_for_selection_on_any_copy_of_the_monitor_test_set(kind, monitored, clean, monkeypatch):
    model, monitor = monitored
    options = _final_options(monitor, model, _variant(clean[1], kind), monkeypatch)
    assert options.holdout_candidates == monitor.max_checkpoints == 7


def test_final_on_fresh_test_data_pays_nothing(monitored, monkeypatch):
    model, monitor = monitored
    options = _final_options(monitor, model, dataset(*points(20, 12), "fresh"), monkeypatch)
    assert options.holdout_candidates == 1


def test_final_checks_its_test_argument(monitored):
    model, monitor = monitored
    with pytest.raises(InputError, match="test must be a pacbayes.data.Dataset"):
        monitor.final(model, test=np.zeros((3, 784)))


# ---------------------------------------------------------------- the noise floor of a clean-label conversion
@pytest.mark.parametrize(
    "bound, fraction, classes",
    [(0.01, 0.5, 2), (0.249, 0.5, 2), (0.0, 0.1, 2), (0.5, 0.6, 10), (0.89, 1.0, 10)],
)
def test_a_bound_below_the_noise_floor_is_refused(bound, fraction, classes):
    with pytest.raises(InputError, match="below the noise floor"):
        clean_distribution_bound(bound, fraction, classes)


@pytest.mark.parametrize(
    "bound, fraction, classes, expected",
    [(0.25, 0.5, 2, 0.0), (0.35, 0.5, 2, 0.2), (0.9, 1.0, 10, 1.0), (1.0, 0.3, 3, 1.0), (0.1, 0.0, 2, 0.1)],
)
def test_a_bound_at_or_above_the_floor_converts(bound, fraction, classes, expected):
    assert clean_distribution_bound(bound, fraction, classes) == pytest.approx(expected)


@pytest.mark.parametrize(
    "bound, fraction, classes, words",
    [
        (0.5, -0.1, 2, "corruption fraction"),
        (0.5, 1.5, 2, "corruption fraction"),
        (0.5, float("nan"), 2, "corruption fraction"),
        (0.5, 0.2, 1, "classes"),
        (float("nan"), 0.2, 2, "corrupted-label bound"),
        (1.5, 0.2, 2, "corrupted-label bound"),
    ],
)
def test_clean_label_conversion_checks_its_arguments(bound, fraction, classes, words):
    with pytest.raises(InputError, match=words):
        clean_distribution_bound(bound, fraction, classes)


def test_certify_gives_no_clean_label_number_below_the_floor_and_says_why(clean, monkeypatch):
    monkeypatch.setitem(FAMILIES, "fixed", FixedFamily(values=(0.01, 0.6)))
    report = certify(linear(), *clean, CertifyOptions(bounds=("fixed",), corrupt=0.5))
    names = [b.name for b in report.bounds]
    assert names == ["fixed-0", "fixed-1", "fixed-1-clean-labels"]
    assert "below the noise floor" in report.bound("fixed-0").details["no_clean_labels"]
    assert report.bound("fixed-0").certified is False  # it cannot hold, so it certifies nothing
    assert report.best_certified_result().name == "fixed-1"  # not the 0.01 that cannot hold
    assert report.bound("fixed-1-clean-labels").value == pytest.approx((0.6 - 0.25) / 0.5)
    assert "no_clean_labels" not in report.bound("fixed-1").details
    assert "fixed-0 has no clean-label version: " in render_text(report)


def test_cli_corrupt_below_the_floor_exits_cleanly(tmp_path, monkeypatch):
    monkeypatch.setitem(FAMILIES, "marginal", FixedFamily("marginal", values=(0.01,)))
    train = save(tmp_path, "train.npz", *points(24, 1))
    test = save(tmp_path, "test.npz", *points(20, 2))
    model = save_model(tmp_path, linear())
    result = run("certify", model, "--train", train, "--test", test, "--corrupt", "0.5", "--json")
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    bounds = json.loads(result.stdout)["bounds"]
    assert [b["name"] for b in bounds] == ["marginal-0"]
    assert bounds[0]["certified"] is False
    assert "noise floor" in bounds[0]["details"]["no_clean_labels"]
