"""The marginal family's kernel and EP phases in the phase cache (pacbayes.families.marginal_cache): a resumed run
reports exactly what a fresh one does without computing either again, a damaged entry is recomputed with one
warning, and any change of data, weights, seed or jitter misses the phase it feeds."""

import copy
import dataclasses
import json
import os
import sys
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn
from tasks import MnistTask

from pacbayes.cache import PhaseCacheWarning
from pacbayes.certification import CertifyOptions, certify
from pacbayes.data import binarise, load_dataset, take
from pacbayes.evidence import certified_log_evidence, ep_log_evidence, multiclass_ep_log_evidence
from pacbayes.evidence.ep_store import ep_arrays, json_array, json_record, restored_ep
from pacbayes.evidence.label_model import BinaryLabels, MulticlassLabels
from pacbayes.evidence.multiclass_ep import multiclass_ep_predict
from pacbayes.families.estimates import marginal_estimates
from pacbayes.families.marginal import marginal_bounds
from pacbayes.families.settings import MarginalSettings
from pacbayes.kernels import MonteCarloNNGP
from pacbayes.kernels.compiled import CompiledNNGP

TIMES = ("seconds", "kernel_seconds")
"""Timings: a resumed run's certified sampler and kernel choice run again, so these may differ."""


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def task():
    return MnistTask(m=40, n_test=30, seed=3, width=16)


@pytest.fixture
def work(monkeypatch) -> list:
    """The phases computed from now on: "kernel" for each K(train, train), "ep" for each EP run."""
    calls: list = []

    def spy(cls, name, label, counts=lambda args, kwargs: True):
        original = getattr(cls, name)

        def counted(*args, **kwargs):
            if counts(args, kwargs):
                calls.append(label)
            return original(*args, **kwargs)

        monkeypatch.setattr(cls, name, counted)

    spy(CompiledNNGP, "matrix", "kernel", lambda args, kwargs: len(args) < 3 and kwargs.get("x2") is None)
    spy(MonteCarloNNGP, "train_and_test", "kernel")
    spy(BinaryLabels, "ep", "ep")
    spy(MulticlassLabels, "ep", "ep")
    return calls


def _timeless(value):
    """``value`` (a report's JSON) without its timings."""
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if k not in TIMES}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return value


def _report(report) -> dict:
    record = json.loads(json.dumps(report.to_dict()))
    record.pop("provenance")  # records the options, cache_dir included
    return _timeless(record)


# ---------------------------------------------------------------- EP results as plain arrays
def _orthant(m: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(m, 4))
    K = torch.as_tensor(np.exp(-0.1 * ((x[:, None] - x[None]) ** 2).sum(-1)))
    return K, x


def test_a_binary_ep_result_is_rebuilt_bit_for_bit_and_certifies_the_same_bound():
    K, x = _orthant(120)
    labels = (x[:, 0] + 0.3 * x[:, 1] > 0).astype(np.int64)
    ep = ep_log_evidence(K, labels, jitter=1e-6)
    back = restored_ep(ep_arrays(ep), K, labels, 2)
    for field in dataclasses.fields(ep):
        mine, theirs = getattr(ep, field.name), getattr(back, field.name)
        same = torch.equal(mine, theirs) if isinstance(mine, torch.Tensor) else np.array_equal(mine, theirs)
        assert same, field.name
    options = {"delta_prime": 0.025, "seed": 1, "jitter": 1e-6, "samples": 2000}
    fresh = certified_log_evidence(K, labels, ep=ep, **options)
    resumed = certified_log_evidence(K, labels, ep=back, **options)
    assert (resumed.lower, resumed.upper, resumed.log_estimate) == (fresh.lower, fresh.upper, fresh.log_estimate)
    # without EP's factor the sampler factorises B itself: the same bound up to rounding, not bit for bit
    unfactored = certified_log_evidence(K, labels, ep=dataclasses.replace(ep, inverse_factor=None), **options)
    assert unfactored.lower == pytest.approx(fresh.lower, rel=1e-12, abs=0.0)


