"""A subspace origin learned on a held-out prior part of S: the split, what the origin may see, the
origin candidate, the bound on the bound part only, files and the certify flag."""

import json
import math

import numpy as np
import pytest
import subspace_data
import torch
from click.testing import CliRunner
from subspace_data import net, small_cnn

from pacbayes.bounds import compression_bound
from pacbayes.cli import main
from pacbayes.errors import InputError
from pacbayes.families.settings import SubspaceSettings
from pacbayes.models import zero_one_error
from pacbayes.subspace import (
    SubspaceModel,
    compress_subspace_model,
    load_subspace_model,
    save_subspace_model,
    subspace_bound,
    train_subspace_model,
)
from pacbayes.subspace.origin import split_indices
from pacbayes.subspace.training import learn_origin


def data(n=400, seed=0, classes=3):
    return subspace_data.data(n, seed, classes)


FAST = {"levels": (3, 6), "epochs": 3, "lr": 0.1, "qat_epochs": 2, "prior_epochs": 15}


@pytest.fixture(scope="module")
def learned():
    x, y = data()
    return train_subspace_model(net(), x, y, SubspaceSettings(dim=12, prior_split=0.5, **FAST), seed=4)


def test_the_split_is_a_seeded_partition():
    prior, rest = split_indices(101, 0.5, seed=7)
    assert len(prior) == 50 and len(rest) == 51
    assert sorted(torch.cat([prior, rest]).tolist()) == list(range(101))
    again, _ = split_indices(101, 0.5, seed=7)
    other, _ = split_indices(101, 0.5, seed=8)
    assert torch.equal(prior, again) and not torch.equal(prior, other)
    for fraction in (0.0, 1.0, 0.95, -0.1, math.nan):
        with pytest.raises(InputError):
            split_indices(100, fraction, seed=0)


def test_the_origin_sees_only_the_prior_part():
    x, y = data()
    prior, rest = split_indices(len(y), 0.5, seed=4)
    changed = y.clone()
    changed[rest] = (changed[rest] + 1) % 3  # every bound-part label differs
    origins = []
    for labels in (y, changed):
        model = SubspaceModel(net(), dim=6, seed=4)
        start_error = zero_one_error(model, x[prior], y[prior])
        x_bound, y_bound = learn_origin(model, x, labels, split=0.5, epochs=15, lr=0.01)
        assert torch.equal(x_bound, x[rest]) and torch.equal(y_bound, labels[rest])
        assert zero_one_error(model, x[prior], y[prior]) < start_error
        origins.append(model.theta0.clone())
    assert torch.equal(origins[0], origins[1])
    assert model.origin["kind"] == "data-dependent" and model.origin["prior_points"] == len(prior)


def test_the_bound_is_on_the_bound_part_with_the_origin_candidate_counted(learned):
    x, y = data()
    _, rest = split_indices(len(y), 0.5, seed=4)
    (result,) = subspace_bound(learned, x, y, delta=0.05)
    assert result.details["m"] == len(rest) == 200
    assert learned.configurations == 2 * 2 + 1  # levels x fine-tuning epochs + the origin itself
    error = zero_one_error(learned.decode(), x[rest], y[rest])
    assert result.details["train_error"] == error == learned.train_error
    assert result.value == compression_bound(error, learned.code_bits, len(rest), 0.05, 5)["value"]
    assert result.details["decoding_check"].startswith("passed")
    assert "held-out" in result.certifies
    assert any("learned on 200 training points held out" in a for a in result.assumptions)
    assert learned.training["prior_split"] == 0.5


def test_the_bound_refuses_data_without_the_prior_part(learned):
    x, y = data()
    for xs, ys in ((x[1:], y[1:]), (x.flip(0), y.flip(0)), data(seed=9)):
        with pytest.raises(InputError, match="full training set"):
            subspace_bound(learned, xs, ys, delta=0.05)


def test_a_perfect_origin_is_kept_as_z_zero():
    x, y = data()
    teacher = net()
    model = SubspaceModel(teacher, dim=10, seed=1)
    with torch.no_grad():  # relabel the data by the origin itself: z = 0 errs nowhere
        y = model(x).argmax(1)
    model.origin = {"kind": "test"}
    compressed = compress_subspace_model(model, x, y, levels=(4,), qat_epochs=1, include_origin=True)
    assert compressed.quantisation == "origin" and compressed.train_error == 0.0
    assert np.array_equal(compressed.decoded_z(), np.zeros(10, dtype=np.float32))
    assert not model.z.any()  # the kept continuous z is the candidate's
    assert compressed.configurations == 2
    assert compressed.code_bits < 16


def test_a_learned_origin_survives_a_file_round_trip(learned, tmp_path):
    x, y = data()
    path = tmp_path / "learned.pt"
    save_subspace_model(learned, path)
    loaded = load_subspace_model(path, net())
    assert torch.equal(loaded.model.theta0, learned.model.theta0)
    assert loaded.model.origin == learned.model.origin
    assert subspace_bound(loaded, x, y, delta=0.05)[0].value == subspace_bound(learned, x, y, delta=0.05)[0].value


def test_the_certify_flag_trains_a_learned_origin(tmp_path):
    from pacbayes.demo import demo_network

    torch.manual_seed(0)
    path = tmp_path / "model.pt"
    torch.jit.script(demo_network(width=16)).save(str(path))
    args = ["certify", str(path), "--bounds", "subspace", "--m", "120", "--subspace-dim", "20", "--json", "--quiet"]
    fast = ["--subspace-epochs", "3", "--subspace-qat-epochs", "2", "--subspace-prior-epochs", "5"]
    result = CliRunner().invoke(main, [*args, *fast, "--subspace-prior-split", "0.5"])
    assert result.exit_code == 0, result.output
    details = json.loads(result.stdout)["bounds"][0]["details"]
    assert details["origin"]["kind"] == "data-dependent" and details["m"] == 60
    assert details["configurations"] == 3 * 2 + 1  # the default level grid (4, 8, 16) when the flag is not given
    bad = CliRunner().invoke(main, [*args, *fast, "--subspace-prior-split", "1.5"])
    assert bad.exit_code == 2 and "split" in bad.stderr


@pytest.mark.heavy
def test_mnist_ten_classes_with_a_learned_origin():
    """examples/subspace_mnist.py --prior-split 0.5 at a smaller budget (about a minute): theta0
    learned on 2,500 points, the bound on the other 2,500."""
    from pacbayes.data import load_dataset

    train, test = load_dataset("mnist-embedded", split="train"), load_dataset("mnist-embedded", split="test")
    model = train_subspace_model(
        small_cnn(10),
        train.x,
        train.labels,
        SubspaceSettings(dim=100, epochs=10, qat_epochs=5, prior_split=0.5),
        seed=0,
    )
    (result,) = subspace_bound(model, train.x, train.labels, delta=0.05, test=(test.x, test.labels))
    assert result.details["m"] == 2500 and result.details["decoding_check"].startswith("passed")
    assert result.details["test_error"] < 0.08 and result.value < 0.12
