"""The Monte Carlo NNGP against a plain reference: every initialisation drawn, run through the user's module one
draw at a time in float64, and its Gram matrix summed in float64. Covers the stacked copy's rewrites (a monotone
activation moved after a max-pool, activations in place) where they apply and where they must not."""

import numpy as np
import pytest
import torch
from torch import nn

import pacbayes.kernels.monte_carlo as monte_carlo
from pacbayes.kernels import MonteCarloNNGP
from pacbayes.kernels.stacked import stack_module


def _reordered():
    """Every activation directly before a max-pool is monotone: ReLU, and LeakyReLU with a positive slope
    before a padded ceil-mode pool."""
    return nn.Sequential(
        nn.Conv2d(3, 3, 3, padding=1),
        nn.BatchNorm2d(3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.LeakyReLU(0.2),
        nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
        nn.Flatten(),
        nn.Linear(36, 2),
    )


def _kept():
    """No activation may move: GELU (not piecewise linear), a ReLU before an average pool, a LeakyReLU with a
    negative slope (not monotone)."""
    return nn.Sequential(
        nn.Conv2d(3, 3, 3, padding=1),
        nn.BatchNorm2d(3),
        nn.GELU(),
        nn.MaxPool2d(2),
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(4, 4, 1),
        nn.LeakyReLU(-0.5),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4, 2),
    )


def _images(n, seed):
    return torch.randn(n, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _reference(module, x, x_test, samples, seed, estimator):
    """(K(x, x), K(x, x_test), diagonal of K(x_test, x_test)): each draw's features from the module itself."""
    net = [layer.double() for layer in __import__("copy").deepcopy(module).eval()]
    body, readout = nn.Sequential(*net[:-1]), net[-1]
    width = readout.in_features
    kernels = [torch.zeros(x.shape[0], n, dtype=torch.float64) for n in (x.shape[0], x_test.shape[0])]
    diagonal = torch.zeros(x_test.shape[0], dtype=torch.float64)
    for value in np.random.SeedSequence(seed).generate_state(samples):
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(int(value))
            for layer in net:
                if hasattr(layer, "reset_parameters"):
                    layer.reset_parameters()
            f, g = ((body(v), 1.0 / (3 * width), 1.0 / (3 * width)) for v in (x, x_test))
            if estimator == "logits":
                f, g = ((readout(v[0]), 1.0 / readout.out_features, 0.0) for v in (f, g))
        (f, a, b), (g, _, _) = f, g
        kernels[0] += a * f @ f.T + b
        kernels[1] += a * f @ g.T + b
        diagonal += a * (g * g).sum(dim=1) + b
    return kernels[0] / samples, kernels[1] / samples, diagonal / samples


def _layer_types(module):
    stacked, _ = stack_module(module)
    return [type(layer).__name__ for layer in stacked], stacked


def test_a_monotone_activation_runs_after_the_max_pool_and_in_place():
    user = _reordered()
    types, stacked = _layer_types(user)
    assert types == ["_Conv", "Identity", "_PairMax2d", "ReLU", "_Conv", "Identity", "MaxPool2d", "LeakyReLU"] + [
        "Flatten",
        "_Linear",
    ]
    assert stacked[3].inplace and stacked[7].inplace
    assert not user[2].inplace and not user[6].inplace  # the user's module is left as it was


def test_activations_that_do_not_commute_keep_their_place():
    types, stacked = _layer_types(_kept())
    assert types[2:4] == ["GELU", "_PairMax2d"] and types[5:7] == ["ReLU", "AvgPool2d"]
    assert types[8:10] == ["LeakyReLU", "_PairMax2d"]
    assert stacked[5].inplace and stacked[8].inplace  # each right after a convolution's fresh output


def test_an_activation_on_the_sequential_input_never_runs_in_place():
    _, stacked = _layer_types(nn.Sequential(nn.ReLU(), nn.Conv2d(3, 2, 1), nn.ReLU()))
    assert not stacked[0].inplace and stacked[2].inplace


@pytest.mark.parametrize("make", [_reordered, _kept])
@pytest.mark.parametrize("estimator", ["readout", "logits"])
def test_the_kernels_equal_the_plain_reference(make, estimator, monkeypatch):
    monkeypatch.setattr(monte_carlo, "GRAM_ROWS", 3)  # several blocks of the lower triangle, the last one short
    x, x_test = _images(10, 0), _images(4, 1)
    kernel = MonteCarloNNGP(make(), samples=5, seed=3, batch_size=2, estimator=estimator, precision="float64")
    K, cross, diagonal = kernel.train_and_test(x, x_test)
    assert kernel.evaluation == "stacked"
    expected = _reference(make(), x, x_test, 5, 3, estimator)
    scale = float(expected[0].diagonal().mean())
    for got, want in zip((K, cross, diagonal), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=0.0, atol=1e-12 * scale)
    assert torch.equal(K, K.T)


def test_float32_forwards_and_vmap_agree_with_the_reference(monkeypatch):
    x, x_test = _images(9, 0), _images(3, 1)
    expected = _reference(_reordered(), x, x_test, 4, 1, "readout")
    scale = float(expected[0].diagonal().mean())
    stacked = MonteCarloNNGP(_reordered(), samples=4, seed=1, batch_size=3).train_and_test(x, x_test)
    monkeypatch.setattr(monte_carlo, "stack_module", lambda module: (None, "forced"))
    vmapped = MonteCarloNNGP(_reordered(), samples=4, seed=1, batch_size=3).train_and_test(x, x_test)
    for got in (stacked, vmapped):
        assert torch.equal(got[0], got[0].T)
        for value, want in zip(got, expected, strict=True):
            torch.testing.assert_close(value, want, rtol=0.0, atol=1e-5 * scale)
