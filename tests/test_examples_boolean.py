"""examples/boolean_functions.py: batched ReLU nets, their training and rejection sampling, checked independently."""

import math

import numpy as np
import pytest
import torch
from scripts import load_script
from torch import nn

from pacbayes.errors import InputError

boolean = load_script("examples/boolean_functions.py")
ReluNets, boolean_inputs, lz_complexity = boolean.ReluNets, boolean.boolean_inputs, boolean.lz_complexity
fitting_prior_functions, train_to_fit = boolean.fitting_prior_functions, boolean.train_to_fit


def as_module(nets: ReluNets, theta: torch.Tensor) -> nn.Sequential:
    """One network of the batch as an ordinary torch module (weights copied from the flat layout)."""
    layers = []
    for index, (fan_in, fan_out) in enumerate(nets.shapes()):
        layers.append(nn.Linear(fan_in, fan_out).double())
        if index < len(nets.shapes()) - 1:
            layers.append(nn.ReLU())
    module = nn.Sequential(*layers)
    with torch.no_grad():
        for linear, (weight, bias) in zip(module[::2], nets.layers(theta[None].double()), strict=False):
            linear.weight.copy_(weight[0].T)
            linear.bias.copy_(bias[0, 0])
    return module


def test_boolean_inputs_and_lz():
    x = boolean_inputs(3)
    assert x.shape == (8, 3) and x[5].tolist() == [1.0, 0.0, 1.0]  # row i = binary digits of i
    assert lz_complexity("0" * 8) == 3.0
    assert lz_complexity("01" * 4) == 3.0 * (3 + 3) / 2  # 0 / 1 / 010101 and, reversed, 1 / 0 / 101010
    with pytest.raises(InputError, match="0s and 1s"):
        lz_complexity("0120")


def test_prior_scales_and_forward_match_a_torch_module():
    nets = ReluNets(3, (5, 4), sigma_w=1.5, sigma_b=0.3)
    assert nets.size == 3 * 5 + 5 + 5 * 4 + 4 + 4 + 1
    theta = nets.sample(200_000, torch.Generator().manual_seed(0))
    expected = nets.scales()
    assert expected[0] == pytest.approx(1.5 / math.sqrt(3)) and expected[15] == pytest.approx(0.3)
    assert torch.allclose(theta.std(dim=0), expected, rtol=0.02)
    x = torch.tensor(boolean_inputs(3))
    batch = theta[:4].double()
    for row in range(4):
        direct = as_module(nets, batch[row])(x).squeeze(-1)
        assert torch.allclose(nets.logits(batch, x)[row], direct, atol=1e-12)


def test_logistic_gradient_matches_autograd():
    nets = ReluNets(3, (5, 4), sigma_w=1.0, sigma_b=0.5)
    generator = torch.Generator().manual_seed(1)
    theta = nets.sample(6, generator).double().requires_grad_()
    x = torch.randn(6, 4, 3, dtype=torch.float64, generator=generator)
    y = torch.rand(6, 4, generator=generator) > 0.5
    out = nets.activations(theta, x)[-1].squeeze(-1)
    loss = nn.functional.binary_cross_entropy_with_logits(out, y.double(), reduction="none").mean(dim=1).sum()
    (expected,) = torch.autograd.grad(loss, theta)
    assert torch.allclose(nets.logistic_gradient(theta.detach(), x, y), expected, atol=1e-14)


@pytest.mark.parametrize("optimiser", ["sgd", "adam"])
def test_full_batch_training_matches_torch_optim(optimiser):
    """With batch = m each epoch is one full-batch step, so three epochs equal three torch.optim steps."""
    nets = ReluNets(3, (6,), sigma_w=1.0, sigma_b=0.1)
    x = torch.tensor(boolean_inputs(3), dtype=torch.float32)
    y = torch.tensor([0, 1, 1, 0, 1, 0, 0, 1], dtype=torch.bool)  # parity: not fitted in 3 small steps
    theta = nets.sample(3, torch.Generator().manual_seed(2))
    lr = 0.01
    result = train_to_fit(
        nets, theta, x, y, optimiser=optimiser, lr=lr, batch=8, max_epochs=3, generator=torch.Generator()
    )
    assert not result.converged.any() and (result.epochs == 3).all()
    for row in range(3):
        module = as_module(nets, theta[row]).float()
        step = (
            torch.optim.SGD(module.parameters(), lr=lr)
            if optimiser == "sgd"
            else torch.optim.Adam(module.parameters(), lr=lr)
        )
        for _ in range(3):
            step.zero_grad()
            nn.functional.binary_cross_entropy_with_logits(module(x).squeeze(-1), y.float()).backward()
            step.step()
        trained = as_module(nets, result.theta[row])
        for ours, theirs in zip(trained.parameters(), module.parameters(), strict=False):
            assert torch.allclose(ours.float(), theirs, atol=1e-6)


