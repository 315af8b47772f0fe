"""The phase cache (pacbayes.cache): content keys, validation of untrusted entries, and resumed runs of the
Dziugaite-Roy and subspace families that certify exactly what a fresh run does while skipping the work."""

import os
import warnings
import zipfile

import numpy as np
import pytest
import subspace_data
import torch
import torch.nn as nn

from pacbayes import cache as phase_cache
from pacbayes.cache import Phase, PhaseCache, PhaseCacheWarning, cached, like
from pacbayes.families.settings import DziugaiteRoySettings, SubspaceSettings
from pacbayes.stochastic import Schedule, certify_stochastic_network
from pacbayes.stochastic import bound as stochastic_bound
from pacbayes.subspace import training as subspace_training

FAST = Schedule(epochs=3, batch_size=50, lr=1e-3)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _phase(**changes) -> Phase:
    fields = {
        "name": "demo",
        "version": 1,
        "settings": {"epochs": 3},
        "inputs": {"x": torch.arange(6.0)},
        "expected": {"w": ((3,), np.float32), "n": ((), np.int64)},
        **changes,
    }
    return Phase(**fields)


RESULT = {"w": torch.tensor([1.5, -2.0, 0.25]), "n": torch.tensor(7)}


def _stored(folder) -> str:
    (name,) = [f for f in os.listdir(folder) if f.endswith(".npz")]
    return os.path.join(folder, name)


def test_round_trip_gives_the_stored_arrays(tmp_path):
    store, key = PhaseCache(tmp_path), _phase().key()
    assert store.get(_phase(), key) is None
    store.put(_phase(), key, RESULT)
    got = store.get(_phase(), key)
    assert torch.equal(got["w"], RESULT["w"]) and int(got["n"]) == 7 and got["w"].dtype == torch.float32


@pytest.mark.parametrize(
    "change",
    [
        {"inputs": {"x": torch.arange(6.0) + 1e-6}},  # data
        {"inputs": {"x": torch.arange(6.0).double()}},  # dtype
        {"settings": {"epochs": 4}},  # settings
        {"version": 2},  # estimator code
        {"name": "other"},
    ],
)
def test_key_changes_with_any_input(change):
    assert _phase(**change).key() != _phase().key()


def test_key_ignores_the_order_of_settings():
    assert _phase(settings={"a": 1, "b": 2}).key() == _phase(settings={"b": 2, "a": 1}).key()


def _rewrite(path, **arrays):
    with np.load(path) as entry:
        content = {k: entry[k] for k in entry.files}
    content.update(arrays)
    with open(path, "wb") as stream:
        np.savez(stream, **content)


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda p: open(p, "r+b").truncate(os.path.getsize(p) // 2), "cannot be read"),
        (lambda p: _rewrite(p, w=np.array([1.5, -2.0, 0.5], dtype=np.float32)), "checksum"),
        (lambda p: _rewrite(p, w=np.array([1.5, np.nan, 0.25], dtype=np.float32)), "non-finite"),
        (lambda p: _rewrite(p, w=np.zeros(4, dtype=np.float32)), "expected float32(3,)"),
        (lambda p: _rewrite(p, w=np.zeros(3, dtype=np.float64)), "expected float32(3,)"),
        (lambda p: _rewrite(p, code=np.array([print], dtype=object)), "cannot be read"),
        (lambda p: _rewrite(p, extra=np.zeros(1)), "holds arrays"),
    ],
    ids=["truncated", "tampered", "non-finite", "shape", "dtype", "pickled-object", "extra-array"],
)
def test_a_damaged_entry_warns_once_and_is_recomputed(tmp_path, damage, reason):
    store = PhaseCache(tmp_path)
    cached(store, _phase(), lambda: RESULT)
    damage(_stored(tmp_path))
    calls = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = cached(store, _phase(), lambda: calls.append(1) or RESULT)
    messages = [str(w.message) for w in caught if issubclass(w.category, PhaseCacheWarning)]
    assert len(messages) == 1 and reason in messages[0] and "recomputed" in messages[0]
    assert calls == [1] and torch.equal(got["w"], RESULT["w"])
    assert cached(store, _phase(), lambda: pytest.fail("the recomputed entry was not stored")) is not None


