"""BoundMonitor: values against certify and closed forms, caching, cadence, union over checkpoints."""

import math

import pytest
import torch
from tasks import MnistTask

from pacbayes import monitor as monitor_module
from pacbayes.certification import CertifyOptions, certify
from pacbayes.data import binarise, load_dataset, take
from pacbayes.demo import demo_network
from pacbayes.errors import InputError
from pacbayes.families import marginal as marginal_module
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
    assert len(calls) == 1  # kernel and EP at construction, before any checkpoint
    first = monitor.compute(trained)
    second = monitor.compute(trained)
    assert len(calls) == 1  # reused by later calls
    report = certify(trained, train, test, CertifyOptions(delta=0.05))
    ep = next(b for b in report.bounds if b.name == "marginal-ep")
    assert first.bound("marginal-ep").value == pytest.approx(ep.value, rel=1e-9)
    assert second.values["marginal-ep"] == first.values["marginal-ep"]
    assert first.bound("marginal-ep").classifier == ep.classifier == "q-star"
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
    p, n = result.bound("holdout").value, len(test)
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
    assert result.values["holdout"] == pytest.approx(1.0 - (0.2 / 10) ** (1.0 / n), rel=1e-9)


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
    assert first.test_error is None and "holdout" not in first.names()
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
    assert best.values["holdout"] == min(r.values["holdout"] for r in monitor.history)


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


def test_multi_logit_model_is_tracked_with_the_multi_class_bound():
    """One logit per class: no binarisation; the train error is the argmax error, counted here by hand."""
    ten_class = take(load_dataset("mnist-embedded", split="train"), M, seed=1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(784, WIDTH), torch.nn.ReLU(), torch.nn.Linear(WIDTH, 10)
    )
    result = BoundMonitor(model, ten_class, max_checkpoints=1).compute(model)
    with torch.no_grad():
        wrong = sum(int(model(ten_class.x[i : i + 1])[0].argmax()) != int(ten_class.labels[i]) for i in range(M))
    assert result.train_error == pytest.approx(wrong / M) and result.train_error > 0
    assert 0.0 < result.values["marginal-ep"] <= 1.0 and not result.applies["marginal-ep"]


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
    gaps = {b - a for a, b in zip(computed, computed[1:], strict=False)}
    assert gaps == {20}  # 1 s checkpoint, then 20 clock readings (one per step) until due
    assert all(r.seconds == 1.0 for r in monitor.history)


def test_monitor_result_and_report_have_one_shape(data, trained):
    """Both hold a list of BoundResult under ``bounds``, looked up by name the same way."""
    from pacbayes.results import BoundResult

    train, test = data
    monitor = BoundMonitor(trained, train, test=test, max_checkpoints=2)
    result = monitor.compute(trained)
    report = monitor.final(trained)
    for holder in (result, report):
        assert isinstance(holder.bounds, list) and all(isinstance(b, BoundResult) for b in holder.bounds)
        assert holder.values == {b.name: b.value for b in holder.bounds}
        assert holder.bound("marginal-ep").family == "marginal"
        with pytest.raises(InputError, match="no bound named"):
            holder.bound("nonsense")
    holdout = result.bound("holdout")
    assert holdout.certified and holdout.classifier == "model" and sum(holdout.delta.values()) == 0.05 / 2
    record = result.to_dict()
    assert [b["name"] for b in record["bounds"]] == result.names() == ["marginal-ep", "holdout"]
    assert record["bounds"] == [b.to_dict() for b in result.bounds]


def test_one_time_work_does_not_delay_the_next_checkpoint(data, trained, monkeypatch):
    """The kernel and EP are paid at construction: with a clock where they take 100 s, the first
    checkpoint still costs 1 s and the second comes 20 steps later (overhead 0.05), not 2000."""

    class Clock:
        now = 0.0

        def perf_counter(self):
            self.now += 1.0
            return self.now

    clock = Clock()
    real_track = marginal_module.MarginalFamily.track

    def slow_track(self, *args, **kwargs):
        if not kwargs["cache"]:
            clock.now += 100.0
        return real_track(self, *args, **kwargs)

    monkeypatch.setattr(monitor_module, "time", clock)
    monkeypatch.setattr(marginal_module.MarginalFamily, "track", slow_track)
    monitor = BoundMonitor(trained, data[0], overhead=0.05, max_checkpoints=10)
    assert monitor.setup_seconds == pytest.approx(101.0)
    computed = [i for i in range(60) if monitor.step(trained) is not None]
    assert computed == [0, 20, 40]


@pytest.mark.parametrize("total_steps, checkpoints", [(50, 6), (7, 3), (1, 4)])
def test_total_steps_spreads_checkpoints_and_computes_at_the_end(data, trained, total_steps, checkpoints):
    """Every call is due by cadence (every=1); total_steps keeps checkpoints >= total / (max - 1)
    calls apart and computes at the last call, never more than max_checkpoints in all."""
    monitor = BoundMonitor(trained, data[0], every=1, max_checkpoints=checkpoints, total_steps=total_steps)
    computed = [i + 1 for i in range(total_steps) if monitor.step(trained) is not None]
    gap = total_steps / (checkpoints - 1)
    expected, last = [], None
    for call in range(1, total_steps + 1):  # the rule, written out independently
        if call == total_steps or (len(expected) < checkpoints - 1 and (last is None or call - last >= gap)):
            expected, last = expected + [call], call
    assert computed == expected and computed[-1] == total_steps and len(computed) <= checkpoints
    assert [r.step for r in monitor.history] == computed
    with pytest.raises(InputError, match="total_steps"):
        BoundMonitor(trained, data[0], total_steps=0)


def test_checkpoints_use_a_seeded_subset_of_the_test_set(data, trained):
    train, test = data
    monitor = BoundMonitor(trained, train, test=test, holdout_points=100, seed=5, max_checkpoints=2)
    result = monitor.compute(trained)
    subset = take(binarise(test), 100, seed=5)
    assert result.bound("holdout").details["n"] == 100
    assert result.test_error == pytest.approx(independent_mistakes(trained, subset) / 100)
    assert monitor.final(trained).baselines["holdout_n"] == len(test)  # the final report uses all of it