def test_training_stops_at_zero_error_and_keeps_fitted_initialisations():
    nets = ReluNets(7, (40, 40))
    x = torch.tensor(boolean_inputs(7), dtype=torch.float32)[::4]
    y = x[:, 0] > 0
    theta = nets.sample(64, torch.Generator().manual_seed(3))
    result = train_to_fit(
        nets, theta, x, y, optimiser="sgd", lr=0.5, batch=8, max_epochs=500, generator=torch.Generator().manual_seed(4)
    )
    assert result.converged.all()
    assert nets.fits(result.theta, x, y).all()
    fitted_at_start = nets.fits(theta, x, y)
    assert torch.equal(result.theta[fitted_at_start], theta[fitted_at_start])
    assert (result.epochs[fitted_at_start] == 0).all() and (result.epochs[~fitted_at_start] > 0).all()
    with pytest.raises(InputError, match="divide"):
        train_to_fit(nets, theta, x, y, optimiser="sgd", lr=0.1, batch=5, max_epochs=1, generator=torch.Generator())
    with pytest.raises(InputError, match="optimiser"):
        train_to_fit(nets, theta, x, y, optimiser="rmsprop", lr=0.1, batch=8, max_epochs=1, generator=torch.Generator())


def test_rejection_sampling_bookkeeping_and_rate():
    """Accepted draws reproduce their labelling exactly; the acceptance rate matches plain prior sampling."""
    nets = ReluNets(3, (8, 8), sigma_w=1.0, sigma_b=0.5)
    x = torch.tensor(boolean_inputs(3), dtype=torch.float32)
    train = x[:3]
    labellings = torch.tensor([[1, 1, 1], [0, 1, 1], [1, 0, 0]], dtype=torch.bool)
    draws = 64_000
    accepted = fitting_prior_functions(nets, train, labellings, x, draws, torch.Generator().manual_seed(5), heads=4)
    for labels, signs in zip(labellings, accepted, strict=False):
        assert signs.shape[1] == 8 and (signs[:, :3] == labels).all()  # x_eval starts with the training inputs
    plain = nets.logits(nets.sample(draws, torch.Generator().manual_seed(6)), train) > 0
    for labels, signs in zip(labellings, accepted, strict=False):
        p = float((plain == labels).all(dim=1).double().mean())
        sd = math.sqrt(p * (1 - p) / draws) * (1 + math.sqrt(4))  # the heads' dependence inflates the spread
        assert abs(signs.shape[0] / draws - p) <= 5 * sd + 1e-9
    with pytest.raises(InputError, match="multiple of heads"):
        fitting_prior_functions(nets, train, labellings, x, 10, torch.Generator(), heads=4)


def test_rejection_with_independent_heads_equals_the_posterior_on_a_tiny_case():
    """n = 1: P(f(1) = 1 | f(0) = 1) from rejection against a direct count over the same kind of prior draws."""
    nets = ReluNets(1, (4,), sigma_w=1.0, sigma_b=1.0)
    x = torch.tensor([[0.0], [1.0]])
    (signs,) = fitting_prior_functions(
        nets, x[:1], torch.tensor([[True]]), x[1:], 40_000, torch.Generator().manual_seed(7)
    )
    plain = nets.logits(nets.sample(200_000, torch.Generator().manual_seed(8)), x) > 0
    expected = float(plain[plain[:, 0], 1].double().mean())
    n = signs.shape[0]
    assert abs(float(signs.double().mean()) - expected) <= 5 * np.sqrt(expected * (1 - expected) / n) + 0.003
