"""Monte Carlo NNGP: reproducibility, batching invariance, rank and standard-error reports, errors."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from pacbayes.errors import InputError
from pacbayes.kernels import MonteCarloNNGP, nngp_for_module
from pacbayes.kernels.spectrum import min_eigenvalue


def _net(d=4, width=6, outputs=1):
    return nn.Sequential(nn.Linear(d, width), nn.ReLU(), nn.Linear(width, outputs))


def _x(n=7, d=4, seed=0):
    return torch.randn(n, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("precision,rtol", [("float64", 1e-12), ("float32", 1e-5)])
def test_reproducible_and_independent_of_batching(precision, rtol):
    """The draws do not depend on batching; float32 forwards change only the last bits."""
    x = _x()
    a = MonteCarloNNGP(_net(), samples=50, seed=3, batch_size=7, precision=precision).matrix(x, block_size=3)
    b = MonteCarloNNGP(_net(), samples=50, seed=3, batch_size=50, precision=precision).matrix(x)
    torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * 1e-2)
    c = MonteCarloNNGP(_net(), samples=50, seed=4, precision=precision).matrix(x)
    assert not torch.allclose(a, c)


def seeded_resets(net, seed, samples):
    """Yield after each of ``samples`` seeded reset_parameters() of ``net``'s layers, as the kernel draws them."""
    for value in np.random.SeedSequence(seed).generate_state(samples):
        torch.default_generator.manual_seed(int(value))
        for layer in net:
            if hasattr(layer, "reset_parameters"):
                layer.reset_parameters()
        yield


def _explicit_draws(x, seed, samples, outputs=1):
    """(S, n, C) logits of a float64 _net() after each of its seeded reset_parameters() calls, one by one."""
    net, drawn = _net(outputs=outputs).double(), []
    for _ in seeded_resets(net, seed, samples):
        with torch.no_grad():
            drawn.append(net(x))
    return torch.stack(drawn)


def test_equals_explicit_average_over_reset_parameters():
    """K = (1/S) sum_s f_s f_s^T with f_s the net after its s-th seeded reset_parameters()."""
    x, net = _x(5), _net()
    mc = MonteCarloNNGP(net, samples=6, seed=2, batch_size=4, estimator="logits", precision="float64")
    kernel = mc.matrix(x)
    f = _explicit_draws(x, seed=2, samples=6)[:, :, 0].T  # (n, S)
    torch.testing.assert_close(kernel, f @ f.T / 6, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(mc.diagonal(x), (f * f).mean(dim=1), rtol=1e-12, atol=1e-14)


def test_several_logits_are_samples_of_one_kernel():
    """C = 3 logits: K = (1/(S C)) sum_{s,c} f_sc f_sc^T, the cross-logit covariance is reported and small."""
    x = _x(6)
    mc = MonteCarloNNGP(_net(outputs=3), samples=8, seed=4, batch_size=3, estimator="logits", precision="float64")
    kernel = mc.matrix(x)
    f = _explicit_draws(x, seed=4, samples=8, outputs=3).permute(1, 0, 2).reshape(6, 24)  # (n, S C)
    torch.testing.assert_close(kernel, f @ f.T / 24, rtol=1e-12, atol=1e-14)
    assert mc.diagnostics["logits"] == 3 and mc.diagnostics["samples"] == 8 and mc.describe()["outputs"] == 3
    per_logit = f.reshape(6, 8, 3)
    cross = torch.einsum("nsc,nsd->cd", per_logit, per_logit)
    off = (cross - torch.diag(cross.diagonal())).abs().max() / cross.diagonal().mean()
    assert mc.diagnostics["cross_logit_covariance_max"] == pytest.approx(float(off), rel=1e-12)
    wide = MonteCarloNNGP(_net(width=64, outputs=4), samples=400, seed=0, estimator="logits")
    wide.matrix(_x(10))
    assert wide.diagnostics["cross_logit_covariance_max"] < 0.2


def test_cross_kernel_matches_symmetric_blocks_and_leaves_global_rng_alone():
    x, net = _x(8), _net()
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    mc = MonteCarloNNGP(net, samples=40, seed=1, precision="float64")
    full = mc.matrix(x)
    assert torch.equal(torch.rand(1), before)
    torch.testing.assert_close(mc.matrix(x[:3], x[3:]), full[:3, 3:], rtol=1e-12, atol=1e-14)
    assert "rank" not in mc.diagnostics  # rank is reported for the symmetric kernel only


def test_rank_is_reported_and_limited_by_samples():
    x = _x(12)
    mc = MonteCarloNNGP(_net(width=32), samples=5, seed=0, estimator="logits")
    mc.matrix(x)
    assert mc.diagnostics["rank"] == 5 and mc.diagnostics["full_rank"] is False
    mc = MonteCarloNNGP(_net(width=32), samples=200, seed=0)
    k = mc.matrix(x)
    assert mc.diagnostics["rank"] == 12 and mc.diagnostics["full_rank"] is True
    assert mc.diagnostics["min_eigenvalue"] == pytest.approx(float(torch.linalg.eigvalsh(k)[0]), rel=1e-10)


def test_standard_errors_and_their_bound():
    x = _x(6)
    mc = MonteCarloNNGP(
        _net(), samples=300, seed=5, batch_size=64, entry_errors=True, estimator="logits", precision="float64"
    )
    mc.matrix(x)
    se, d = mc.standard_error, mc.diagnostics
    assert se.shape == (6, 6) and d["standard_error_max"] == pytest.approx(float(se.max()))
    assert d["standard_error_bound"] >= d["standard_error_max"]  # Cauchy-Schwarz bound
    # the reported standard error is the sample sd of the products / sqrt(S): recompute it
    f = _explicit_draws(x, seed=5, samples=300)[:, :, 0]  # (S, n)
    products = f[:, :, None] * f[:, None, :]
    torch.testing.assert_close(se, products.std(dim=0) / math.sqrt(300), rtol=1e-8, atol=1e-12)


def test_linear_net_with_default_init_matches_per_layer_bias_nngp():
    """PyTorch's default init: weight var 1/(3 fan_in), bias var 1/(3 fan_in) per layer. A linear
    net's covariance depends on second moments only, so it is exact at finite width even with
    uniform weights: the Monte Carlo kernel agrees with the analytic one within 4.5 SE."""
    net = nn.Sequential(nn.Linear(3, 5), nn.Linear(5, 2), nn.Linear(2, 1))
    kernel = nngp_for_module(net, (3,))
    assert kernel.describe()["sigma_b"] == pytest.approx([1 / 3, math.sqrt(1 / 15), math.sqrt(1 / 6)])
    x = _x(5, 3, seed=7)
    mc = MonteCarloNNGP(net, samples=4000, seed=9, batch_size=1000, entry_errors=True)
    z = (mc.matrix(x) - kernel.matrix(x)).abs() / mc.standard_error
    assert float(z.max()) < 4.5, z
    # one common sigma_b for every layer would be wrong here, detectably so
    wrong = nngp_for_module(net, (3,), sigma_b=float(math.sqrt(1 / 15))).matrix(x)
    assert float(((mc.matrix(x) - wrong).abs() / mc.standard_error).max()) > 10


class _Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(4))

    def forward(self, x):
        return x @ self.w


