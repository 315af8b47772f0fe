"""The pytest plugin (pacbayes.pytest_plugin): --pacbayes-cache and the fixtures, run in inner pytest sessions.

Inner sessions that use torch run in a subprocess: pytester's in-process runs drop the modules they
imported afterwards, and torch cannot be imported twice into one process.
"""

import json
import os
from importlib import metadata

from pacbayes.testing import CACHE_ENV, DEFAULT_CACHE_DIR

pytest_plugins = ["pytester"]

CACHE_DIR_TEST = """
import json
def test_cache_dir(pacbayes_cache_dir, assert_certified):
    with open("seen.json", "w") as stream:
        json.dump(None if pacbayes_cache_dir is None else str(pacbayes_cache_dir), stream)
    assert assert_certified.cache_dir == pacbayes_cache_dir
"""


def seen_cache_dir(pytester, *args):
    pytester.makepyfile(test_inner=CACHE_DIR_TEST)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=1)
    with open(pytester.path / "seen.json") as stream:
        return json.load(stream)


def test_plugin_is_registered_under_pytest11():
    (entry,) = [e for e in metadata.entry_points(group="pytest11") if e.name == "pacbayes"]
    assert entry.value == "pacbayes.pytest_plugin"


def test_option_is_listed_in_help(pytester):
    result = pytester.runpytest_inprocess("--help")
    result.stdout.fnmatch_lines(["*--pacbayes-cache=DIR*"])


def test_cache_dir_honours_the_option(pytester, tmp_path):
    folder = tmp_path / "my-cache"
    assert seen_cache_dir(pytester, "--pacbayes-cache", str(folder)) == str(folder)
    assert seen_cache_dir(pytester, "--pacbayes-cache=relative/dir") == str(pytester.path / "relative" / "dir")


def test_cache_dir_none_disables_caching(pytester):
    assert seen_cache_dir(pytester, "--pacbayes-cache", "none") is None
    assert seen_cache_dir(pytester, "--pacbayes-cache=NONE") is None


def test_cache_dir_default_is_the_testing_default(pytester, monkeypatch, tmp_path):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert seen_cache_dir(pytester) == str(pytester.path / DEFAULT_CACHE_DIR)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "from-env"))
    assert seen_cache_dir(pytester) == str(tmp_path / "from-env")
    assert seen_cache_dir(pytester, "--pacbayes-cache", "none") is None  # the option wins over the variable


def test_mnist_embedded_sizes(pytester):
    pytester.makepyfile(
        test_inner="""
        def test_full_splits(mnist_embedded):
            train, test = mnist_embedded("train"), mnist_embedded.test()
            assert len(train) == 5000 and len(test) == 5000
            assert train.num_classes == 10 and tuple(train.x.shape[1:]) == (1, 28, 28)
            assert mnist_embedded("train") is train  # loaded once per session

        def test_seeded_binarised_subset(mnist_embedded):
            a = mnist_embedded("train", m=30, seed=4, binarised=True)
            b = mnist_embedded.train(m=30, seed=4, binarised=True)
            c = mnist_embedded("train", m=30, seed=5, binarised=True)
            assert len(a) == 30 and a.num_classes == 2
            assert (a.x == b.x).all() and (a.labels == b.labels).all()
            assert not (a.x == c.x).all()
            assert len(mnist_embedded("test", m=100, seed=0)) == 100
        """
    )
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)


ASSERT_CERTIFIED_TEST = """
import pytest
import torch
from pacbayes.demo import demo_network, train_to_zero_error

@pytest.fixture(scope="module")
def task(mnist_embedded):
    train = mnist_embedded("train", m=30, seed=0, binarised=True)
    test = mnist_embedded("test", m=100, seed=0)
    torch.manual_seed(0)
    model = demo_network(width=16)
    train_to_zero_error(model, train, seed=0, quiet=True)
    return model, train, test

def test_passes_and_caches(task, assert_certified):
    model, train, test = task
    result = assert_certified(model, train, test=test, bound="marginal", at_most=1.0)
    assert result.certified and 0.0 < result.value <= 1.0

def test_fails_below_the_bound(task, assert_certified):
    model, train, test = task
    with pytest.raises(AssertionError, match="exceeds at_most"):
        assert_certified(model, train, test=test, bound="marginal", at_most=0.0)
"""


def test_assert_certified_writes_a_cache_entry(pytester, tmp_path):
    folder = tmp_path / "cache"
    pytester.makepyfile(test_inner=ASSERT_CERTIFIED_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--pacbayes-cache", str(folder))
    result.assert_outcomes(passed=2)
    entries = [name for name in os.listdir(folder) if name.endswith(".json")]
    assert len(entries) == 1  # both tests certify the same model and data: one entry, the second from it
    with open(folder / entries[0]) as stream:
        entry = json.load(stream)
    assert entry["key"] + ".json" == entries[0] and entry["report"]["m"] == 30


def test_assert_certified_with_caching_disabled_writes_nothing(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env-cache"))
    pytester.makepyfile(test_inner=ASSERT_CERTIFIED_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--pacbayes-cache", "none", "-k", "passes")
    result.assert_outcomes(passed=1, deselected=1)
    assert not (tmp_path / "env-cache").exists() and not (pytester.path / DEFAULT_CACHE_DIR).exists()
