"""nngp_for_module: which modules are recognised, and PyTorch's default-init variances."""

import math

import pytest
import torch
from torch import nn

from pacbayes.kernels import ConvolutionalNNGP, FullyConnectedNNGP, analytic_kernel_or_reason, nngp_for_module


def _default_b(fan_in):
    return math.sqrt(1 / (3 * fan_in))


def test_pytorch_default_init_variances_are_what_we_infer():
    """Empirical variances of reset_parameters() draws: weights 1/(3 fan_in), biases 1/(3 fan_in)."""
    torch.manual_seed(0)
    for layer, fan_in in ((nn.Linear(40, 500), 40), (nn.Conv2d(3, 100, 5), 75)):
        weights, biases = [], []
        for _ in range(40):
            layer.reset_parameters()
            weights.append(layer.weight.detach().flatten())
            biases.append(layer.bias.detach())
        assert float(torch.cat(weights).var()) * fan_in == pytest.approx(1 / 3, rel=0.02)
        assert float(torch.cat(biases).var()) * fan_in == pytest.approx(1 / 3, rel=0.05)


def test_fully_connected_recognised_with_per_layer_bias():
    net = nn.Sequential(
        nn.Flatten(), nn.Sequential(nn.Linear(12, 30), nn.ReLU()), nn.Linear(30, 20), nn.ReLU(), nn.Linear(20, 1)
    )
    kernel = nngp_for_module(net, (1, 3, 4))
    expected = FullyConnectedNNGP(2, "relu", math.sqrt(1 / 3), [_default_b(12), _default_b(30), _default_b(20)])
    legacy = ("kind", "depth", "activation", "sigma_w", "sigma_b")
    assert {k: kernel.describe()[k] for k in legacy} == {k: expected.describe()[k] for k in legacy}
    assert kernel.describe()["layers"][:3] == ["flatten", "linear(12->30, sw=0.577, sb=0.167)", "relu"]
    x = torch.randn(4, 1, 3, 4, dtype=torch.float64)
    torch.testing.assert_close(kernel.matrix(x), expected.matrix(x))
    override = nngp_for_module(net, (1, 3, 4), sigma_w=1.5, sigma_b=0.1).describe()
    assert override["sigma_w"] == 1.5 and override["sigma_b"] == 0.1


def test_linear_and_bias_free_layers():
    net = nn.Sequential(nn.Linear(5, 8), nn.Identity(), nn.Linear(8, 4, bias=False), nn.Linear(4, 1))
    record = nngp_for_module(net, (5,)).describe()
    assert record["activation"] == "linear" and record["depth"] == 2
    assert record["sigma_b"] == pytest.approx([_default_b(5), 0.0, _default_b(4)])


@pytest.mark.parametrize("pooling", ["flatten", "gap"])
def test_convolutional_recognised(pooling):
    head = (
        [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 1)]
        if pooling == "gap"
        else [nn.Flatten(), nn.Linear(6 * 4 * 4, 1)]
    )
    net = nn.Sequential(
        nn.Conv2d(2, 5, 3, padding="same"),
        nn.ReLU(),
        nn.Conv2d(5, 6, 3, stride=2, padding=1, bias=False),
        nn.ReLU(),
        *head,
    )
    kernel = nngp_for_module(net, (2, 8, 8))
    record = kernel.describe()
    assert record["kind"] == "nngp-cnn" and record["pooling"] == pooling and record["depth"] == 2
    assert record["conv_layers"] == [[5, [3, 3], [1, 1], [1, 1]], [6, [3, 3], [2, 2], [1, 1]]]
    fan_out = 6 if pooling == "gap" else 96
    assert record["sigma_b"] == pytest.approx([_default_b(18), 0.0, _default_b(fan_out)])
    x = torch.randn(3, 2, 8, 8)
    layers = [(5, 3, 1, 1), (6, 3, 2, 1)]
    expected = ConvolutionalNNGP(layers, "relu", math.sqrt(1 / 3), record["sigma_b"], pooling, (2, 8, 8))
    torch.testing.assert_close(kernel.matrix(x), expected.matrix(x), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    "net,shape,kind",
    [
        (nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)), (4,), "nngp-graph"),
        (nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), (4,), "nngp-fc"),
        (nn.Sequential(nn.Linear(4, 1)), (4,), "nngp-graph"),
        (nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(), nn.Linear(8, 1)), (4,), "nngp-fc"),
        (
            nn.Sequential(nn.Conv2d(1, 3, 3, dilation=2), nn.ReLU(), nn.Flatten(), nn.Linear(12, 1)),
            (1, 6, 6),
            "nngp-graph",
        ),
        (
            nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(48, 10), nn.ReLU(), nn.Linear(10, 1)),
            (1, 6, 6),
            "nngp-graph",
        ),
    ],
)
def test_architectures_beyond_the_classic_families_compile(net, shape, kind):
    assert nngp_for_module(net, shape).kind == kind


@pytest.mark.parametrize(
    "net,shape,reason",
    [
        (nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 1)), (4,), "could not be traced"),
        (nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(7, 1)), (4,), "could not be traced"),
        (
            nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3 * 2 * 2, 1)),
            (1, 6, 6),
            "max_pool2d has no NNGP rule",
        ),
        (nn.Sequential(nn.Linear(4, 8), nn.ReLU()), (4,), "not zero-mean"),
    ],
)
def test_unrecognised_modules_give_none_and_a_reason(net, shape, reason):
    assert nngp_for_module(net, shape) is None
    kernel, why = analytic_kernel_or_reason(net, shape)
    assert kernel is None and reason in why


def test_torchscript_sequential_is_recognised():
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    scripted = torch.jit.script(net)
    a, b = nngp_for_module(scripted, (4,)).describe(), nngp_for_module(net, (4,)).describe()
    assert a.pop("source").startswith("TorchScript") and b.pop("source").startswith("nn.Module")
    assert a == b