def test_a_multiclass_ep_result_is_rebuilt_with_its_prior_and_predicts_the_same():
    K, x = _orthant(24, seed=1)
    labels = np.argmax(x[:, :3], axis=1)
    ep = multiclass_ep_log_evidence(K, labels, 3, jitter=1e-6)
    back = restored_ep(ep_arrays(ep), K, torch.as_tensor(labels), 3)
    assert type(back) is type(ep) and back.to_dict() == ep.to_dict() and back.history == ep.history
    assert torch.equal(back.prior, ep.prior) and np.array_equal(back.labels, ep.labels)
    assert np.array_equal(back.site_precision, ep.site_precision) and back.method == ep.method
    cross, diagonal = K[:, :5], K.diagonal()[:5]
    predicted = multiclass_ep_predict(ep, cross, diagonal)
    np.testing.assert_array_equal(multiclass_ep_predict(back, cross, diagonal), predicted)


def test_records_are_plain_json_bytes():
    record = {"b": [1.5, float("nan")], "a": None, "c": "text"}
    array = json_array(record)
    assert array.dtype == torch.uint8 and array.dim() == 1
    back = json_record(array)
    assert back["a"] is None and back["c"] == "text" and back["b"][0] == 1.5 and np.isnan(back["b"][1])


# ---------------------------------------------------------------- certify, resumed
@pytest.mark.parametrize("kernel", ["analytic", "monte-carlo"])
def test_certify_resumes_from_the_cache_with_the_same_report(data, trained, tmp_path, work, kernel):
    train, test = data
    options = CertifyOptions(bounds=("marginal",), marginal=MarginalSettings(kernel=kernel))
    fresh = certify(trained, train, test, options)
    assert work == ["kernel", "ep"]
    work.clear()
    cached = dataclasses.replace(options, cache_dir=str(tmp_path))
    first = certify(trained, train, test, cached)
    assert work == ["kernel", "ep"] and len(os.listdir(tmp_path)) == 2
    work.clear()
    resumed = certify(trained, train, test, cached)
    assert work == []  # neither K nor EP is computed again
    assert _report(first) == _report(fresh) == _report(resumed)
    prior = resumed.diagnostics["marginal"]["kernel"]
    assert prior == first.diagnostics["marginal"]["kernel"]
    assert resumed.diagnostics["marginal"]["ep"] == first.diagnostics["marginal"]["ep"]  # its seconds too
    certified = resumed.bound("marginal-certified")
    assert certified.value == fresh.bound("marginal-certified").value
    assert certified.log_evidence == fresh.bound("marginal-certified").log_evidence
    if kernel == "monte-carlo":  # the chosen count, rank and standard errors come back with K
        assert prior["samples"] > 2 and prior["estimate"]["rank"] == len(train)
        assert prior["estimate"]["sample_rule"]["rule"] == "auto" and "initialisations" in prior["summary"]


# ---------------------------------------------------------------- the phases on their own
def _task(classes: int = 2, m: int = 30):
    train = take(load_dataset("mnist-embedded", split="train"), m, seed=1)
    test = take(load_dataset("mnist-embedded", split="test"), 20, seed=1)
    if classes == 2:
        train, test = binarise(train), binarise(test)
    else:
        train, test = (dataclasses.replace(d, labels=d.labels % classes) for d in (train, test))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 8), nn.ReLU(), nn.Linear(8, 1 if classes == 2 else classes))
    return model, train, test


def _bounds(model, train, test, folder, classes=2, **settings):
    fixed = {"quiet": True, **settings}
    results, diagnostics = marginal_bounds(
        model,
        train.x,
        train.labels,
        test.x,
        test.labels,
        classes=classes,
        delta=0.05,
        settings=MarginalSettings(**fixed),
        cache_dir=folder,
    )
    return _timeless(json.loads(json.dumps({"bounds": [b.to_dict() for b in results], "diagnostics": diagnostics})))


