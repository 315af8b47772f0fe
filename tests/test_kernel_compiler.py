"""The NNGP compiler: one kernel whatever the model's file kind, and each layer rule against an independent
computation (closed forms, numerical integration, finite random networks)."""

import math
import sys
import textwrap

import numpy as np
import pytest
import torch
from scipy import integrate
from torch import nn

from pacbayes.errors import InputError
from pacbayes.kernels import ConvolutionalNNGP, MonteCarloNNGP, analytic_kernel_or_reason, nngp_for_module
from pacbayes.kernels import compiled as compiled_module
from pacbayes.kernels.activations import expected_product
from pacbayes.kernels.duals import Dual
from pacbayes.kernels.quadrature import quadrature_product, quadrature_square
from pacbayes.models import load_model

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning", "ignore::FutureWarning")

ARCHITECTURES = textwrap.dedent("""
    import torch
    from torch import nn

    class MLP(nn.Module):
        def __init__(self, outputs=1):
            super().__init__()
            self.first, self.second, self.out = nn.Linear(12, 16), nn.Linear(16, 8), nn.Linear(8, outputs)

        def forward(self, x):
            h = torch.relu(self.first(x.flatten(1)))
            return self.out(torch.relu(self.second(h)))

    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 4, 3, padding="same")
            self.conv2 = nn.Conv2d(4, 5, 3, stride=2, padding=1)
            self.head = nn.Linear(5 * 2 * 2, 1)

        def forward(self, x):
            h = torch.relu(self.conv2(torch.relu(self.conv1(x))))
            return self.head(torch.flatten(h, 1))
""")
SHAPES = {"MLP": (1, 3, 4), "CNN": (1, 4, 4)}


@pytest.fixture
def architectures(tmp_path, monkeypatch):
    path = tmp_path / "user_nets.py"
    path.write_text(ARCHITECTURES)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("user_nets", None)
    import user_nets

    yield user_nets, str(path)
    sys.modules.pop("user_nets", None)


