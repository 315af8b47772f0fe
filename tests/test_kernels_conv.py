"""Convolutional NNGP: against a loop-by-loop evaluation of the layer formulas, the fully
connected NNGP (whole-image kernels), symmetry, and finite random CNNs."""

import json
import math

import numpy as np
import pytest
import torch
from random_nets import gaussian_init
from torch import nn

from pacbayes.errors import InputError
from pacbayes.kernels import ConvolutionalNNGP, FullyConnectedNNGP, MonteCarloNNGP
from pacbayes.kernels.activations import expected_product


def _images(n, c, h, w, seed=0):
    return torch.randn(n, c, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _phi_numpy(k12, k11, k22, activation):
    if activation == "relu":
        norm = math.sqrt(k11 * k22)
        theta = math.acos(max(-1.0, min(1.0, k12 / norm)))
        return norm * (math.sin(theta) + (math.pi - theta) * math.cos(theta)) / (2 * math.pi)
    if activation == "erf":
        return 2 / math.pi * math.asin(2 * k12 / math.sqrt((1 + 2 * k11) * (1 + 2 * k22)))
    return k12


def _reference(a, b, layers, activation, sw, sb, pooling):
    """K(a, b) by explicit loops over positions p, p' and window offsets (Novak et al. 2019)."""

    def conv_cov(feature_cov, size, layer):
        """Next-layer covariance from post-activation covariances given as a function of positions."""
        (_, k, s, p) = layer
        out = (size + 2 * p - k) // s + 1
        cov = np.zeros((out, out, out, out))
        for i, j, u, v in np.ndindex(out, out, out, out):
            total = 0.0
            for oh, ow in np.ndindex(k, k):
                r1, c1, r2, c2 = s * i + oh - p, s * j + ow - p, s * u + oh - p, s * v + ow - p
                if all(0 <= t < size for t in (r1, c1, r2, c2)):
                    total += feature_cov(r1, c1, r2, c2)
            cov[i, j, u, v] = sb[len(covs)] ** 2 + sw**2 * total / (k * k)
        return cov, out

    size, covs = a.shape[1], []
    channels = a.shape[0]
    pairs = {"ab": (a, b), "aa": (a, a), "bb": (b, b)}
    current, out = {}, None
    for key, (u, v) in pairs.items():
        current[key], out = conv_cov(
            lambda r1, c1, r2, c2, u=u, v=v: float(u[:, r1, c1] @ v[:, r2, c2]) / channels, size, layers[0]
        )
    covs.append(current)
    size = out
    for layer in layers[1:] + [None]:
        cov = covs[-1]

        def post(key, r1, c1, r2, c2, cov=cov):
            left, right = {"ab": ("aa", "bb"), "aa": ("aa", "aa"), "bb": ("bb", "bb")}[key]
            return _phi_numpy(
                cov[key][r1, c1, r2, c2], cov[left][r1, c1, r1, c1], cov[right][r2, c2, r2, c2], activation
            )

        if layer is None:
            positions = list(np.ndindex(size, size))
            if pooling == "flatten":
                mean = np.mean([post("ab", i, j, i, j) for i, j in positions])
            else:
                mean = np.mean([post("ab", i, j, u, v) for i, j in positions for u, v in positions])
            return sb[-1] ** 2 + sw**2 * mean
        current = {}
        for key in pairs:
            current[key], out = conv_cov(lambda r1, c1, r2, c2, key=key: post(key, r1, c1, r2, c2), size, layer)
        covs.append(current)
        size = out


@pytest.mark.parametrize("pooling", ["flatten", "gap"])
@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_matches_loop_reference(pooling, activation):
    layers = [(4, 3, 1, 1), (4, 2, 2, 1)]
    sw, sb = 1.3, [0.2, 0.5, 0.1]
    x = _images(3, 2, 5, 5, seed=1)
    kernel = ConvolutionalNNGP(layers, activation, sw, sb, pooling, input_shape=(2, 5, 5))
    got = kernel.matrix(x, block_size=2).numpy()
    xs = x.numpy()
    expected = np.array(
        [[_reference(xs[i], xs[j], layers, activation, sw, sb, pooling) for j in range(3)] for i in range(3)]
    )
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("pooling", ["flatten", "gap"])
@pytest.mark.parametrize("activation", ["relu", "erf", "linear"])
def test_whole_image_kernel_equals_fully_connected(pooling, activation):
    """A first conv as large as the image, then 1x1 convs, is a fully connected net."""
    x = _images(6, 3, 4, 4, seed=2)
    cnn = ConvolutionalNNGP([(8, 4, 1, 0), (8, 1, 1, 0), (8, 1, 1, 0)], activation, 1.1, [0.3, 0.2, 0.1, 0.4], pooling)
    fc = FullyConnectedNNGP(3, activation, 1.1, [0.3, 0.2, 0.1, 0.4])
    torch.testing.assert_close(cnn.matrix(x), fc.matrix(x), rtol=1e-13, atol=1e-14)
    torch.testing.assert_close(cnn.diagonal(x), fc.diagonal(x), rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("pooling", ["flatten", "gap"])
def test_symmetric_psd_permutation_and_flip_invariance(pooling):
    x = _images(9, 1, 6, 6, seed=3)
    kernel = ConvolutionalNNGP([(4, 3, 1, 1), (4, 3, 1, 1)], "relu", 1.4, 0.1, pooling, input_shape=(1, 6, 6))
    k = kernel.matrix(x, block_size=4)
    assert torch.equal(k, k.T)
    eigenvalues = torch.linalg.eigvalsh(k)
    assert eigenvalues[0] > -1e-12 * eigenvalues[-1]
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(kernel.matrix(x[perm], block_size=3), k[perm][:, perm], rtol=1e-13, atol=1e-14)
    # mirror images: the weight prior is invariant to flipping every filter
    torch.testing.assert_close(kernel.matrix(x.flip(-1)), k, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(kernel.matrix(x, x[:4]), k[:, :4], rtol=1e-13, atol=1e-14)
    torch.testing.assert_close(kernel.matrix(x.reshape(9, 36).numpy(), block_size=4), k, rtol=0, atol=0)
    torch.testing.assert_close(k.diagonal(), kernel.diagonal(x), rtol=0, atol=0)


def test_describe_is_json_ready():
    record = ConvolutionalNNGP([(16, 5, 2, 2)], "relu", 1.0, 0.1, "gap", (1, 28, 28)).describe()
    assert json.loads(json.dumps(record)) == record
    assert record["kind"] == "nngp-cnn" and record["depth"] == 1 and record["pooling"] == "gap"
    assert record["conv_layers"] == [[16, [5, 5], [2, 2], [2, 2]]]
    assert record["layers"] == [
        "conv2d(k=5x5, s=2x2, p=2,2, sw=1, sb=0.1)",
        "relu",
        "global-mean",
        "flatten",
        "linear(sw=1, sb=0.1)",
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(layers=[]),
        dict(layers=[(4, 3, 1)]),
        dict(layers=[(0, 3, 1, 1)]),
        dict(layers=[(4, 0, 1, 1)]),
        dict(layers=[(4, 3, 0, 1)]),
        dict(layers=[(4, 3, 1, -1)]),
        dict(layers=[(4, 3, 1, 1)], pooling="max"),
        dict(layers=[(4, 3, 1, 1)], sigma_w=0),
        dict(layers=[(4, 3, 1, 1)], sigma_b=-1.0),
        dict(layers=[(4, 3, 1, 1)], sigma_b=[0.1, 0.1, 0.1]),
        dict(layers=[(4, 9, 1, 0)], input_shape=(1, 5, 5)),
        dict(layers=[(4, 3, 1, 1)], input_shape=(5, 5)),
        dict(layers=[(4, 3, 1, 1)], activation="tanh"),
    ],
)
def test_bad_parameters_raise(kwargs):
    with pytest.raises(InputError):
        ConvolutionalNNGP(**kwargs)


@pytest.mark.parametrize(
    "x", [torch.ones(2, 1, 5), torch.ones(2, 2, 5, 5), torch.ones(2, 24), torch.full((2, 1, 5, 5), float("nan"))]
)
def test_bad_inputs_raise(x):
    with pytest.raises(InputError):
        ConvolutionalNNGP([(4, 3, 1, 1)], input_shape=(1, 5, 5)).matrix(x)


@pytest.mark.parametrize("pooling", ["flatten", "gap"])
def test_one_conv_layer_finite_net_is_exact(pooling):
    """One conv layer (2 channels): the finite CNN's covariance equals the NNGP within 4.5 SE."""
    x = _images(4, 2, 5, 5, seed=4)
    head = (
        [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 1)]
        if pooling == "gap"
        else [nn.Flatten(), nn.Linear(3 * 3 * 3, 1)]
    )
    net = nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.ReLU(), *head)
    mc = MonteCarloNNGP(net, samples=4000, seed=5, init_fn=gaussian_init(1.5, 0.3), batch_size=1000, entry_errors=True)
    empirical = mc.matrix(x)
    analytic = ConvolutionalNNGP([(3, 3, 2, 1)], "relu", 1.5, 0.3, pooling).matrix(x)
    z = (empirical - analytic).abs() / mc.standard_error
    assert float(z.max()) < 4.5, z