def test_init_fn_for_modules_without_reset_parameters():
    """A parameter with no layer role (here used by a matmul) cannot be re-drawn by layer type."""
    with pytest.raises(InputError, match=r"parameter\(s\) w \(used by aten.matmul.*init_fn"):
        MonteCarloNNGP(_Custom(), samples=10).matrix(_x(3))

    def init(module):
        nn.init.normal_(module.w, std=0.5)

    x = _x(5)
    mc = MonteCarloNNGP(_Custom(), samples=3000, seed=0, init_fn=init, entry_errors=True)
    z = (mc.matrix(x) - 0.25 * x @ x.T).abs() / mc.standard_error
    assert float(z.max()) < 4.5


def test_torchscript_modules():
    x = _x(5)
    scripted = torch.jit.script(_net())
    a = MonteCarloNNGP(scripted, samples=20, seed=1).matrix(x)  # rebuilt as a plain Sequential
    torch.testing.assert_close(a, MonteCarloNNGP(_net(), samples=20, seed=1).matrix(x))

    class Tanh(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner, self.out = nn.Linear(4, 3), nn.Linear(3, 1)

        def forward(self, x):
            return self.out(torch.tanh(self.inner(x)))

    def init(module):
        for p in module.parameters():
            nn.init.normal_(p, std=0.7)

    options = dict(samples=15, seed=2, init_fn=init, batch_size=4, precision="float64")
    eager = MonteCarloNNGP(Tanh(), **options).matrix(x)
    jitted = MonteCarloNNGP(torch.jit.script(Tanh()), **options).matrix(x)
    torch.testing.assert_close(eager, jitted, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(samples=1),
        dict(samples=10, batch_size=0),
        dict(samples=10, seed=-1),
        dict(samples=10, init_fn=3),
        dict(samples=2.5),
        dict(samples=10, precision="float16"),
    ],
)
def test_bad_parameters_raise(kwargs):
    with pytest.raises(InputError):
        MonteCarloNNGP(_net(), **kwargs)


def test_bad_models_and_inputs_raise():
    with pytest.raises(InputError):
        MonteCarloNNGP("not a module", samples=10)
    with pytest.raises(InputError, match="logits per input"):
        MonteCarloNNGP(nn.Sequential(nn.Linear(4, 6), nn.Unflatten(1, (2, 3))), samples=4).matrix(_x())
    with pytest.raises(InputError, match="failed"):
        MonteCarloNNGP(_net(), samples=4).matrix(_x(d=5))
    with pytest.raises(InputError, match="NaN"):
        MonteCarloNNGP(_net(), samples=4).matrix(torch.full((2, 4), float("nan")))


def test_min_eigenvalue_dense_and_lanczos_agree():
    x = _x(60, 3)
    k = x @ x.T + 0.05 * torch.eye(60, dtype=torch.float64)
    exact, method = min_eigenvalue(k)
    assert method == "eigvalsh" and exact == pytest.approx(0.05, rel=1e-9)
    estimate, method = min_eigenvalue(k, dense_limit=10)
    assert method == "lanczos" and estimate == pytest.approx(exact, rel=1e-6)