def _x(n, shape, seed=0):
    return torch.randn((n, *shape), dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _four_file_kinds(model, name, path, tmp_path, shape):
    """The model saved as TorchScript, torch.export, state_dict (+ 'path.py:Class') and a pickle, loaded back."""
    example = torch.zeros((2, *shape))
    torch.jit.save(torch.jit.trace(model, example), tmp_path / "m.ts")
    torch.export.save(torch.export.export(model, (example,)), tmp_path / "m.pt2")
    torch.save(model.state_dict(), tmp_path / "m.state.pt")
    torch.save(model, tmp_path / "m.pickle.pt")
    return {
        "torchscript": load_model(tmp_path / "m.ts"),
        "export": load_model(tmp_path / "m.pt2"),
        "state_dict": load_model(tmp_path / "m.state.pt", architecture=f"{path}:{name}"),
        "pickle": load_model(tmp_path / "m.pickle.pt", trust_pickle=True),
    }


def _relu_step(k11, k22, k12):
    """E[relu(u) relu(v)] by the arc-cosine formula with numpy's arccos (an independent implementation)."""
    norm = np.sqrt(k11 * k22)
    theta = np.arccos(np.clip(k12 / norm, -1.0, 1.0))
    return norm * (np.sin(theta) + (np.pi - theta) * np.cos(theta)) / (2 * np.pi)


def _mlp_reference(x, sigma_b, residual=False):
    """K of MLP (or of the residual net below) by the Lee et al. 2018 recursion on full numpy matrices."""
    flat = x.reshape(x.shape[0], -1).numpy()
    sw2 = 1.0 / 3.0
    k = sigma_b[0] ** 2 + sw2 * flat @ flat.T / flat.shape[1]

    def layer(k, bias):
        d = np.diag(k)
        return bias**2 + sw2 * _relu_step(d[:, None], d[None, :], k)

    if residual:  # h = z0 + L2(relu(L1(relu(z0)))), out = L3(relu(h))
        branch = layer(layer(k, sigma_b[1]), sigma_b[2])
        return layer(k + branch, sigma_b[3])
    for bias in sigma_b[1:]:
        k = layer(k, bias)
    return k


def test_mlp_in_a_user_class_gives_one_kernel_for_every_file_kind(architectures, tmp_path):
    module, path = architectures
    torch.manual_seed(0)
    model = module.MLP().eval()
    x = _x(6, SHAPES["MLP"])
    reference = _mlp_reference(x, [math.sqrt(1 / (3 * f)) for f in (12, 16, 8)])
    for kind, loaded in _four_file_kinds(model, "MLP", path, tmp_path, SHAPES["MLP"]).items():
        kernel, reason = analytic_kernel_or_reason(loaded, SHAPES["MLP"])
        assert reason == "" and kernel.kind == "nngp-fc", kind
        np.testing.assert_allclose(kernel.matrix(x).numpy(), reference, rtol=1e-12, err_msg=kind)


def test_cnn_in_a_user_class_gives_one_kernel_for_every_file_kind(architectures, tmp_path):
    module, path = architectures
    torch.manual_seed(1)
    model = module.CNN().eval()
    x = _x(5, SHAPES["CNN"])
    sigma_b = [math.sqrt(1 / (3 * f)) for f in (9, 36, 20)]
    expected = ConvolutionalNNGP([(4, 3, 1, 1), (5, 3, 2, 1)], "relu", math.sqrt(1 / 3), sigma_b, "flatten")
    reference = expected.matrix(x)
    for kind, loaded in _four_file_kinds(model, "CNN", path, tmp_path, SHAPES["CNN"]).items():
        kernel = nngp_for_module(loaded, SHAPES["CNN"])
        assert kernel.kind == "nngp-cnn" and kernel.describe()["conv_layers"][1] == [5, [3, 3], [2, 2], [1, 1]], kind
        torch.testing.assert_close(kernel.matrix(x), reference, rtol=1e-12, atol=0, msg=kind)


def test_monte_carlo_of_every_file_kind_redraws_pytorch_default_init(architectures, tmp_path):
    """Without init_fn, TorchScript / export files are re-drawn by layer type exactly as reset_parameters does."""
    module, path = architectures
    model = module.MLP().eval()
    x = _x(5, SHAPES["MLP"])
    # float64 forwards: the file kinds run by different paths (stacked, vmap, TorchScript's executor, whose
    # fusions depend on what ran before), equal to rounding; the draws themselves must be the same
    options = {"samples": 6, "seed": 3, "estimator": "logits", "precision": "float64"}
    expected = MonteCarloNNGP(model, **options).matrix(x)
    for kind, loaded in _four_file_kinds(model, "MLP", path, tmp_path, SHAPES["MLP"]).items():
        got = MonteCarloNNGP(loaded, batch_size=4, **options).matrix(x)
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-14, msg=kind)


def test_several_outputs_are_iid_logits_of_one_kernel(architectures):
    module, _ = architectures
    ten, one = module.MLP(outputs=10), module.MLP(outputs=1)
    x = _x(4, SHAPES["MLP"])
    kernel = nngp_for_module(ten, SHAPES["MLP"])
    record = kernel.describe()
    assert record["outputs"] == 10 and "10 iid logits" in record["summary"]
    assert record["layers"][-1] == "linear(8->10, sw=0.577, sb=0.204)"
    torch.testing.assert_close(kernel.matrix(x), nngp_for_module(one, SHAPES["MLP"]).matrix(x), rtol=0, atol=0)


class Residual(nn.Module):
    def __init__(self, correlated=False):
        super().__init__()
        self.correlated = correlated
        self.inp, self.a, self.b, self.out = nn.Linear(6, 10), nn.Linear(10, 10), nn.Linear(10, 10), nn.Linear(10, 1)

    def forward(self, x):
        h = self.inp(x)
        branch = torch.relu(h) if self.correlated else self.b(torch.relu(self.a(torch.relu(h))))
        return self.out(torch.relu(h + branch))