def test_a_hit_skips_the_work_and_restores_the_generator(tmp_path):
    store = PhaseCache(tmp_path)

    def work(generator):
        return {"w": torch.randn(3, generator=generator), "n": torch.tensor(1)}

    fresh = torch.Generator().manual_seed(5)
    first = cached(store, _phase(), lambda: work(fresh), (fresh,))
    after_fresh = torch.rand(4, generator=fresh)
    resumed = torch.Generator().manual_seed(5)
    second = cached(store, _phase(), lambda: pytest.fail("the phase ran again"), (resumed,))
    assert torch.equal(first["w"], second["w"])
    assert torch.equal(torch.rand(4, generator=resumed), after_fresh)
    other_seed = torch.Generator().manual_seed(6)
    assert not torch.equal(cached(store, _phase(), lambda: work(other_seed), (other_seed,))["w"], first["w"])


def test_no_folder_means_no_cache(tmp_path):
    assert phase_cache.phase_cache(None) is None and phase_cache.phase_cache("") is None
    assert cached(None, _phase(), lambda: RESULT) is RESULT
    assert like(torch.zeros(2, 3, dtype=torch.float64)) == ((2, 3), np.dtype(np.float64))


def test_entries_are_plain_npz_without_pickles(tmp_path):
    store = PhaseCache(tmp_path)
    store.put(_phase(), _phase().key(), RESULT)
    with zipfile.ZipFile(_stored(tmp_path)) as archive:
        assert sorted(archive.namelist()) == ["checksum.npy", "n.npy", "w.npy"]


# ---------------------------------------------------------------- the families, resumed
def _blobs(m=120, seed=0):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (m,), generator=gen)
    x = torch.randn(m, 2, generator=gen) * 0.7 + (2.0 * labels.float() - 1.0)[:, None]
    return x, labels


def _dr(x, labels, folder, seed=0):
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
    settings = DziugaiteRoySettings(
        objective="quad",
        prior_split=0.5,
        mc_samples=20,
        mc_sampling="network",
        posterior_epochs=FAST.epochs,
        prior_epochs=FAST.epochs,
    )
    return certify_stochastic_network(
        net, x, labels, settings, schedule=FAST, prior_schedule=FAST, seed=seed, cache_dir=folder
    ).result


def _counting(monkeypatch, module, name, calls=None) -> list:
    """``calls`` (a new list by default), to which every call of ``module.name`` from now on appends ``name``."""
    calls, original = [] if calls is None else calls, getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(name)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_dziugaite_roy_resumes_with_the_same_certificate(tmp_path, monkeypatch):
    x, labels = _blobs()
    fresh = _dr(x, labels, None)
    calls = _counting(monkeypatch, stochastic_bound, "fit_prior_mean")
    _counting(monkeypatch, stochastic_bound, "fit_posterior", calls)
    _counting(monkeypatch, stochastic_bound, "sampled_error", calls)
    first = _dr(x, labels, tmp_path)
    assert sorted(calls) == ["fit_posterior", "fit_prior_mean", "sampled_error"]
    calls.clear()
    resumed = _dr(x, labels, tmp_path)
    assert calls == []
    for result in (first, resumed):
        assert result.value == fresh.value
        assert {k: v for k, v in result.details.items() if k != "seconds"} == {
            k: v for k, v in fresh.details.items() if k != "seconds"
        }
    _dr(x, labels, tmp_path, seed=1)  # another seed: another key, the work runs again
    assert sorted(calls) == ["fit_posterior", "fit_prior_mean", "sampled_error"]


