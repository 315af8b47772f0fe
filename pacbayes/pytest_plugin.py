"""pytest plugin: a cache option and fixtures for regression-testing generalisation claims.

Installing pacbayes registers this module under the ``pytest11`` entry point (name ``pacbayes``),
so every pytest run loads it; nothing needs to be added to a ``conftest.py``. Loading it is cheap:
torch and the rest of pacbayes are imported only when a fixture below is used.

Command-line option::

    pytest --pacbayes-cache DIR     # folder of the content-hash cache of certify reports
    pytest --pacbayes-cache none    # no cache: every assert_certified call recomputes

Without the option the folder is what :mod:`pacbayes.testing` uses: ``$PACBAYES_CACHE_DIR``,
else ``.pacbayes-cache`` (relative paths are taken from the directory pytest was started in).

Fixtures:

``pacbayes_cache_dir`` (session)
    the chosen cache folder as an absolute :class:`pathlib.Path`, or None when caching is off.
``mnist_embedded`` (session)
    ``mnist_embedded(split="train", m=None, seed=0, binarised=False)`` returns the embedded MNIST
    split as a :class:`pacbayes.data.Dataset` (``pacbayes.data.load_dataset("mnist-embedded",
    split=...)``, loaded once per session); ``binarised=True`` applies
    :func:`pacbayes.data.binarise` (digits 0-4 vs 5-9) and ``m`` takes a seeded subset of m
    examples with :func:`pacbayes.data.take`.
``assert_certified``
    :func:`pacbayes.testing.assert_certified` with ``cache_dir`` bound to the session's folder
    (``False``, no cache, under ``--pacbayes-cache none``); an explicit ``cache_dir=`` still wins.

Example::

    def test_bound_is_small(mnist_embedded, assert_certified):
        train = mnist_embedded("train", m=200, seed=0, binarised=True)
        test = mnist_embedded("test", m=1000, seed=0)
        model = ...  # trained on train
        assert_certified(model, train, test=test, bound="marginal", at_most=0.5)
"""

import os
from pathlib import Path

import pytest

OPTION = "--pacbayes-cache"
DISABLED = "none"


def pytest_addoption(parser):
    group = parser.getgroup("pacbayes", "pacbayes certified bounds")
    group.addoption(
        OPTION,
        action="store",
        dest="pacbayes_cache",
        default=None,
        metavar="DIR",
        help="folder for pacbayes.testing's content-hash cache of certify reports, or 'none' for no cache "
        "(default: $PACBAYES_CACHE_DIR, else .pacbayes-cache)",
    )


def cache_dir_from_config(config):
    """The cache folder chosen for this pytest run (absolute Path), or None if ``--pacbayes-cache none``."""
    value = config.getoption("pacbayes_cache")
    if value is None:
        from pacbayes.report_cache import CACHE_ENV, DEFAULT_CACHE_DIR

        value = os.environ.get(CACHE_ENV, DEFAULT_CACHE_DIR)  # an empty variable means no cache, as there
    if not value or value.strip().lower() == DISABLED:
        return None
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = Path(config.invocation_params.dir) / path
    return path


@pytest.fixture(scope="session")
def pacbayes_cache_dir(pytestconfig):
    """The session's cache folder for certify reports (a Path), or None when caching is disabled."""
    return cache_dir_from_config(pytestconfig)


class MnistEmbedded:
    """Callable giving the embedded MNIST splits; each split is read once and reused."""

    def __init__(self):
        self._splits = {}

    def __call__(self, split="train", *, m=None, seed=0, binarised=False):
        from pacbayes.data import binarise, load_dataset, take

        if split not in self._splits:
            self._splits[split] = load_dataset("mnist-embedded", split=split)
        data = self._splits[split]
        if binarised:
            data = binarise(data)
        if m is not None:
            data = take(data, m, seed=seed)
        return data

    def train(self, **kwargs):
        return self("train", **kwargs)

    def test(self, **kwargs):
        return self("test", **kwargs)


@pytest.fixture(scope="session")
def mnist_embedded():
    """``mnist_embedded(split="train", m=None, seed=0, binarised=False)``: the embedded MNIST Dataset."""
    return MnistEmbedded()


@pytest.fixture
def assert_certified(pacbayes_cache_dir):
    """:func:`pacbayes.testing.assert_certified` with ``cache_dir`` bound to the session's cache folder."""
    from pacbayes import testing

    bound_dir = False if pacbayes_cache_dir is None else pacbayes_cache_dir

    def check(model, train, *, cache_dir=None, **kwargs):
        return testing.assert_certified(model, train, cache_dir=bound_dir if cache_dir is None else cache_dir, **kwargs)

    check.__doc__ = testing.assert_certified.__doc__
    check.cache_dir = pacbayes_cache_dir
    return check
