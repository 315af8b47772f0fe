"""Per-point posterior draws (pacbayes.stochastic.local), through convolutions too: each input is convolved
with its own kernel drawn from Q, checked against an explicit per-input computation, a closed-form error
probability, per-network draws of the same posterior (MLP and CNN), and the family's bookkeeping."""

import pytest
import torch
import torch.nn as nn
from test_stochastic import _fitted, _noisy_posterior, trained  # noqa: F401  (registers the MLP fixture used below)
from torch.distributions import Normal
from torch.nn import functional

from pacbayes import bounds
from pacbayes.errors import InputError
from pacbayes.families.settings import DziugaiteRoySettings
from pacbayes.stochastic import Schedule, stochastic_bound
from pacbayes.stochastic.certificate import point_sampled_error, sampled_error
from pacbayes.stochastic.local import conv_draw, point_layers, point_logits, resolve_mc_sampling

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = Schedule(epochs=3, batch_size=50, lr=1e-3)


def _images(m: int, seed: int, size: int = 6) -> tuple:
    """Binary task on 1 x size x size images: the label is which half of the image is brighter."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (m,), generator=gen)
    x = torch.randn(m, 1, size, size, generator=gen)
    x[:, :, :, : size // 2] += 0.8 * (2.0 * labels.float() - 1.0)[:, None, None, None]
    return x, labels


def _cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(3, 4, 2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16, 1),
    )


@pytest.fixture(scope="module")
def trained_cnn():
    torch.manual_seed(0)
    return _fitted(_cnn(), *_images(200, seed=1), steps=100)


@pytest.mark.parametrize(
    "conv",
    [
        nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2),
        nn.Conv2d(3, 5, 3, padding="same", dilation=2, bias=False),
    ],
    ids=["strided-grouped", "same-dilated-no-bias"],
)
def test_each_input_is_convolved_with_its_own_drawn_kernel(conv):
    torch.manual_seed(0)
    n, weight = 7, conv.weight.detach()
    a = torch.randn(n, conv.in_channels, 9, 9)
    mean, var = {"c.weight": weight}, {"c.weight": 0.5 * torch.rand_like(weight)}
    if conv.bias is not None:
        mean["c.bias"], var["c.bias"] = conv.bias.detach(), 0.5 * torch.rand_like(conv.bias)
    out = conv_draw("c", conv, mean, var, a, torch.Generator().manual_seed(5))

    gen = torch.Generator().manual_seed(5)  # the documented order: all kernels, then all biases
    kernels = weight + var["c.weight"].sqrt() * torch.randn((n, *weight.shape), generator=gen)
    biases = None
    if conv.bias is not None:
        biases = mean["c.bias"] + var["c.bias"].sqrt() * torch.randn((n, conv.out_channels), generator=gen)
    for i in range(n):
        bias = None if biases is None else biases[i]
        expected = functional.conv2d(
            a[i : i + 1], kernels[i], bias, conv.stride, conv.padding, conv.dilation, conv.groups
        )
        assert torch.allclose(out[i : i + 1], expected, atol=1e-5)
    assert not torch.allclose(out[0], out[1])  # two inputs, two kernels


def test_a_whole_image_kernel_drawn_per_point_has_the_gaussian_error_probability():
    """A 2 x 2 kernel on 2 x 2 images is a linear classifier: Pr[error] = Phi(-margin / spread) per point."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 1, 2), nn.Flatten())
    with torch.no_grad():
        net[0].weight.fill_(0.3), net[0].bias.fill_(0.1)
    gen = torch.Generator().manual_seed(2)
    labels = torch.randint(0, 2, (200,), generator=gen)
    x = torch.randn(200, 1, 2, 2, generator=gen) * 0.7 + (2.0 * labels.float() - 1.0)[:, None, None, None]
    std = 0.6
    w, b = net[0].weight.detach().reshape(-1).double(), float(net[0].bias.detach())
    flat = x.reshape(200, -1).double()
    margin = (2.0 * labels.double() - 1.0) * (flat @ w + b)
    spread = torch.sqrt(std**2 * (flat * flat).sum(1) + std**2)
    exact = float(Normal(0.0, 1.0).cdf(-margin / spread).mean())
    assert 0.05 < exact < 0.45
    estimate = point_sampled_error(
        net, _noisy_posterior(net, std), x, labels, 400, generator=torch.Generator().manual_seed(1)
    )
    assert estimate == pytest.approx(exact, abs=0.01)  # 80,000 independent draws: standard error ~0.0015


