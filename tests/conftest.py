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
def data(request):
    """(train, test) from mnist-embedded: a module sets TASK = (m, n_test, seed); train is binarised."""
    from pacbayes.data import binarise, load_dataset, take

    m, n_test, seed = request.module.TASK
    train = take(binarise(load_dataset("mnist-embedded", split="train")), m, seed=seed)
    test = take(load_dataset("mnist-embedded", split="test"), n_test, seed=seed)
    return train, test


@pytest.fixture(scope="module")
def trained(data, request):
    """The demo network (module constant WIDTH) trained to zero training error on ``data``."""
    import torch

    from pacbayes.demo import demo_network, train_to_zero_error

    seed = request.module.TASK[2]
    torch.manual_seed(seed)
    model = demo_network(width=request.module.WIDTH)
    train_to_zero_error(model, data[0], seed=seed, quiet=True)
    return model
