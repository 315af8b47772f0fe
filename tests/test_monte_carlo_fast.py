"""Monte Carlo NNGP fast path: float32 forwards, the stacked network with BatchNorm folded, the pilot on the
inputs, and K with the cross kernel from one pass."""

import math

import pytest
import torch
from torch import nn

import pacbayes.kernels.monte_carlo as monte_carlo
import pacbayes.kernels.stacked as stacked
from pacbayes.data import load_dataset
from pacbayes.kernels import MonteCarloNNGP
from pacbayes.kernels.choice import monte_carlo_forecast

CIFAR_SLICE = "tests/fixtures/cifar-10-slice"


def _cnn(channels=3, width=3):
    """conv-BN-ReLU-maxpool twice and a linear read-out, on 8 x 8 images."""
    return nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.BatchNorm2d(2 * width),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * width * 4, 1),
    )


def _images(n=6, seed=0):
    return torch.rand(n, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _cifar(n):
    return load_dataset(CIFAR_SLICE, split="train").x[:n].double()


def _small_cifar_cnn():
    """conv-BN-ReLU-maxpool and a linear read-out on 32 x 32 images."""
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(10), nn.Flatten(), nn.Linear(36, 1)
    )


def _vmapped(monkeypatch):
    monkeypatch.setattr(monte_carlo, "stack_module", lambda module: (None, "forced"))


def test_float32_forwards_are_far_inside_the_sampling_error():
    """The same draws with float32 and float64 forwards: the kernels differ by under 1e-3 standard errors."""
    x = _images(8)
    kernels = {}
    for precision in ("float32", "float64"):
        mc = MonteCarloNNGP(_cnn(), samples=64, seed=1, entry_errors=True, precision=precision)
        kernels[precision] = mc.matrix(x)
        assert mc.evaluation == "stacked" and mc.diagnostics["estimator"] == "readout"
    z = (kernels["float32"] - kernels["float64"]).abs() / mc.standard_error
    assert float(z.max()) < 1e-3, z


def test_the_float32_cross_kernel_is_far_inside_the_sampling_error():
    """K(x, x_test) from float32 products of float32 features against the float64 pass on the same draws."""
    x, x_test = _images(8), _images(5, seed=1)
    crosses = {}
    for precision in ("float32", "float64"):
        mc = MonteCarloNNGP(_cnn(), samples=64, seed=1, entry_errors=True, precision=precision)
        crosses[precision] = mc.matrix(x, x_test)
    z = (crosses["float32"] - crosses["float64"]).abs() / mc.standard_error
    assert float(z.max()) < 1e-3, z


def test_k_is_the_exact_float64_gram_matrix_of_the_float32_features():
    """The features stay in the forwards' float32; only K's products widen them, so K is their exact Gram matrix
    (positive semi-definite by construction), not a float32 product."""
    x = _images(9)
    mc = MonteCarloNNGP(_cnn(), samples=6, seed=3, batch_size=6)
    K = mc.matrix(x)
    (features,) = next(mc._feature_batches([x], mc._seeds(), torch.device("cpu"), 1024, True))
    assert features.dtype == torch.float32 and features.shape == (9, 6 * mc.width)
    wide = features.double()
    a, b = mc._scale()
    torch.testing.assert_close(K, wide @ wide.T * (a / 6) + b, rtol=1e-14, atol=0.0)


def _random_norm_init(module):
    """Default init plus non-trivial BatchNorm statistics and affine parameters (so a fold is visible)."""
    for layer in module.modules():
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()
        if isinstance(layer, nn.BatchNorm2d):
            layer.running_mean.normal_()
            layer.running_var.uniform_(0.5, 2.0)
            layer.weight.data.normal_()
            layer.bias.data.normal_()


@pytest.mark.parametrize("init_fn", [None, _random_norm_init])
def test_folded_batchnorm_equals_the_vmapped_module(init_fn, monkeypatch):
    """The stacked network (BatchNorm folded into the convolution before it) gives the vmapped module's kernel
    for the same seeds, to float64 rounding, with fresh and with non-trivial normalisation parameters."""
    x = _images(5)
    options = dict(samples=12, seed=3, batch_size=5, init_fn=init_fn, precision="float64")
    stacked = MonteCarloNNGP(_cnn(), **options)
    folded = stacked.matrix(x)
    assert stacked.evaluation == "stacked"
    net = stacked._networks["cpu"][0]
    assert [type(layer).__name__ for layer in net][:4] == ["_Conv", "Identity", "_PairMax2d", "ReLU"]  # BN folded
    _vmapped(monkeypatch)
    vmapped = MonteCarloNNGP(_cnn(), **options)
    torch.testing.assert_close(folded, vmapped.matrix(x), rtol=1e-10, atol=1e-12)
    assert vmapped.evaluation == "vmap (forced)"


def test_fresh_batchnorm_in_eval_mode_is_a_fixed_scale():
    """At initialisation a BatchNorm in eval mode is x / sqrt(1 + eps): the kernel equals that of the network
    with each BatchNorm replaced by that scale, and does not depend on which inputs share a batch."""
    x = _images(6)
    with_norm = MonteCarloNNGP(_cnn(), samples=20, seed=0, precision="float64")
    kernel = with_norm.matrix(x)
    scaled = _cnn()
    for index in (1, 5):
        scaled[index] = Scale(1 / math.sqrt(1 + scaled[index].eps))
    torch.testing.assert_close(kernel, MonteCarloNNGP(scaled, samples=20, seed=0, precision="float64").matrix(x))
    alone = MonteCarloNNGP(_cnn(), samples=20, seed=0, precision="float64").matrix(x[:2])
    torch.testing.assert_close(alone, kernel[:2, :2], rtol=1e-12, atol=1e-14)


