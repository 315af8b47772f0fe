"""Monte Carlo NNGP with the linear read-out integrated out: exactness, expectation, rank, fallback, sample count."""

import pytest
import torch
from test_kernels_monte_carlo import seeded_resets
from torch import nn

from pacbayes.errors import InputError
from pacbayes.kernels import MonteCarloNNGP, nngp_for_module
from pacbayes.kernels.monte_carlo import MAX_AUTO_SAMPLES, RANK_MARGIN
from pacbayes.kernels.readout import find_readout


def _net(d=4, width=6, outputs=1, bias=True):
    return nn.Sequential(nn.Linear(d, width), nn.ReLU(), nn.Linear(width, outputs, bias=bias))


def _x(n=7, d=4, seed=0):
    return torch.randn(n, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


class _Squashed(nn.Module):
    """A read-out followed by a non-linearity: not a linear read-out."""

    def __init__(self):
        super().__init__()
        self.body, self.out = nn.Linear(4, 6), nn.Linear(6, 1)

    def forward(self, x):
        return torch.tanh(self.out(torch.relu(self.body(x))))


def _explicit_readout_kernel(net, x, seed, samples, bias=True):
    """(1/S) sum_s [phi_s phi_s^T / (3 H) + 1 / (3 H)] with phi_s the hidden layer after the s-th seeded reset."""
    net, width, total = net.double(), net[-1].in_features, 0.0
    for _ in seeded_resets(net, seed, samples):
        with torch.no_grad():
            phi = net[:-1](x)
        total = total + (phi @ phi.T + (1.0 if bias else 0.0)) / (3 * width)
    return total / samples


@pytest.mark.parametrize("bias", [True, False])
def test_equals_explicit_average_of_integrated_read_outs(bias):
    x = _x(5)
    mc = MonteCarloNNGP(_net(bias=bias), samples=6, seed=2, batch_size=4, precision="float64")
    kernel = mc.matrix(x)
    assert mc.diagnostics["estimator"] == "readout" and mc.diagnostics["features_per_initialisation"] == 6
    expected = _explicit_readout_kernel(_net(bias=bias), x, seed=2, samples=6, bias=bias)
    torch.testing.assert_close(kernel, expected, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(mc.diagonal(x), expected.diagonal(), rtol=1e-12, atol=1e-14)


def test_converges_to_the_analytic_kernel_faster_than_the_logit_estimator():
    """One hidden ReLU layer: the expected kernel is the NNGP (up to the first layer's uniform weights,
    nearly Gaussian sums for d = 48); at the same 200 initialisations the read-out estimator is closer."""
    d, net = 48, _net(d=48, width=64)
    x = _x(10, d, seed=1)
    analytic = nngp_for_module(net, (d,)).matrix(x)
    scale = float(analytic.diagonal().mean())
    errors = {}
    for estimator in ("readout", "logits"):
        kernel = MonteCarloNNGP(net, samples=200, seed=0, estimator=estimator).matrix(x)
        errors[estimator] = float((kernel - analytic).abs().max()) / scale
    assert errors["readout"] < 0.06 and errors["readout"] < errors["logits"] / 3, errors


def test_same_expectation_as_the_logit_estimator():
    """Both estimators agree with a large-sample reference within 4.5 standard errors on a tiny m."""
    net, x = _net(d=3, width=4, outputs=2), _x(4, 3, seed=3)
    reference = MonteCarloNNGP(net, samples=6000, seed=1, batch_size=1000, entry_errors=True)
    k_ref = reference.matrix(x)
    for estimator, samples, seed in (("logits", 3000, 2), ("readout", 800, 3)):
        mc = MonteCarloNNGP(net, samples=samples, seed=seed, batch_size=1000, entry_errors=True, estimator=estimator)
        z = (mc.matrix(x) - k_ref).abs() / (mc.standard_error.square() + reference.standard_error.square()).sqrt()
        assert float(z.max()) < 4.5, (estimator, z)
    assert reference.diagnostics["standard_error_max"] < mc.diagnostics["standard_error_max"]


def test_rank_grows_with_the_hidden_width():
    x = _x(30)
    readout = MonteCarloNNGP(_net(width=8), samples=3, seed=0)
    readout.matrix(x)
    assert readout.diagnostics["rank"] >= min(30, 3 * 8)
    logits = MonteCarloNNGP(_net(width=8), samples=3, seed=0, estimator="logits")
    logits.matrix(x)
    assert logits.diagnostics["rank"] == 3 and logits.diagnostics["estimator"] == "logits"


def test_entry_standard_errors_are_reported_relative_to_the_mean_diagonal():
    x = _x(9)
    mc = MonteCarloNNGP(_net(), samples=50, seed=4, entry_errors=True)
    kernel = mc.matrix(x)
    d = mc.diagnostics
    assert d["standard_error_inputs"] == [9, 9]  # every entry of a small kernel
    assert d["mean_diagonal"] == pytest.approx(float(kernel.diagonal().mean()), rel=1e-10)
    assert d["standard_error_max_relative"] == pytest.approx(float(mc.standard_error.max()) / d["mean_diagonal"])
    assert d["standard_error_mean_relative"] == pytest.approx(float(mc.standard_error.mean()) / d["mean_diagonal"])
    assert d["standard_error_bound"] >= d["standard_error_max"]


def test_non_linear_read_outs_use_the_logit_estimator():
    x = _x(5)
    mc = MonteCarloNNGP(_Squashed(), samples=4, seed=0)
    mc.matrix(x)
    assert mc.diagnostics["estimator"] == "logits" and "not the output" in mc.diagnostics["estimator_reason"]
    assert mc.describe()["estimator"] == "logits"
    with pytest.raises(InputError, match="no linear read-out"):
        MonteCarloNNGP(_Squashed(), samples=4, estimator="readout").matrix(x)

    def init(module):
        for p in module.parameters():
            nn.init.normal_(p, std=0.5)

    custom = MonteCarloNNGP(_net(), samples=4, init_fn=init)
    custom.matrix(x)
    assert custom.diagnostics["estimator"] == "logits" and "init_fn" in custom.diagnostics["estimator_reason"]
    shared = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    tied = nn.Sequential(shared[0], nn.ReLU(), shared[0])
    assert find_readout(tied.double(), x, True)[0] is None


def test_sample_count_is_chosen_from_a_pilot_and_the_rank():
    x = _x(40)
    auto = MonteCarloNNGP(_net(width=6))
    kernel = auto.matrix(x)
    rule = auto.diagnostics["sample_rule"]
    assert rule["rule"] == "auto" and rule["for_rank"] == -(-RANK_MARGIN * 40 // 6)
    assert auto.samples == min(MAX_AUTO_SAMPLES, max(rule["for_error"], rule["for_rank"]))
    assert auto.diagnostics["rank"] == 40
    assert auto.diagnostics["standard_error_max_relative"] < 2 * rule["target_error"]
    # the chosen count gives the same matrix as asking for that count
    given = MonteCarloNNGP(_net(width=6), samples=auto.samples)
    torch.testing.assert_close(given.matrix(x), kernel, rtol=1e-12, atol=1e-14)
    assert given.diagnostics["sample_rule"] == {"rule": "given"}
    loose = MonteCarloNNGP(_net(width=6), target_error=0.1)
    loose.matrix(x[:3])
    assert loose.samples < auto.samples


@pytest.mark.parametrize("kwargs", [dict(target_error=0.0), dict(target_error=1.5), dict(estimator="features")])
def test_bad_options_raise(kwargs):
    with pytest.raises(InputError):
        MonteCarloNNGP(_net(), **kwargs)


def test_a_pilot_of_vanishing_outputs_is_refused_not_divided_by():
    """Random networks whose outputs are all zero give no kernel: one InputError, not a ZeroDivisionError."""

    def zero_init(module):
        for parameter in module.parameters():
            torch.nn.init.zeros_(parameter)

    with pytest.raises(InputError, match="mean square"):
        MonteCarloNNGP(_net(width=6), init_fn=zero_init).matrix(_x(5))