def test_residual_addition_of_uncorrelated_branches():
    x = _x(5, (6,))
    kernel = nngp_for_module(Residual(), (6,))
    assert kernel.kind == "nngp-graph" and "add(#0 + #4)" in kernel.describe()["layers"]
    reference = _mlp_reference(x, [math.sqrt(1 / (3 * f)) for f in (6, 10, 10, 10)], residual=True)
    np.testing.assert_allclose(kernel.matrix(x).numpy(), reference, rtol=1e-12)
    np.testing.assert_allclose(kernel.diagonal(x).numpy(), np.diag(reference), rtol=1e-12)


class ConvResidual(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp, self.branch = nn.Conv1d(2, 6, 3, padding=1), nn.Conv1d(6, 6, 3, padding="same")
        self.head = nn.Linear(6 * 5, 1)

    def forward(self, x):
        h = self.inp(x)
        return self.head(torch.relu(h + self.branch(torch.relu(h))).flatten(1))


def _conv1d_reference(x, sigma_b):
    """K of ConvResidual by explicit sums over window offsets on the joint (input, position) covariance."""
    n, c, length = x.shape
    sw2 = 1.0 / 3.0
    padded = np.pad(x.numpy(), ((0, 0), (0, 0), (1, 1)))
    k0 = np.zeros((n, length, n, length))
    for p, q, o in np.ndindex(length, length, 3):
        k0[:, p, :, q] += np.einsum("ic,jc->ij", padded[:, :, p + o], padded[:, :, q + o]) / (3 * c)
    k0 = sigma_b[0] ** 2 + sw2 * k0

    def relu(k):
        d = np.einsum("ipip->ip", k)
        return _relu_step(d[:, :, None, None], d[None, None, :, :], k)

    def conv(k, bias):
        padded_k = np.pad(k, ((0, 0), (1, 1), (0, 0), (1, 1)))
        out = sum(padded_k[:, o : o + length, :, o : o + length] for o in range(3)) / 3
        return bias**2 + sw2 * out

    h = k0 + conv(relu(k0), sigma_b[1])
    return sigma_b[2] ** 2 + sw2 * np.einsum("ipjp->ij", relu(h)) / length


def test_residual_convolution_against_explicit_sums():
    x = _x(3, (2, 5), seed=4)
    kernel = nngp_for_module(ConvResidual(), (2, 5))
    assert kernel.kind == "nngp-graph"
    reference = _conv1d_reference(x, [math.sqrt(1 / (3 * f)) for f in (6, 18, 30)])
    np.testing.assert_allclose(kernel.matrix(x).numpy(), reference, rtol=1e-12)


def test_residual_addition_of_correlated_branches_says_why():
    kernel, reason = analytic_kernel_or_reason(Residual(correlated=True), (6,))
    assert kernel is None and "correlated branches" in reason


@pytest.mark.parametrize(
    "layer,op",
    [
        (nn.BatchNorm1d(8), "batch_norm"),
        (nn.MaxPool1d(1), "max_pool"),
        (nn.LayerNorm(8), "layer_norm"),
    ],
)
def test_an_unsupported_operation_is_named(layer, op):
    net = nn.Sequential(nn.Linear(4, 8), layer, nn.ReLU(), nn.Linear(8, 1)).eval()
    if isinstance(layer, nn.MaxPool1d):
        net = nn.Sequential(nn.Unflatten(1, (1, 4)), nn.Conv1d(1, 8, 1), layer, nn.Flatten(), nn.Linear(32, 1)).eval()
    kernel, reason = analytic_kernel_or_reason(net, (4,))
    assert kernel is None and reason.startswith(op) and "has no NNGP rule" in reason


class LearnedScale(nn.Module):
    def __init__(self, where):
        super().__init__()
        self.where, self.scale, self.fc, self.out = (
            where,
            nn.Parameter(torch.tensor(2.0)),
            nn.Linear(4, 8),
            nn.Linear(8, 1),
        )

    def forward(self, x):
        x = x * self.scale if self.where == "input" else x
        h = self.fc(x)
        return self.out(torch.relu(h * self.scale if self.where == "hidden" else h))


@pytest.mark.parametrize("where", ["input", "hidden"])
def test_trained_tensors_outside_weighted_layers_are_refused(where):
    """Using a trained value as a constant would make the prior depend on the training data."""
    kernel, reason = analytic_kernel_or_reason(LearnedScale(where), (4,))
    assert kernel is None and "uses the model's tensor scale" in reason and "data-dependent" in reason


def test_constant_preprocessing_and_scaling_are_exact():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.out = nn.Linear(4, 8), nn.Linear(8, 1)

        def forward(self, x):
            return self.out(torch.relu(self.fc((x - 0.5) / 2.0)) * 3.0)

    x = _x(5, (4,))
    kernel = nngp_for_module(Scaled(), (4,))
    z = ((x - 0.5) / 2.0).numpy()
    k0 = 1 / 12 + z @ z.T / (3 * 4)  # first Linear on the preprocessed input
    d = np.diag(k0)
    expected = 1 / 24 + 9 * _relu_step(d[:, None], d[None, :], k0) / 3  # relu scaled by 3, then the read-out
    np.testing.assert_allclose(kernel.matrix(x).numpy(), expected, rtol=1e-12)


def test_attention_is_named():
    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention, self.out = nn.MultiheadAttention(4, 1, batch_first=True), nn.Linear(12, 1)

        def forward(self, x):
            return self.out(self.attention(x, x, x, need_weights=False)[0].flatten(1))

    kernel, reason = analytic_kernel_or_reason(Attention().eval(), (3, 4))
    assert kernel is None and "has no NNGP rule" in reason


@pytest.mark.parametrize("name", ["relu", "erf"])
def test_quadrature_agrees_with_the_closed_forms(name):
    cov = torch.tensor([0.3, -0.5, 0.9, 0.0], dtype=torch.float64)
    var1 = torch.tensor([1.0, 0.7, 1.0, 0.6], dtype=torch.float64)
    var2 = torch.tensor([0.5, 0.9, 0.82, 0.3], dtype=torch.float64)
    phi = Dual(name).phi
    closed = expected_product(cov.clone(), var1, var2, name)
    quadrature = quadrature_product(phi, cov, var1, var2, nodes=64)
    tolerance = 1e-3 if name == "relu" else 1e-12  # a kink converges like 1/n, erf geometrically
    torch.testing.assert_close(quadrature, closed, rtol=0, atol=tolerance)
    torch.testing.assert_close(quadrature_square(phi, var1, 64), Dual(name).square(var1), rtol=0, atol=tolerance)


def _gaussian_integral(phi, k11, k22, k12):
    """E[phi(u) phi(v)] by scipy's adaptive 2-d integration over the Cholesky factor."""
    a = math.sqrt(k11)
    c = k12 / a
    d = math.sqrt(max(k22 - c * c, 0.0))

    def integrand(z2, z1):
        density = math.exp(-(z1 * z1 + z2 * z2) / 2) / (2 * math.pi)
        return phi(a * z1) * phi(c * z1 + d * z2) * density

    return integrate.dblquad(integrand, -9, 9, -9, 9, epsabs=1e-11, epsrel=1e-11)[0]


@pytest.mark.parametrize(
    "name,scalar",
    [
        ("tanh", math.tanh),
        ("sigmoid", lambda t: 1 / (1 + math.exp(-t))),
        ("silu", lambda t: t / (1 + math.exp(-t))),
        ("gelu", lambda t: t * 0.5 * (1 + math.erf(t / math.sqrt(2)))),
        ("leaky_relu", lambda t: t if t > 0 else 0.2 * t),
    ],
)
def test_each_activation_against_numerical_integration(name, scalar):
    k11, k22, k12 = 1.3, 0.6, 0.5
    dual = Dual(name, 0.2 if name == "leaky_relu" else None, nodes=128)  # 32 nodes (the default): ~1e-6
    got = dual.product(*(torch.tensor([v], dtype=torch.float64) for v in (k12, k11, k22)))
    assert float(got) == pytest.approx(_gaussian_integral(scalar, k11, k22, k12), abs=1e-8)
    square = dual.square(torch.tensor([k11], dtype=torch.float64))
    assert float(square) == pytest.approx(_gaussian_integral(scalar, k11, k11, k11), abs=1e-8)


def _gaussian(sigma_w, sigma_b):
    def init(module):
        for layer in module.modules():
            if isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                nn.init.normal_(layer.weight, std=sigma_w / math.sqrt(layer.weight[0].numel()))
                nn.init.normal_(layer.bias, std=sigma_b)

    return init


class OneHidden(nn.Module):
    """One hidden layer: the finite net's covariance equals the NNGP exactly (Gaussian weights)."""

    def __init__(self, hidden: nn.Module, head_in: int):
        super().__init__()
        self.hidden, self.head = hidden, nn.Linear(head_in, 1)

    def forward(self, x):
        return self.head(self.hidden(x).flatten(1))


@pytest.mark.parametrize(
    "hidden,shape,head_in",
    [
        (nn.Sequential(nn.Linear(5, 3), nn.GELU()), (5,), 3),
        (nn.Sequential(nn.Conv1d(2, 3, 4, padding="same", dilation=2), nn.Tanh()), (2, 7), 21),
        (nn.Sequential(nn.Conv2d(1, 3, 2, padding="same"), nn.SiLU(), nn.AvgPool2d(2)), (1, 4, 4), 12),
        (nn.Sequential(nn.Conv2d(1, 3, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1)), (1, 5, 5), 3),
        (nn.Sequential(nn.Linear(5, 3), nn.Dropout(0.3), nn.LeakyReLU(0.1), nn.Identity()), (5,), 3),
    ],
)
def test_monte_carlo_of_a_finite_net_matches_the_compiled_kernel(hidden, shape, head_in):
    net = OneHidden(hidden, head_in).eval()
    x = _x(4, shape, seed=2)
    kernel = nngp_for_module(net, shape, sigma_w=1.4, sigma_b=0.3)
    assert kernel is not None
    mc = MonteCarloNNGP(net, samples=3000, seed=1, init_fn=_gaussian(1.4, 0.3), batch_size=1000, entry_errors=True)
    z = (mc.matrix(x) - kernel.matrix(x)).abs() / mc.standard_error
    assert float(z.max()) < 4.5


def test_estimate_and_memory_refusal(monkeypatch):
    kernel = ConvolutionalNNGP([(4, 3, 1, 1)], "relu", 1.0, 0.1, "flatten", (1, 6, 6))
    seconds, peak = kernel.estimate(500)
    assert seconds > 0 and peak >= 8 * 500 * 500
    assert kernel.estimate(500, 300)[1] < peak
    monkeypatch.setattr(compiled_module, "check_fits", compiled_module.check_fits)
    monkeypatch.setattr("pacbayes.memory.free_bytes", lambda device: 1000)
    with pytest.raises(InputError, match=r"needs about .* but only 1000 B is free on cpu; use fewer inputs"):
        kernel.matrix(_x(20, (1, 6, 6)))


def test_monte_carlo_estimate_from_a_probe(architectures):
    module, _ = architectures
    mc = MonteCarloNNGP(module.MLP(outputs=3), samples=40, seed=0, batch_size=8)
    seconds, peak = mc.estimate(1000, input_shape=SHAPES["MLP"])
    features = 1000 * 8 * 8  # 8 initialisations x 8 read-out features per input: float32, and K's float64 copy
    assert seconds > 0 and peak == 8 * 1000 * 1000 + 4 * features + 8 * features


def test_sigmas_may_be_given_per_weighted_layer(architectures):
    module, _ = architectures
    kernel = nngp_for_module(module.MLP(), SHAPES["MLP"], sigma_w=[1.0, 1.5, 2.0], sigma_b=[0.1, 0.0, 0.2])
    assert kernel.kind == "nngp-graph" and kernel.describe()["layers"][3] == "linear(16->8, sw=1.5, sb=0)"
    with pytest.raises(InputError, match="sigmas were given"):
        nngp_for_module(module.MLP(), SHAPES["MLP"], sigma_w=[1.0, 1.5])
