"""Shared pytest configuration: heavy tests run only with --run-heavy."""

import pytest


def pytest_addoption(parser):
    parser.addoption(
        "--run-heavy", action="store_true", default=False, help="also run tests marked heavy (large m, long training)"
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-heavy"):
        return
    skip = pytest.mark.skip(reason="heavy: run with --run-heavy")
    for item in items:
        if "heavy" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small tensor work runs fastest, and steadiest on a shared CPU, on one torch thread; a module asks for it
    with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")`` (before its module-scoped fixtures)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(task):
    """(train, test) from mnist-embedded for the module's ``task`` fixture (a tasks.MnistTask); train is binarised."""
    from pacbayes.data import binarise, load_dataset, take

    train = take(binarise(load_dataset("mnist-embedded", split="train")), task.m, seed=task.seed)
    test = take(load_dataset("mnist-embedded", split="test"), task.n_test, seed=task.seed)
    return train, test


@pytest.fixture(scope="module")
def trained(data, task):
    """The demo network of width ``task.width`` trained to zero training error on ``data``."""
    import torch

    from pacbayes.demo import demo_network, train_to_zero_error

    torch.manual_seed(task.seed)
    model = demo_network(width=task.width)
    train_to_zero_error(model, data[0], seed=task.seed, quiet=True)
    return model