def test_dziugaite_roy_posterior_key_changes_with_the_data(tmp_path, monkeypatch):
    x, labels = _blobs()
    _dr(x, labels, tmp_path)
    calls = _counting(monkeypatch, stochastic_bound, "fit_posterior")
    flipped = labels.clone()
    flipped[-1] = 1 - flipped[-1]
    _dr(x, flipped, tmp_path)
    assert calls == ["fit_posterior"]


def _subspace(folder, prior_split=0.5):
    x, labels = subspace_data.data(n=200)
    return subspace_training.train_subspace_model(
        subspace_data.net(),
        x,
        labels,
        SubspaceSettings(dim=20, levels=(4, 8), epochs=4, qat_epochs=2, prior_split=prior_split, prior_epochs=2),
        seed=3,
        cache_dir=folder,
    )


def _same_model(a, b):
    assert (a.message, a.code_bits, a.configurations, a.quantisation) == (
        b.message,
        b.code_bits,
        b.configurations,
        b.quantisation,
    )
    assert a.train_error == b.train_error and a.training == b.training and a.model.origin == b.model.origin
    assert torch.equal(a.model.theta0, b.model.theta0) and torch.equal(a.model.z, b.model.z)


def test_subspace_resumes_with_the_same_compressed_model(tmp_path, monkeypatch):
    fresh = _subspace(None)
    calls = _counting(monkeypatch, subspace_training, "_optimise")
    first = _subspace(tmp_path)
    assert len(calls) == 1 + 1 + 2  # origin, fit, one fine-tuning per level count
    calls.clear()
    resumed = _subspace(tmp_path)
    assert calls == []
    _same_model(first, fresh)
    _same_model(resumed, fresh)
    _subspace(tmp_path, prior_split=0.4)  # another split: every phase runs again
    assert len(calls) == 4


def test_certify_with_a_cache_dir_resumes_both_families(tmp_path, monkeypatch):
    from pacbayes.certification import CertifyOptions, certify
    from pacbayes.data import load_dataset, take
    from pacbayes.families.dziugaite_roy import DziugaiteRoySettings
    from pacbayes.families.subspace import SubspaceSettings

    train = take(load_dataset("mnist-embedded", split="train"), 60, seed=0)
    test = take(load_dataset("mnist-embedded", split="test"), 50, seed=0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 8), nn.ReLU(), nn.Linear(8, 10))
    options = CertifyOptions(
        bounds=("dziugaite-roy", "subspace"),
        cache_dir=str(tmp_path),
        dziugaite_roy=DziugaiteRoySettings(
            objective="quad", prior_split=0.5, mc_samples=10, test_draws=2, posterior_epochs=1, prior_epochs=1
        ),
        subspace=SubspaceSettings(dim=10, levels=(4,), epochs=2, qat_epochs=1, prior_split=0.5, prior_epochs=1),
    )
    first = certify(model, train, test, options)
    calls = _counting(monkeypatch, subspace_training, "_optimise")
    for name in ("fit_prior_mean", "fit_posterior", "sampled_error"):
        _counting(monkeypatch, stochastic_bound, name, calls)
    resumed = certify(model, train, test, options)
    assert calls == ["sampled_error"]  # only the stochastic net's test error (a baseline) is measured again
    assert [(b.name, b.value) for b in resumed.bounds] == [(b.name, b.value) for b in first.bounds]
    assert resumed.baselines == first.baselines


def test_the_options_record_the_folder_but_a_rerun_never_reads_it(tmp_path):
    from pacbayes.certification import CertifyOptions, certify
    from pacbayes.data import load_dataset, take
    from pacbayes.errors import InputError
    from pacbayes.provenance import options_from_record, options_record

    record = options_record(CertifyOptions(cache_dir=str(tmp_path)))
    assert record["cache_dir"] == str(tmp_path) and options_from_record(record, CertifyOptions).cache_dir is None
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    data = take(load_dataset("mnist-embedded", split="train"), 20, seed=0)
    with pytest.raises(InputError, match="cache_dir .* is a file"):
        certify(nn.Sequential(nn.Flatten(), nn.Linear(784, 1)), data, data, CertifyOptions(cache_dir=str(blocker)))
