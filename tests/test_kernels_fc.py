"""Fully connected NNGP: against exact references (high-precision recursion, 1-D quadrature of the
dual activations, closed form of linear nets) and against finite random networks."""

import math

import mpmath
import numpy as np
import pytest
import torch
from random_nets import gaussian_init
from scipy import integrate, special
from torch import nn

from pacbayes.errors import InputError
from pacbayes.kernels import FullyConnectedNNGP, MonteCarloNNGP
from pacbayes.kernels.activations import expected_product, expected_square

mpmath.mp.dps = 40


def _inputs(n=6, d=5, seed=0):
    x = torch.randn(n, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    x[1] = x[0] * (1 + 1e-9) + 1e-10  # nearly parallel pair: arccos of a cosine loses digits here
    x[2] = -x[3]  # antiparallel pair
    return x


def _direct_kernel(x, depth, activation, sigma_w, sigma_b):
    """The recursion of docs/kernels.md evaluated entry by entry in 40-digit arithmetic (arccos form)."""
    n, d = x.shape
    rows = [[mpmath.mpf(float(v)) for v in row] for row in x.tolist()]
    sigma_b = [sigma_b] * (depth + 1) if np.isscalar(sigma_b) else sigma_b
    sw2 = mpmath.mpf(sigma_w) ** 2
    out = np.empty((n, n))
    for i in range(n):
        for j in range(n):

            def k0(a, b):
                return mpmath.mpf(sigma_b[0]) ** 2 + sw2 * mpmath.fsum(p * q for p, q in zip(a, b, strict=False)) / d

            k11, k22, k12 = k0(rows[i], rows[i]), k0(rows[j], rows[j]), k0(rows[i], rows[j])
            for layer in range(1, depth + 1):
                b2 = mpmath.mpf(sigma_b[layer]) ** 2
                if activation == "relu":
                    norm = mpmath.sqrt(k11 * k22)
                    theta = mpmath.acos(max(-1, min(1, k12 / norm)))
                    shape = mpmath.sin(theta) + (mpmath.pi - theta) * mpmath.cos(theta)
                    k12 = b2 + sw2 * norm * shape / (2 * mpmath.pi)
                    k11, k22 = b2 + sw2 * k11 / 2, b2 + sw2 * k22 / 2
                elif activation == "erf":

                    def f(a, b, c, b2=b2):
                        return b2 + sw2 * 2 / mpmath.pi * mpmath.asin(2 * c / mpmath.sqrt((1 + 2 * a) * (1 + 2 * b)))

                    k12, k11, k22 = f(k11, k22, k12), f(k11, k11, k11), f(k22, k22, k22)
                else:
                    k12, k11, k22 = b2 + sw2 * k12, b2 + sw2 * k11, b2 + sw2 * k22
            out[i, j] = float(k12)
    return out


@pytest.mark.parametrize("activation", ["relu", "erf", "linear"])
@pytest.mark.parametrize("depth", [1, 3])
def test_matches_high_precision_recursion(activation, depth):
    x = _inputs()
    sigma_b = [0.3, 0.0, 0.7, 0.2][: depth + 1]
    kernel = FullyConnectedNNGP(depth, activation, sigma_w=1.7, sigma_b=sigma_b)
    expected = _direct_kernel(x, depth, activation, 1.7, sigma_b)
    np.testing.assert_allclose(kernel.matrix(x, block_size=4).numpy(), expected, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(kernel.diagonal(x).numpy(), np.diag(expected), rtol=1e-12)


def _relu_mean(m, s):
    return m * special.ndtr(m / s) + s * np.exp(-0.5 * (m / s) ** 2) / math.sqrt(2 * math.pi)


@pytest.mark.parametrize("activation", ["relu", "erf"])
@pytest.mark.parametrize(
    "k11,k22,k12", [(1.0, 1.0, 0.3), (2.5, 0.4, -0.9), (0.7, 1.3, 0.95), (1.0, 1.0, 1.0), (1.0, 4.0, -2.0)]
)
def test_dual_activation_equals_gaussian_integral(activation, k11, k22, k12):
    """E[phi(u) phi(v)] = int phi(u) E[phi(v) | u] N(u; 0, k11) du, the inner mean in closed form."""
    s1 = math.sqrt(k11)
    slope, resid = k12 / k11, math.sqrt(max(k22 - k12**2 / k11, 0.0))

    def integrand(u):
        m = slope * u
        if activation == "relu":
            inner = max(m, 0.0) if resid == 0 else _relu_mean(m, resid)
            return max(u, 0.0) * inner * math.exp(-0.5 * (u / s1) ** 2) / (s1 * math.sqrt(2 * math.pi))
        inner = special.erf(m / math.sqrt(1 + 2 * resid**2))
        return special.erf(u) * inner * math.exp(-0.5 * (u / s1) ** 2) / (s1 * math.sqrt(2 * math.pi))

    reference = integrate.quad(integrand, -40 * s1, 40 * s1, epsabs=1e-13, epsrel=1e-12, limit=400, points=[0.0])[0]
    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    value = float(expected_product(t(k12), t(k11), t(k22), activation))
    assert value == pytest.approx(reference, rel=1e-8, abs=1e-12)
    square = float(expected_square(t(k11), activation))
    assert square == pytest.approx(float(expected_product(t(k11), t(k11), t(k11), activation)), rel=1e-12)


def test_linear_net_closed_form():
    """Identity activation: K = sigma_w^(2L) K0 + sum_l sigma_w^(2(L-l)) sigma_b(l)^2."""
    x = _inputs(seed=3)
    sigma_b = [0.5, 0.1, 0.9]
    got = FullyConnectedNNGP(2, "linear", 1.3, sigma_b).matrix(x)
    k0 = 1.3**2 * (x @ x.T) / x.shape[1] + 0.5**2
    expected = 1.3**4 * k0 + 1.3**2 * 0.1**2 + 0.9**2
    torch.testing.assert_close(got, expected, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("activation", ["relu", "erf", "linear"])
def test_symmetric_psd_and_permutation_equivariant(activation):
    x = torch.randn(40, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    kernel = FullyConnectedNNGP(2, activation, 1.2, 0.1)
    k = kernel.matrix(x, block_size=16)
    assert torch.equal(k, k.T)
    eigenvalues = torch.linalg.eigvalsh(k)
    assert eigenvalues[0] > -1e-12 * eigenvalues[-1]
    perm = torch.randperm(40, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(kernel.matrix(x[perm], block_size=7), k[perm][:, perm], rtol=1e-13, atol=1e-14)
    torch.testing.assert_close(kernel.matrix(x, x[:9], block_size=5), k[:, :9], rtol=1e-13, atol=1e-14)
    torch.testing.assert_close(k.diagonal(), kernel.diagonal(x), rtol=0, atol=0)


def test_higher_rank_and_numpy_inputs_are_flattened():
    x = np.random.default_rng(0).normal(size=(5, 1, 3, 4))
    kernel = FullyConnectedNNGP(1)
    torch.testing.assert_close(kernel.matrix(x), kernel.matrix(torch.from_numpy(x.reshape(5, 12))))
    assert kernel.matrix(x.astype(np.float32)).dtype == torch.float64


def test_describe_is_json_ready():
    import json

    record = FullyConnectedNNGP(2, "erf", 1.5, [0.1, 0.2, 0.3]).describe()
    assert json.loads(json.dumps(record)) == {
        "kind": "nngp-fc",
        "depth": 2,
        "activation": "erf",
        "sigma_w": 1.5,
        "sigma_b": [0.1, 0.2, 0.3],
        "layers": ["linear(sw=1.5, sb=0.1)", "erf", "linear(sw=1.5, sb=0.2)", "erf", "linear(sw=1.5, sb=0.3)"],
        "outputs": 1,
        "summary": "analytic NNGP (linear > erf > linear > erf > linear; 1 logit)",
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(depth=0),
        dict(depth=-1),
        dict(depth=1.5),
        dict(depth=True),
        dict(depth=1, sigma_w=0.0),
        dict(depth=1, sigma_w=-1.0),
        dict(depth=1, sigma_w=float("nan")),
        dict(depth=1, sigma_b=-0.1),
        dict(depth=1, sigma_b=[0.1, 0.1, 0.1]),
        dict(depth=2, sigma_b=[0.1, -1, 0]),
        dict(depth=1, sigma_b="0.1"),
        dict(depth=1, activation="tanh"),
    ],
)
def test_bad_parameters_raise(kwargs):
    with pytest.raises(InputError):
        FullyConnectedNNGP(**kwargs)


@pytest.mark.parametrize(
    "x1,x2",
    [
        (np.array([[1.0, np.nan]]), None),
        (np.array([[1.0, np.inf]]), None),
        (np.ones(3), None),
        (np.ones((0, 3)), None),
        (np.ones((2, 3)), np.ones((2, 4))),
        (np.array([["a", "b"]]), None),
    ],
)
def test_bad_inputs_raise(x1, x2):
    with pytest.raises(InputError):
        FullyConnectedNNGP(1).matrix(x1, x2)


class Erf(nn.Module):
    def forward(self, x):
        return torch.erf(x)


@pytest.mark.parametrize("activation,layer", [("relu", nn.ReLU()), ("erf", Erf())])
def test_one_hidden_layer_finite_net_is_exact(activation, layer):
    """With one hidden layer the finite-width covariance equals the NNGP: agree within 4.5 SE."""
    x = _inputs(n=5, d=3, seed=4)
    net = nn.Sequential(nn.Linear(3, 3), layer, nn.Linear(3, 1))
    mc = MonteCarloNNGP(net, samples=4000, seed=11, init_fn=gaussian_init(1.6, 0.4), batch_size=1000, entry_errors=True)
    empirical = mc.matrix(x)
    analytic = FullyConnectedNNGP(1, activation, 1.6, 0.4).matrix(x)
    z = (empirical - analytic).abs() / mc.standard_error
    assert float(z.max()) < 4.5, z


@pytest.mark.parametrize("activation,phi", [("relu", torch.relu), ("erf", torch.erf)])
def test_depth_two_finite_width_bias_shrinks(activation, phi):
    """Depth 2: a real finite first hidden layer of width w (sampled), with the expectation over the
    rest taken exactly (given layer 1, layer-2 pre-activations are Gaussian with covariance
    sb^2 + sw^2 h.h'/w). The O(1/w) gap to the NNGP must shrink as w grows."""
    x = _inputs(n=5, d=4, seed=5)
    sw, sb, samples = 1.4, 0.2, 8000
    analytic = FullyConnectedNNGP(2, activation, sw, sb).matrix(x)
    errors = []
    for width in (4, 16, 64):
        gen = torch.Generator().manual_seed(width)
        w = torch.randn(samples, 4, width, generator=gen, dtype=torch.float64) * (sw / 2)
        b = torch.randn(samples, 1, width, generator=gen, dtype=torch.float64) * sb
        h = phi(x @ w + b)
        cov = (h @ h.transpose(1, 2)).mul_(sw**2 / width).add_(sb**2)
        var = cov.diagonal(dim1=1, dim2=2)
        out = expected_product(cov, var[:, :, None], var[:, None, :], activation).mul_(sw**2).add_(sb**2)
        errors.append(float((out.mean(0) - analytic).abs().max() / analytic.diagonal().mean()))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < errors[0] / 5


def test_device_argument():
    x = _inputs()
    kernel = FullyConnectedNNGP(2)
    k = kernel.matrix(x, device="cpu")
    assert k.device.type == "cpu" and k.dtype == torch.float64
    torch.testing.assert_close(kernel.matrix(x, device=torch.device("cpu")), k, rtol=0, atol=0)
    with pytest.raises(InputError):
        kernel.matrix(x, device="no-such-device")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="cuda"):
            kernel.diagonal(x, device="cuda")
