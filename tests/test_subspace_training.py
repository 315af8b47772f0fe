"""Subspace training to convergence: early stopping, the best epoch kept, the settings recorded."""

import math

import pytest
import torch
from torch import nn

from pacbayes.errors import InputError
from pacbayes.families.base import cli_fields
from pacbayes.families.subspace import SubspaceSettings
from pacbayes.subspace import SubspaceModel, fit_subspace, subspace_bound, train_subspace_model
from pacbayes.subspace.coding import kt_code_bits
from pacbayes.subspace.evaluation import training_loss
from pacbayes.subspace.training import code_length_penalty, finetune_quantised


def data(n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    return x, (x @ torch.randn(6, 3, generator=g)).argmax(1)


def net():
    return nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 3))


def full_loss(model, x, y):
    with torch.no_grad():
        return float(training_loss(model(x), y))


def test_without_patience_every_epoch_runs_and_with_it_training_stops_at_convergence():
    x, y = data()
    fixed = fit_subspace(SubspaceModel(net(), dim=10, seed=1), x, y, epochs=7, lr=0.05, patience=None)
    assert fixed.epochs_run == 7
    # a learning rate this large makes the loss stall and bounce: patience 2 stops long before 400 epochs
    stalled = fit_subspace(SubspaceModel(net(), dim=10, seed=1), x, y, epochs=400, lr=2.0, patience=2)
    assert stalled.epochs_run < 400


def test_the_best_epoch_is_kept():
    x, y = data()
    initial = full_loss(SubspaceModel(net(), dim=10, seed=1), x, y)
    model = fit_subspace(SubspaceModel(net(), dim=10, seed=1), x, y, epochs=60, lr=0.5, patience=3)
    one = fit_subspace(SubspaceModel(net(), dim=10, seed=1), x, y, epochs=1, lr=0.5, patience=None)
    assert full_loss(model, x, y) < initial
    assert full_loss(model, x, y) <= full_loss(one, x, y) * 1.05  # the epoch-mean criterion is a minibatch proxy


def test_the_training_settings_are_recorded_in_the_bound():
    x, y = data()
    compressed = train_subspace_model(
        net(),
        x,
        y,
        SubspaceSettings(
            dim=10, levels=(4,), epochs=30, patience=5, lr=0.1, qat_epochs=3, qat_patience=2, rate_weight=2.0
        ),
        seed=0,
    )
    details = subspace_bound(compressed, x, y, delta=0.05)[0].details
    training = details["training"]
    assert training["epochs"] == 30 and training["patience"] == 5 and 1 <= training["epochs_run"] <= 30
    assert training["levels_grid"] == [4] and training["lr"] == 0.1 and training["qat_epochs"] == 3
    assert training["rate_weight"] == 2.0 and training["qat_patience"] == 2


@pytest.mark.parametrize("options", [{"patience": 0}, {"epochs": -1}, {"lr": 0.0}])
def test_bad_training_options_are_refused(options):
    x, y = data(40)
    with pytest.raises(InputError):
        fit_subspace(SubspaceModel(net(), dim=4, seed=0), x, y, **{"epochs": 2, **options})


@pytest.mark.parametrize(
    "settings, match",
    [
        ({"dim": 4}, "SubspaceSettings"),
        (SubspaceSettings(), "settings.dim is None"),
        (SubspaceSettings(dim=4, compressed=object()), "already a compressed model"),
    ],
)
def test_training_takes_the_familys_settings(settings, match):
    x, y = data(40)
    with pytest.raises(InputError, match=match):
        train_subspace_model(net(), x, y, settings)


def test_the_lower_level_defaults_are_the_settings():
    """The learning rate is written once, in SubspaceSettings; fine-tuning runs at a fifth of it."""
    import inspect

    from pacbayes.subspace.training import compress_subspace_model

    lr = SubspaceSettings().lr
    assert inspect.signature(fit_subspace).parameters["lr"].default == lr
    for function in (finetune_quantised, compress_subspace_model):
        assert inspect.signature(function).parameters["lr"].default == lr / 5


def test_the_family_offers_the_training_options_as_flags():
    flags = {f.metadata["cli"].flag for f in cli_fields(SubspaceSettings)}
    assert {"--subspace-epochs", "--subspace-patience", "--subspace-lr", "--subspace-qat-epochs"} <= flags
    assert {"--subspace-qat-patience", "--subspace-rate-weight"} <= flags
    assert "--subspace-levels" in flags and SubspaceSettings().levels == (4, 8, 16)


def test_the_code_length_penalty_against_a_direct_computation():
    """sum_i sum_k q_ik b_k (training.code_length_penalty's docstring), written out with math."""
    z = [0.3, -0.1, 0.05, 1.2, 2.0, 0.0, 0.1]
    levels = [0.0, 1.0, 2.0]
    counts = [5, 1, 1]  # nearest levels of z: 0, 0, 0, 1, 2, 0, 0
    costs = [-math.log2((c + 0.5) / (len(z) + 1.5)) for c in counts]
    half_gap = 0.5
    expected = 0.0
    for value in z:
        weights = [math.exp(-(((value - level) / half_gap) ** 2)) for level in levels]
        expected += sum(w * b for w, b in zip(weights, costs, strict=False)) / sum(weights)
    got = float(code_length_penalty(torch.tensor(z, dtype=torch.float64), torch.tensor(levels, dtype=torch.float64)))
    assert got == pytest.approx(expected, rel=1e-12)
    assert float(code_length_penalty(torch.tensor(z), torch.tensor([0.5]))) == 0.0


def test_the_code_length_penalty_pulls_a_coordinate_towards_the_popular_level():
    z = torch.tensor([-1.0] * 20 + [1.0, 0.1], requires_grad=True)  # level -1 popular, level 1 rare
    code_length_penalty(z, torch.tensor([-1.0, 1.0])).backward()
    assert z.grad[-1] > 0  # gradient descent moves z_22 = 0.1 down, towards the popular level -1


def test_a_larger_rate_weight_gives_a_shorter_code():
    x, y = data(600)
    lengths = []
    for weight in (0.0, 200.0):
        model = fit_subspace(SubspaceModel(net(), dim=40, seed=2), x, y, epochs=30, lr=0.1)
        codebook = torch.linspace(float(model.z.detach().min()), float(model.z.detach().max()), 8).numpy()
        _, symbols = finetune_quantised(model, x, y, codebook, epochs=10, patience=None, rate_weight=weight)
        lengths.append(kt_code_bits(symbols, 8))
    assert lengths[1] < lengths[0]


def test_a_negative_rate_weight_is_refused():
    x, y = data(40)
    with pytest.raises(InputError):
        finetune_quantised(SubspaceModel(net(), dim=4, seed=0), x, y, [0.0, 1.0], rate_weight=-1.0)