def _last_layer_given_features(features, sw, sb, pooling):
    """E[output kernel | post-activation features of the first layer], batched over samples:
    features (S, n, C, H, W) -> (S, n, n). Given them, a 1x1 conv gives Gaussian pre-activations
    with covariance sb^2 + sw^2/C sum_c h_{c,p} h'_{c,p'} (Novak et al. 2019, eq. 16)."""
    h = features.flatten(3) / math.sqrt(features.shape[2])  # (S, n, C, positions)
    var = torch.einsum("sakp,sakp->spa", h, h) * sw**2 + sb**2
    if pooling == "flatten":
        cov = torch.einsum("sakp,sbkp->spab", h, h) * sw**2 + sb**2
        phi = expected_product(cov, var[:, :, :, None], var[:, :, None, :], "relu").mean(dim=1)
    else:
        cov = torch.einsum("sakp,sbkq->spqab", h, h) * sw**2 + sb**2
        phi = expected_product(cov, var[:, :, None, :, None], var[:, None, :, None, :], "relu").mean(dim=(1, 2))
    return phi * sw**2 + sb**2


@pytest.mark.parametrize("pooling", ["flatten", "gap"])
def test_two_conv_layers_finite_width_bias_shrinks(pooling):
    """Conv 3x3 (C channels) -> ReLU -> conv 1x1 -> ReLU -> read-out. A real first conv layer is
    sampled; given its output, the rest of the net's covariance is exact (Gaussian second-layer
    pre-activations). The O(1/C) gap to the NNGP must shrink as C grows."""
    x = _images(3, 1, 4, 4, seed=6)
    sw, sb, samples = 1.3, 0.2, 2000
    full = ConvolutionalNNGP([(1, 3, 1, 1), (1, 1, 1, 0)], "relu", sw, sb, pooling).matrix(x)
    errors = []
    for channels in (1, 4, 16):
        gen = torch.Generator().manual_seed(channels)
        weight = torch.randn(samples * channels, 1, 3, 3, generator=gen, dtype=torch.float64) * (sw / 3)
        bias = torch.randn(samples * channels, generator=gen, dtype=torch.float64) * sb
        hidden = torch.relu(torch.nn.functional.conv2d(x, weight, bias, padding=1))
        hidden = hidden.reshape(3, samples, channels, 4, 4).transpose(0, 1)
        kernel = _last_layer_given_features(hidden, sw, sb, pooling).mean(dim=0)
        errors.append(float((kernel - full).abs().max() / full.diagonal().mean()))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < errors[0] / 5