NOISY = [("trained", 1.5), ("trained_cnn", 0.5)]
"""A trained MLP and CNN with the posterior std at which their Gibbs error is well above their training error."""


@pytest.mark.parametrize(("network", "std"), NOISY, ids=["mlp", "cnn"])
def test_point_draws_and_network_draws_estimate_the_same_gibbs_error(network, std, request):
    net, _, x, labels = request.getfixturevalue(network)
    posterior = _noisy_posterior(net, std)
    gen = torch.Generator().manual_seed(3)
    per_point = point_sampled_error(net, posterior, x, labels, 300, generator=gen)
    per_network = sampled_error(net, posterior, x, labels, 3000, generator=gen)
    assert 0.05 < per_network < 0.45  # the noise matters, so the check is not trivial
    assert per_point == pytest.approx(per_network, abs=0.015)


@pytest.mark.parametrize("network", ["trained", "trained_cnn"], ids=["mlp", "cnn"])
def test_point_logits_are_the_network_at_zero_variance_and_differentiable(network, request):
    net, _, x, _ = request.getfixturevalue(network)
    posterior = _noisy_posterior(net, 1e-6)
    mean = posterior.mean.clone().requires_grad_(True)
    log_var = posterior.log_var.clone().requires_grad_(True)
    layout, gen = posterior.layout, torch.Generator().manual_seed(0)
    out = point_logits(point_layers(net), layout.unflatten(mean), layout.unflatten(torch.exp(log_var)), x, gen)
    assert torch.allclose(out, net(x)[:, 0], atol=1e-4)
    out.sum().backward()
    grads = layout.unflatten(log_var.grad)
    assert all(grads[name].abs().sum() > 0 for name in grads if name.endswith("weight"))  # every drawn layer
    assert mean.grad.abs().sum() > 0


def test_the_family_draws_a_cnn_per_point_by_default_and_trains_it_per_point(trained_cnn):
    net, init, x, labels = trained_cnn
    settings = {"init_state": init, "posterior_epochs": FAST.epochs, "mc_samples": 4}
    auto = stochastic_bound(net, x, labels, DziugaiteRoySettings(**settings), schedule=FAST, delta=0.1)[0]
    per_point_training = DziugaiteRoySettings(per_point_training=True, **settings)
    point = stochastic_bound(net, x, labels, per_point_training, schedule=FAST, delta=0.1)[0]
    share = bounds.series_delta(1, 0.1) / 2
    for result in (auto, point):
        d = result.details
        assert d["mc_sampling"] == "point" and d["mc_draws"] == 4 * 200
        empirical = bounds.sample_convergence_bound(d["sampled_error"], 4 * 200, share)
        assert d["empirical_error_bound"] == pytest.approx(empirical, rel=1e-12)
        assert result.value == pytest.approx(bounds.pac_bayes_kl_bound(empirical, d["kl"], 200, share), rel=1e-12)
    assert point.details["per_point_training"] is True
    assert point.details["kl"] != pytest.approx(auto.details["kl"], rel=1e-6)


@pytest.mark.parametrize(
    ("model", "blocking"),
    [
        (nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"), nn.Flatten()), "Conv2d"),
        (nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(start_dim=0)), "Flatten"),
        (nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2, return_indices=True)), "MaxPool2d"),
        (nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten()), "BatchNorm2d"),
        (nn.Sequential(nn.MaxPool2d(2), nn.Flatten()), "no Linear or Conv2d layer"),
    ],
    ids=["reflect-padding", "flatten-over-the-batch", "pool-indices", "batchnorm", "nothing-drawn"],
)
def test_models_a_draw_per_point_would_not_be_exact_for_are_refused_by_name(model, blocking):
    assert resolve_mc_sampling("auto", model) == "network"
    with pytest.raises(InputError, match=rf"needs an nn.Sequential of Linear and .*\(got {blocking}\)"):
        point_layers(model)


def test_per_point_batches_shrink_to_the_activations_of_a_cnn():
    from pacbayes.stochastic.certificate import POINT_BATCH_ELEMENTS, point_batch_size

    x = torch.zeros(3, 1, 28, 28)
    cnn = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 26 * 26, 1))
    per_input = 3 * 8 * 26 * 26 + 1  # the convolution, the ReLU and Flatten, then one logit
    assert point_batch_size(point_layers(cnn), x) == POINT_BATCH_ELEMENTS // per_input
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 1))
    assert point_batch_size(point_layers(mlp), x) == 5000
