"""Monte Carlo NNGP with each initialisation's read-out features randomly projected (``projection=r``):
the exact formula, unbiasedness, one G_s per draw for every input, and when it is not applied."""

import math

import numpy as np
import pytest
import torch
from test_kernels_monte_carlo import seeded_resets
from test_monte_carlo_fast import _cnn, _images
from torch import nn

from pacbayes.errors import InputError
from pacbayes.kernels import MonteCarloNNGP
from pacbayes.kernels.monte_carlo import PROJECTION_STREAM


def _net(d=4, width=12):
    return nn.Sequential(nn.Linear(d, width), nn.ReLU(), nn.Linear(width, 1))


def _x(n=7, d=4, seed=0):
    return torch.randn(n, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _explicit_projected_kernel(net, x, seed, samples, r):
    """(1/S) sum_s [(phi_s G_s)(phi_s G_s)^T / (3 H) + 1 / (3 H)], G_s with N(0, 1/r) entries from the generator
    that the draw's seed and PROJECTION_STREAM seed (as documented), phi_s the hidden layer of the s-th reset."""
    net, width, total = net.double(), net[-1].in_features, 0.0
    draws = np.random.SeedSequence(seed).generate_state(samples)
    for value, _ in zip(draws, seeded_resets(net, seed, samples), strict=True):
        state = int(np.random.SeedSequence([int(value), PROJECTION_STREAM]).generate_state(1)[0])
        g = torch.randn((width, r), generator=torch.Generator().manual_seed(state), dtype=torch.float64)
        with torch.no_grad():
            z = net[:-1](x) @ (g / math.sqrt(r))
        total = total + (z @ z.T + 1.0) / (3 * width)
    return total / samples


def test_equals_the_explicit_average_of_projected_read_outs():
    x = _x(5)
    mc = MonteCarloNNGP(_net(), samples=6, seed=2, batch_size=4, precision="float64", projection=3)
    kernel = mc.matrix(x)
    assert mc.diagnostics["projection"] == 3 and mc.diagnostics["features_per_initialisation"] == 3
    expected = _explicit_projected_kernel(_net(), x, seed=2, samples=6, r=3)
    torch.testing.assert_close(kernel, expected, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(mc.diagonal(x), expected.diagonal(), rtol=1e-12, atol=1e-14)


def test_the_projection_is_unbiased_and_adds_its_predicted_variance():
    """Same draws with and without the projection: the kernels agree within 4.5 of the projected kernel's standard
    errors, and its diagonal's spread per draw grows by about 2/r of the squared diagonal (the module docstring)."""
    x, r, samples = _x(6, seed=1), 4, 3000
    plain = MonteCarloNNGP(_net(width=64), samples=samples, seed=1, batch_size=500, entry_errors=True)
    projected = MonteCarloNNGP(_net(width=64), samples=samples, seed=1, batch_size=500, entry_errors=True, projection=r)
    k_plain, k_projected = plain.matrix(x), projected.matrix(x)
    z = (k_projected - k_plain).abs() / projected.standard_error
    assert float(z.max()) < 4.5, z
    added = projected.standard_error.diagonal().square() - plain.standard_error.diagonal().square()
    predicted = 2.0 / r * k_plain.diagonal().square() / samples  # E[K_s(x, x)^2] ~ K(x, x)^2 for a wide layer
    assert float((added / predicted).min()) > 0.7 and float((added / predicted).max()) < 1.4, added / predicted


def test_one_projection_serves_every_input_of_a_draw():
    """K(x, x_test) of the projected CNN is the one pass's cross kernel, K(x, x) from the cross-kernel path
    equals the Gram path to float32 rounding (a G_s drawn per input block would break both), and the rank is
    at most S r + 1 (the bias)."""
    x, x_test = _images(12), _images(4, seed=1)
    one = MonteCarloNNGP(_cnn(), samples=3, seed=2, batch_size=2, projection=2)
    K, cross, diagonal = one.train_and_test(x, x_test)
    two = MonteCarloNNGP(_cnn(), samples=3, seed=2, batch_size=2, projection=2)
    torch.testing.assert_close(cross, two.matrix(x, x_test), rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(diagonal, two.diagonal(x_test), rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(two.matrix(x, x), K, rtol=1e-5, atol=1e-7)
    assert one.diagnostics["rank"] == 3 * 2 + 1 and one.describe()["projection"] == 2


@pytest.mark.parametrize(
    "kwargs, reason",
    [({"projection": 12}, "not applied: r = 12 >= the 12"), ({"projection": 2, "estimator": "logits"}, "logit")],
)
def test_a_projection_that_would_not_narrow_the_features_is_not_applied(kwargs, reason):
    x = _x(5)
    mc = MonteCarloNNGP(_net(), samples=4, seed=0, **kwargs)
    kernel = mc.matrix(x)
    assert mc.diagnostics["projection"] is None and reason in mc.diagnostics["projection_reason"]
    base = {k: v for k, v in kwargs.items() if k != "projection"}
    torch.testing.assert_close(kernel, MonteCarloNNGP(_net(), samples=4, seed=0, **base).matrix(x), rtol=0, atol=0)


@pytest.mark.parametrize("projection", [0, -3, 2.5])
def test_a_bad_projection_is_refused(projection):
    with pytest.raises(InputError, match="projection"):
        MonteCarloNNGP(_net(), samples=4, projection=projection)


def test_the_marginal_family_reports_the_projection_and_keys_its_prior_on_it():
    """--kernel-projection reaches the kernel, its diagnostics, and the prior statement (the attempts ledger's key:
    a projected kernel is another prior)."""
    from test_marginal_cache import _bounds, _task

    from pacbayes.families.marginal import MarginalSettings, prior_statement

    model, train, test = _task()
    out = _bounds(model, train, test, None, kernel="monte-carlo", kernel_samples=8, kernel_projection=2)
    assert out["diagnostics"]["kernel"]["projection"] == 2
    settings = MarginalSettings(kernel="monte-carlo", kernel_projection=2)
    kernel = MonteCarloNNGP(model, samples=8, projection=2)
    assert prior_statement(kernel, settings)["kernel_projection"] == 2
    assert prior_statement(kernel, MarginalSettings(kernel="monte-carlo"))["kernel_projection"] is None
    with pytest.raises(InputError, match="--kernel-projection"):
        MarginalSettings(kernel_projection=0)


@pytest.mark.parametrize("projection", [None, 3])
def test_the_time_estimate_counts_the_feature_products(monkeypatch, projection):
    """estimate() adds, per initialisation, K's lower block triangle (lower_gram_entries(n) r multiply-adds) and
    the cross kernel's n1 x n_test r, and once the eigenvalues' SPECTRUM_MULTIPLY_ADDS n^3, at the timed rate:
    here a fixed rate, against the estimate without it."""
    import pacbayes.kernels.monte_carlo as monte_carlo

    x, n, tests, samples = _x(8), 3000, 500, 5
    forward_only, with_products = {}, {}
    for rate, into in ((0.0, forward_only), (1e-9, with_products)):
        monkeypatch.setattr(monte_carlo, "_multiply_add_seconds", lambda dtype, device, rate=rate: rate)
        monkeypatch.setattr(monte_carlo.time, "perf_counter", iter(range(10**6)).__next__)  # 1 s per timed step
        mc = MonteCarloNNGP(_net(), samples=samples, seed=0, projection=projection)
        into["seconds"], _ = mc.estimate(n, inputs=x, test_points=tests)
        into["width"] = mc.width
    assert with_products["width"] == (12 if projection is None else projection)
    products = (monte_carlo.lower_gram_entries(n) + n * tests) * with_products["width"] * samples * 1e-9
    products += monte_carlo.SPECTRUM_MULTIPLY_ADDS * n**3 * 1e-9
    assert with_products["seconds"] - forward_only["seconds"] == pytest.approx(products, rel=1e-12)