def test_a_multiclass_run_resumes_with_the_same_numbers(tmp_path, work):
    model, train, test = _task(classes=3)
    fresh = _bounds(model, train, test, None, classes=3)
    _bounds(model, train, test, tmp_path, classes=3)
    work.clear()
    assert _bounds(model, train, test, tmp_path, classes=3) == fresh and work == []


def _damage(folder, phase: str, how) -> None:
    (name,) = [f for f in os.listdir(folder) if f.startswith(f"{phase}-")]
    how(os.path.join(folder, name))


def _tamper(path) -> None:
    with np.load(path) as entry:
        content = {k: entry[k] for k in entry.files}
    content["site_precision"] = content["site_precision"] * 2.0
    with open(path, "wb") as stream:
        np.savez(stream, **content)


def test_damaged_entries_warn_once_each_and_are_recomputed(tmp_path, work):
    model, train, test = _task()
    first = _bounds(model, train, test, tmp_path, kernel="monte-carlo", kernel_samples=8)
    _damage(tmp_path, "marginal-kernel", lambda p: open(p, "r+b").truncate(os.path.getsize(p) // 2))
    _damage(tmp_path, "marginal-ep", _tamper)
    work.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = _bounds(model, train, test, tmp_path, kernel="monte-carlo", kernel_samples=8)
    messages = [str(w.message) for w in caught if issubclass(w.category, PhaseCacheWarning)]
    assert len(messages) == 2 and "cannot be read" in messages[0] and "checksum" in messages[1]
    assert work == ["kernel", "ep"] and again == first
    work.clear()
    assert _bounds(model, train, test, tmp_path, kernel="monte-carlo", kernel_samples=8) == first and work == []


def _changed_data(model, train, test, settings):
    x = train.x.clone()
    x[0].view(-1)[0] += 1e-3
    return model, dataclasses.replace(train, x=x), test, settings


def _changed_weights(model, train, test, settings):
    changed = copy.deepcopy(model)
    with torch.no_grad():
        changed[1].weight[0, 0] += 1e-3
    return changed, train, test, settings


@pytest.mark.parametrize(
    "change, recomputed",
    [
        (_changed_data, ["kernel", "ep"]),
        (_changed_weights, ["kernel"]),  # the kernel is keyed on the weights, but K is the same: EP is read
        (lambda model, train, test, s: (model, train, test, {**s, "seed": 1}), ["kernel", "ep"]),  # new draws
        (lambda model, train, test, s: (model, train, test, {**s, "jitter": 1e-4}), ["ep"]),
        (lambda model, train, test, s: (model, train, test, {**s, "kernel_samples": 9}), ["kernel", "ep"]),
        (lambda model, train, test, s: (model, train, test, {**s, "kernel_projection": 2}), ["kernel", "ep"]),
    ],
    ids=["data", "weights", "seed", "jitter", "samples", "projection"],
)
def test_a_change_misses_the_phases_it_feeds(tmp_path, work, change, recomputed):
    model, train, test = _task()
    settings = {"kernel": "monte-carlo", "kernel_samples": 8}
    _bounds(model, train, test, tmp_path, **settings)
    work.clear()
    _bounds(model, train, test, tmp_path, **settings)
    assert work == []
    model, train, test, settings = change(model, train, test, settings)
    _bounds(model, train, test, tmp_path, **settings)
    assert work == recomputed


def test_an_analytic_kernel_is_keyed_on_its_settings(tmp_path, work):
    model, train, test = _task()
    _bounds(model, train, test, tmp_path, kernel="analytic")
    _bounds(model, train, test, tmp_path, kernel="analytic", sigma_w=1.0)
    assert work == ["kernel", "ep", "kernel", "ep"]


def test_without_a_folder_nothing_is_hashed(monkeypatch):
    from pacbayes import cache

    model, train, test = _task()
    monkeypatch.setattr(cache.Phase, "key", lambda self: pytest.fail("a key was computed without a cache"))
    _bounds(model, train, test, None, kernel="monte-carlo", kernel_samples=8)


NET = """import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, x):
        return self.linear({inner})
"""


def _net(folder, inner: str, monkeypatch) -> nn.Module:
    """A Net imported from the file ``folder``/user_net.py, written now with ``inner`` as the read-out's input."""
    import importlib.util

    path = folder / "user_net.py"
    path.write_text(NET.format(inner=inner))
    spec = importlib.util.spec_from_file_location("user_net", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "user_net", module)
    spec.loader.exec_module(module)
    return module.Net()


def test_the_model_key_reads_the_code_that_repr_does_not_show(tmp_path, monkeypatch):
    from pacbayes.families.marginal_cache import model_record

    one = model_record(_net(tmp_path, "x", monkeypatch))
    edited = model_record(_net(tmp_path, "x.relu()", monkeypatch))  # forward edited: same name, layers, repr
    assert one["repr"] == edited["repr"] and one["modules"] == edited["modules"] and one != edited
    assert "x.relu()" in edited["code"]["user_net.Net"]
    assert model_record(_net(tmp_path, "x", monkeypatch)) == one
    scripted = torch.jit.script(nn.Sequential(nn.Linear(3, 2), nn.ReLU()))
    assert "relu" in json.dumps(model_record(scripted)["code"])  # the compiled code (its text varies with torch state)


def test_an_ep_entry_with_a_valid_checksum_but_a_foreign_record_is_recomputed(tmp_path, work):
    # whoever can write the folder can also write a matching checksum: a record that is not an EP result's must
    # be refused with one warning and recomputed, never a traceback
    from pacbayes.cache import CHECKSUM, _checksum

    model, train, test = _task()
    first = _bounds(model, train, test, tmp_path)
    (name,) = [f for f in os.listdir(tmp_path) if f.startswith("marginal-ep-")]
    path = os.path.join(tmp_path, name)
    with np.load(path) as entry:
        content = {k: entry[k] for k in entry.files if k != CHECKSUM}
    content["record"] = json_array({"not_a_field": 1}).numpy()
    content[CHECKSUM] = _checksum(name.removeprefix("marginal-ep-").removesuffix(".npz"), content)
    with open(path, "wb") as stream:
        np.savez(stream, **content)
    work.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = _bounds(model, train, test, tmp_path)
    messages = [str(w.message) for w in caught if issubclass(w.category, PhaseCacheWarning)]
    assert len(messages) == 1 and "not an EP result's" in messages[0]
    assert work == ["ep"] and again == first


@pytest.mark.parametrize("settings", [{"kernel": "monte-carlo", "kernel_samples": 8}, {"kernel": "analytic"}])
def test_a_cached_kernel_is_estimated_as_reading_its_entry(tmp_path, settings):
    # --max-minutes and the announcement see what the run will do: read the kernel pass (and a Monte Carlo
    # pass's cross kernel), not compute it; an analytic kernel's Q* cross kernel is still computed
    model, train, test = _task()

    def estimates():
        options = MarginalSettings(quiet=True, **settings)
        return {e.phase: e for e in marginal_estimates(model, train, test, options, 2, cache_dir=tmp_path)}

    fresh = estimates()
    analytic = settings["kernel"] == "analytic"
    (kernel,) = [phase for phase in fresh if "NNGP kernel" in phase]
    assert kernel.endswith("NNGP kernel" if analytic else "(with the Q* baseline's test kernels)")
    assert ("Q* baseline cross kernel" in fresh) == analytic  # a Monte Carlo pass computes it with K
    _bounds(model, train, test, tmp_path, **settings)
    cached = estimates()
    (read,) = [e for phase, e in cached.items() if phase.endswith("NNGP kernel, read from --cache-dir")]
    assert read.seconds < 0.01 and read.peak_bytes >= 8 * len(train) ** 2
    assert ("Q* baseline cross kernel" in cached) == analytic
