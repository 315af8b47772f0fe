"""Subspace training to convergence: early stopping, the best epoch kept, the settings recorded."""

import pytest
import torch
from torch import nn

from pacbayes.errors import InputError
from pacbayes.families.base import cli_fields
from pacbayes.families.subspace import SubspaceSettings
from pacbayes.subspace import SubspaceModel, fit_subspace, subspace_bound, train_subspace_model
from pacbayes.subspace.evaluation import training_loss


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
    compressed = train_subspace_model(net(), x, y, dim=10, seed=0, levels=(4,), epochs=30, patience=5, lr=0.1)
    details = subspace_bound(compressed, x, y, delta=0.05)[0].details
    training = details["training"]
    assert training["epochs"] == 30 and training["patience"] == 5 and 1 <= training["epochs_run"] <= 30
    assert training["levels_grid"] == [4] and training["lr"] == 0.1 and training["qat_epochs"] == 1


@pytest.mark.parametrize("options", [{"patience": 0}, {"epochs": -1}, {"lr": 0.0}])
def test_bad_training_options_are_refused(options):
    x, y = data(40)
    with pytest.raises(InputError):
        fit_subspace(SubspaceModel(net(), dim=4, seed=0), x, y, **{"epochs": 2, **options})


def test_the_family_offers_the_training_options_as_flags():
    flags = {f.metadata["cli"].flag for f in cli_fields(SubspaceSettings)}
    assert {"--subspace-epochs", "--subspace-patience", "--subspace-lr", "--subspace-qat-epochs"} <= flags
    assert "--subspace-levels" in flags and SubspaceSettings().levels == (4, 8, 16)
