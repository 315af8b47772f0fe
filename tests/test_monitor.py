"""BoundMonitor: values against certify and closed forms, caching, cadence, union over checkpoints."""

import math

import pytest
import torch

from tasks import MnistTask
from pacbayes.families import marginal as marginal_module
from pacbayes import monitor as monitor_module
from pacbayes.certification import CertifyOptions, certify
from pacbayes.data import binarise, load_dataset, take
from pacbayes.demo import demo_network
from pacbayes.errors import InputError
from pacbayes.monitor import BoundMonitor

M = 60
WIDTH = 32


@pytest.fixture(scope="module")
def task():
    return MnistTask(m=M, n_test=300, seed=1, width=WIDTH)


def independent_mistakes(model, ds):
    """Mistakes counted one input at a time from the raw logit (class 1 iff logit > 0)."""
    with torch.no_grad():
        return sum(int(model(ds.x[i : i + 1]).item() > 0) != int(ds.labels[i]) for i in range(len(ds)))


def test_marginal_estimate_equals_certify_and_is_cached(data, trained, monkeypatch):
    train, test = data
    calls = []
    real_build = marginal_module.build_kernel

    def counting_build(*args, **kwargs):
        calls.append(1)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(marginal_module, "build_kernel", counting_build)
    monitor = BoundMonitor(trained, train, test=test, delta=0.05, max_checkpoints=5)
    first = monitor.compute(trained)
    second = monitor.compute(trained)
    assert len(calls) == 1  # kernel and EP once, reused by later calls
    report = certify(trained, train, test, CertifyOptions(delta=0.05))
    ep = next(b for b in report.bounds if b.name == "marginal-ep")
    assert first.bounds["marginal-ep"] == pytest.approx(ep.value, rel=1e-9)
    assert second.bounds["marginal-ep"] == first.bounds["marginal-ep"]
    assert first.certified == {"marginal-ep": False, "holdout": True}
    assert first.applies["marginal-ep"] and first.train_error == 0.0


def test_errors_and_holdout_bound_against_independent_computation(data, trained):
    train, test = data
    monitor = BoundMonitor(trained, train, test=test, delta=0.1, max_checkpoints=4)
    result = monitor.compute(trained)
    binary_test = binarise(test)
    mistakes = independent_mistakes(trained, binary_test)
    assert result.test_error == pytest.approx(mistakes / len(test))
    # exact binomial tail: P[Bin(n, bound) <= mistakes] = delta / checkpoints (Clopper-Pearson)
    delta_each = 0.1 / 4
    p, n = result.bounds["holdout"], len(test)
    cdf = sum(math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(mistakes + 1))
    assert cdf == pytest.approx(delta_each, rel=1e-8)


def test_zero_error_holdout_bound_has_the_closed_form(data, trained):
    train, test = data
    binary_test = binarise(test)
    with torch.no_grad():
        predictions = (trained(binary_test.x).squeeze(-1) > 0).to(torch.int64)
    agreeing = binary_test.derive(labels=predictions)  # labels the model gets right: 0 mistakes
    n = len(agreeing)
    monitor = BoundMonitor(trained, train, test=agreeing, delta=0.2, max_checkpoints=10)
    result = monitor.compute(trained)
    assert result.test_error == 0.0
    assert result.bounds["holdout"] == pytest.approx(1.0 - (0.2 / 10) ** (1.0 / n), rel=1e-9)


def test_untrained_network_is_flagged_and_cadence_and_callback(data):
    train, test = data
    torch.manual_seed(2)
    model = demo_network(width=WIDTH)
    seen = []
    monitor = BoundMonitor(model, train, every=3, max_checkpoints=2, callback=seen.append)
    results = [monitor.step(model) for _ in range(6)]
    assert [r is None for r in results] == [True, True, False, True, True, False]
    assert seen == [results[2], results[5]] == monitor.history
    first = results[2]
    assert first.train_error == pytest.approx(independent_mistakes(model, train) / M)
    assert first.train_error > 0 and not first.applies["marginal-ep"] and first.notes
    assert first.test_error is None and "holdout" not in first.bounds
    with pytest.raises(InputError, match="max_checkpoints"):
        monitor.compute(model)


def test_training_mode_is_restored_and_best_checkpoint(data, trained):
    train, test = data
    monitor = BoundMonitor(trained, train, test=test, max_checkpoints=3)
    trained.train()
    monitor.compute(trained)
    assert trained.training
    trained.eval()
    monitor.compute(trained)
    assert not trained.training
    best = monitor.best_checkpoint()
    assert best.bounds["holdout"] == min(r.bounds["holdout"] for r in monitor.history)


def test_final_is_certify_on_the_given_data(data, trained):
    train, test = data
    monitor = BoundMonitor(trained, train, test=test, delta=0.05)
    report = monitor.final(trained)
    direct = certify(trained, train, test, CertifyOptions(delta=0.05))
    assert [b.value for b in report.bounds] == pytest.approx([b.value for b in direct.bounds], rel=1e-12)
    assert report.best_certified() is not None
    with pytest.raises(InputError, match="held-out"):
        BoundMonitor(trained, train).final(trained)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"bounds": ("nonsense",)}, "cannot track"),
        ({"every": 0}, "every"),
        ({"max_checkpoints": 0}, "max_checkpoints"),
        ({"delta": 1.5}, "delta"),
    ],
)
def test_bad_settings_are_refused(data, trained, kwargs, message):
    with pytest.raises(InputError, match=message):
        BoundMonitor(trained, data[0], **kwargs)


def test_multi_logit_model_is_refused_for_the_marginal_bound(data):
    ten_class = take(load_dataset("mnist-embedded", split="train"), M, seed=1)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    with pytest.raises(InputError, match="single-logit"):
        BoundMonitor(model, ten_class)


def test_default_cadence_keeps_the_time_budget(data, trained, monkeypatch):
    """With a clock that ticks 1 s per reading, a checkpoint 'costs' 1 s, so at overhead 0.05 the
    next one is due 1 / 0.05 = 20 s later: one checkpoint per ~20 steps, ~5% of the time."""

    class Clock:
        now = 0.0

        def perf_counter(self):
            self.now += 1.0
            return self.now

    monkeypatch.setattr(monitor_module, "time", Clock())
    monitor = BoundMonitor(trained, data[0], overhead=0.05, max_checkpoints=50)
    computed = [i for i in range(200) if monitor.step(trained) is not None]
    assert computed[0] == 0  # the first call computes at once
    gaps = {b - a for a, b in zip(computed, computed[1:])}
    assert gaps == {20}  # 1 s checkpoint, then 20 clock readings (one per step) until due
    assert all(r.seconds == 1.0 for r in monitor.history)