class Scale(nn.Module):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


class Concatenated(nn.Module):
    """Two convolutions concatenated along the channel axis: the stacked layout cannot hold this."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 2, 3), nn.Conv2d(3, 2, 3)
        self.readout = nn.Linear(4 * 36, 1)

    def forward(self, x):
        return self.readout(torch.cat([self.a(x), self.b(x)], dim=1).relu().flatten(1))


def test_a_forward_that_mixes_channels_falls_back_to_vmap(monkeypatch):
    x = _images(4)
    mc = MonteCarloNNGP(Concatenated(), samples=6, seed=0, precision="float64")
    kernel = mc.matrix(x)
    assert mc.evaluation.startswith("vmap (the stacked copy")
    _vmapped(monkeypatch)
    torch.testing.assert_close(kernel, MonteCarloNNGP(Concatenated(), samples=6, seed=0, precision="float64").matrix(x))


def test_the_automatic_count_meets_its_target_on_real_images():
    """The pilot runs on held-out real CIFAR-10 images (``pilot_inputs``), so the count it chooses meets the
    target entry standard error on images of the same distribution; Gaussian probes (no pilot inputs)
    understate the spread of real images and choose several times fewer draws, and the kernel's own inputs
    never choose (the prior would depend on the sample)."""
    x, held_out = _cifar(40), load_dataset(CIFAR_SLICE, split="test").x.double()
    model = _small_cifar_cnn()
    mc = MonteCarloNNGP(model, seed=0, target_error=0.08, pilot_inputs=held_out)
    mc.matrix(x)
    rule, d = mc.sample_rule, mc.diagnostics
    assert rule["pilot_inputs"] == min(len(held_out), 64)
    assert rule["for_rank"] < rule["for_error"] < rule["cap"]
    # the pilot's inputs are other images than the kernel's: their largest entry error differs by some 10-20%
    assert d["standard_error_max_relative"] <= 0.08 * 1.25, (rule, d)
    probe = MonteCarloNNGP(model, seed=0, target_error=0.08)
    probe.matrix(x)
    assert probe.sample_rule["pilot_inputs"] == "gaussian probe"
    assert probe.samples * 2 < mc.samples


def test_the_forecast_pilots_on_the_pilot_inputs():
    x = _cifar(24)
    kernel = MonteCarloNNGP(_small_cifar_cnn(), seed=0, target_error=0.1, pilot_inputs=x)
    forecast = monte_carlo_forecast(kernel, 24, (3, 32, 32))
    mc = MonteCarloNNGP(_small_cifar_cnn(), seed=0, target_error=0.1, pilot_inputs=x)
    mc.matrix(_cifar(48)[24:])
    assert forecast.samples == mc.samples
    assert forecast.relative_error == pytest.approx(mc.sample_rule["pilot_relative_sd"] / math.sqrt(mc.samples))


@pytest.mark.parametrize("samples", [7, None])
def test_train_and_test_in_one_pass_equals_separate_calls(samples):
    x, x_test = _images(7), _images(4, seed=1)
    one = MonteCarloNNGP(_cnn(), samples=samples, seed=2, batch_size=3, target_error=0.2)
    K, cross, diagonal = one.train_and_test(x, x_test)
    two = MonteCarloNNGP(_cnn(), samples=samples, seed=2, batch_size=3, target_error=0.2)
    torch.testing.assert_close(K, two.matrix(x), rtol=1e-12, atol=1e-15)
    assert one.diagnostics == two.diagnostics and one.diagnostics["rank"] == 7
    torch.testing.assert_close(cross, two.matrix(x, x_test), rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(diagonal, two.diagonal(x_test), rtol=1e-12, atol=1e-15)


def test_pilot_inputs_choose_the_count_without_the_kernel_inputs():
    """Held-out inputs (outside the training sample) choose S: the count is the same whatever the kernel is
    computed on, or whether only its shape is known yet."""
    held_out, x = _cifar(40)[20:], _cifar(40)[:20]
    options = dict(seed=0, target_error=0.1, pilot_inputs=held_out)
    mc = MonteCarloNNGP(_small_cifar_cnn(), **options)
    mc.estimate(20, input_shape=(3, 32, 32))  # shape only: the pilot inputs still decide
    assert mc.sample_rule["pilot_inputs"] == 20
    other = MonteCarloNNGP(_small_cifar_cnn(), **options)
    other.matrix(held_out)
    mc.matrix(x)
    assert mc.samples == other.samples


@pytest.mark.parametrize("size", [(8, 8), (7, 9), (2, 3)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_the_pairwise_max_pool_equals_max_pool2d_bit_for_bit(size, channels_last):
    x = torch.randn(3, 5, *size, generator=torch.Generator().manual_seed(0))
    x[0, 1, 0, 0] = float("nan")  # propagates as in the pool
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    expected = nn.functional.max_pool2d(x, 2)
    assert torch.equal(stacked._PairMax2d()(x).isnan(), expected.isnan())
    assert torch.equal(stacked._PairMax2d()(x).nan_to_num(), expected.nan_to_num())


@pytest.mark.parametrize(
    "pool, replaced",
    [
        (nn.MaxPool2d(2), True),
        (nn.MaxPool2d((2, 2), stride=2), True),
        (nn.MaxPool2d(2, stride=1), False),
        (nn.MaxPool2d(3), False),
        (nn.MaxPool2d(2, padding=1), False),
        (nn.MaxPool2d(2, ceil_mode=True), False),
        (nn.MaxPool2d(2, dilation=2), False),
        (nn.MaxPool2d(2, return_indices=True), False),
    ],
)
def test_only_the_plain_two_by_two_max_pool_is_replaced(pool, replaced):
    assert stacked._pairwise_max_pool(pool) is replaced
