"""A new bound family in one file: its settings, its family class (inheriting FamilyBase) and one registry
line, run through certify, BoundMonitor and assert_certified with nothing else in pacbayes changed."""

import math
from dataclasses import dataclass

import pytest
import torch

from pacbayes.bounds import kl_inverse_upper
from pacbayes.certification import CertifyOptions, certify
from pacbayes.data import from_arrays
from pacbayes.errors import InputError
from pacbayes.families import FAMILIES, Baseline, FamilyBase, FamilyOutcome, Tracked, option, stamped
from pacbayes.families.settings import MarginalSettings
from pacbayes.monitor import BoundMonitor
from pacbayes.results import BoundResult
from pacbayes.testing import assert_certified

M = 40


# ---------------------------------------------------------------- the new family: settings, class, registry line
@dataclass(frozen=True)
class ToySettings:
    """The toy family's settings: frozen, torch-free, one user option (a ``certify`` flag and claims key)."""

    note: str = option("none", "--toy-note", "A toy option, recorded in the diagnostics.")


def occam_constant(train) -> tuple:
    """(training error of the better constant classifier, ln |H|) for the class of the two constants."""
    ones = float(train.labels.float().mean())
    return min(ones, 1.0 - ones), math.log(2.0)


class ToyFamily(FamilyBase):
    """Occam's bound on the better constant classifier: kl^-1(err, (ln 2 + ln 1/delta) / m)."""

    name = "toy"
    settings_type = ToySettings
    classifier = "constant"

    def _bound(self, train, delta: float) -> float:
        error, log_size = occam_constant(train)
        return kl_inverse_upper(error, (log_size + math.log(1.0 / delta)) / len(train))

    def run(self, model, train, test, *, delta, settings, context):
        value = self._bound(train, delta)
        result = BoundResult(
            name="toy", value=value, certified=True, certifies="the better constant classifier", delta={"occam": delta}
        )
        return FamilyOutcome(
            bounds=stamped([result], self),
            diagnostics={"note": settings.note},
            baselines=(Baseline("toy_train_error", occam_constant(train)[0], "constant classifier train error"),),
        )

    def track(self, model, train, *, delta, settings, context, cache):
        return Tracked(values={"toy": self._bound(train, delta)}, certified={"toy": False}, applies=True)


class UntrackableToy(ToyFamily):
    """The toy bound without ``track``: FamilyBase's says it cannot be tracked."""

    name = "untrackable"
    track = FamilyBase.track


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(FAMILIES, "toy", ToyFamily())  # the one registry line


# ---------------------------------------------------------------- tiny data and a model
@pytest.fixture(scope="module")
def blobs():
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (2 * M,), generator=gen)
    x = torch.randn(2 * M, 2, generator=gen) + 2.0 * labels[:, None].float() - 1.0
    train = from_arrays(x[:M], labels[:M], name="toy-train", info={})
    test = from_arrays(x[M:], labels[M:], name="toy-test", info={})
    torch.manual_seed(1)
    return train, test, torch.nn.Linear(2, 1)


def by_hand(train, delta: float) -> float:
    """kl^-1(err, c) by bisection on the binary KL divergence (independent of pacbayes.bounds)."""
    error, _ = occam_constant(train)
    budget = (math.log(2.0) + math.log(1.0 / delta)) / len(train)

    def kl(q, p):
        return sum(a * math.log(a / b) for a, b in ((q, p), (1 - q, 1 - p)) if a > 0)

    low, high = error, 1.0
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (mid, high) if kl(error, mid) <= budget else (low, mid)
    return low


# ---------------------------------------------------------------- certify, BoundMonitor, assert_certified
def test_certify_runs_the_new_family(registered, blobs):
    train, test, model = blobs
    report = certify(model, train, test, CertifyOptions(bounds=("toy",)))
    (toy,) = [b for b in report.bounds if b.family == "toy"]
    share = report.delta_ledger["toy"]["occam"]
    assert share == pytest.approx(0.05 / 2)  # toy and the hold-out bound
    assert toy.classifier == "constant" and toy.value == pytest.approx(by_hand(train, share), abs=1e-9)
    assert report.diagnostics["toy"] == {"note": "none"}  # a family registered later runs with its defaults
    assert report.baselines["toy_train_error"] == occam_constant(train)[0]


def test_the_monitor_tracks_the_new_family_with_its_settings(registered, blobs):
    train, test, model = blobs
    monitor = BoundMonitor(model, train, test=test, bounds=("toy",), settings=ToySettings(), max_checkpoints=2)
    result = monitor.compute(model)
    record = result.bound("toy")
    assert record.value == pytest.approx(by_hand(train, 0.05 / 2), abs=1e-9) and not record.certified
    assert record.certifies == "the constant classifier (toy)" and record.family == "toy"  # FamilyBase's default
    final = monitor.final(model)
    assert final.certified_by_family()["toy"].value == pytest.approx(record.value, abs=1e-12)


def test_assert_certified_checks_the_new_family(registered, blobs):
    train, test, model = blobs
    result = assert_certified(
        model, train, test=test, bound="toy", settings=ToySettings(), at_most=1.0, cache_dir=False
    )
    assert result.value == pytest.approx(by_hand(train, 0.05 / 2), abs=1e-9)
    with pytest.raises(AssertionError, match="certified bound toy"):
        assert_certified(model, train, test=test, bound="toy", settings=(ToySettings(),), at_most=0.0, cache_dir=False)


def test_settings_are_refused_where_they_would_be_lost(registered, blobs, monkeypatch):
    train, test, model = blobs
    with pytest.raises(InputError, match="registered after"):  # CertifyOptions has no field for a later family
        BoundMonitor(model, train, bounds=("toy",), settings=ToySettings(note="set"))
    with pytest.raises(InputError, match="settings are given for toy"):
        assert_certified(model, train, test=test, settings=ToySettings(), at_most=1.0, cache_dir=False)
    with pytest.raises(InputError, match="settings are given for marginal"):
        BoundMonitor(model, train, bounds=("toy",), settings=(ToySettings(), MarginalSettings()))
    with pytest.raises(InputError, match="ToySettings"):
        BoundMonitor(model, train, bounds=("toy",), settings={"note": "x"})
    monkeypatch.setitem(FAMILIES, "untrackable", UntrackableToy())
    with pytest.raises(InputError, match="cannot track bound family untrackable"):
        BoundMonitor(model, train, bounds=("untrackable",))
