"""End to end on small synthetic data: training, coding, decoding check, files, the bound."""

import math

import numpy as np
import pytest
import torch
from subspace_data import data, net, small_cnn
from torch import nn

from pacbayes.bounds import compression_bound
from pacbayes.errors import InputError, ModelLoadError, PacBayesError
from pacbayes.families.settings import SubspaceSettings
from pacbayes.models import zero_one_error
from pacbayes.subspace import (
    SubspaceModel,
    compress_subspace_model,
    finetune_quantised,
    fit_subspace,
    is_subspace_file,
    load_subspace_model,
    save_subspace_model,
    subspace_bound,
    train_subspace_model,
)
from pacbayes.subspace.coding import decode_message
from pacbayes.subspace.compressed import compress
from pacbayes.subspace.quantisation import make_levels


@pytest.fixture(scope="module")
def compressed():
    x, y = data()
    return train_subspace_model(
        net(), x, y, SubspaceSettings(dim=24, levels=(3, 6), epochs=4, lr=0.1, qat_epochs=3), seed=3
    )


def test_training_is_reproducible_and_learns(compressed):
    x, y = data()
    again = train_subspace_model(
        net(), x, y, SubspaceSettings(dim=24, levels=(3, 6), epochs=4, lr=0.1, qat_epochs=3), seed=3
    )
    assert again.message == compressed.message and again.code_bits == compressed.code_bits
    assert compressed.train_error < 0.4  # chance is ~0.67 for 3 balanced classes
    assert compressed.configurations == 2 * 3  # level counts x fine-tuning epochs, each a candidate


def test_decoded_model_is_codebook_values_and_reproduces_the_recorded_error(compressed):
    x, y = data()
    codebook, symbols = decode_message(
        compressed.message, compressed.code_bits, compressed.model.dim, compressed.levels
    )
    values = codebook[symbols]
    assert np.array_equal(compressed.decoded_z(), values)
    assert len(set(values.tolist())) <= compressed.levels
    assert zero_one_error(compressed.decode(), x, y) == compressed.train_error


def test_bound_record(compressed):
    x, y = data()
    xt, yt = data(seed=1)
    (result,) = subspace_bound(compressed, x, y, delta=0.05, test=(xt, yt))
    expected = compression_bound(compressed.train_error, compressed.code_bits, len(x), 0.05, compressed.configurations)
    assert result.name == "subspace" and result.certified
    assert result.certifies.startswith("the decoded compressed model")
    assert result.value == expected["value"]
    assert result.details["kl_nats"] == pytest.approx(compressed.code_bits * math.log(2) + math.log(6), rel=1e-14)
    assert result.details["best_form"] in ("occam", "catoni", "pac-bayes-kl")
    assert result.details["decoding_check"].startswith("passed")
    assert sum(result.delta.values()) <= 0.05
    assert 0.0 <= result.details["test_error"] <= 1.0
    (wider,) = subspace_bound(compressed, x, y, delta=0.05, extra_configurations=10)
    assert wider.details["kl_nats"] == pytest.approx(result.details["kl_nats"] + math.log(10), rel=1e-14)
    assert wider.value > result.value


def test_file_round_trip(compressed, tmp_path):
    x, y = data()
    path = tmp_path / "model.pt"
    save_subspace_model(compressed, path)
    assert is_subspace_file(path)
    loaded = load_subspace_model(path, net())
    assert loaded.message == compressed.message and loaded.code_bits == compressed.code_bits
    assert (
        subspace_bound(path, x, y, delta=0.05, module=net())[0].value
        == subspace_bound(compressed, x, y, delta=0.05)[0].value
    )


def test_files_of_another_architecture_or_kind_are_refused(compressed, tmp_path):
    path = tmp_path / "model.pt"
    save_subspace_model(compressed, path)
    with pytest.raises(ModelLoadError):
        load_subspace_model(path, nn.Sequential(nn.Linear(8, 17), nn.Tanh(), nn.Linear(17, 3)))
    other = tmp_path / "weights.pt"
    torch.save({"weight": torch.ones(2)}, other)
    assert not is_subspace_file(other)
    with pytest.raises(ModelLoadError):
        load_subspace_model(other, net())
    with pytest.raises(ModelLoadError):
        load_subspace_model(tmp_path / "missing.pt", net())
    with pytest.raises(InputError):
        subspace_bound(path, *data(), delta=0.05)


def test_a_file_whose_theta0_is_not_the_seeded_one_is_refused(compressed, tmp_path):
    path = tmp_path / "model.pt"
    save_subspace_model(compressed, path)
    content = torch.load(path, weights_only=True)
    content["theta0"] = content["theta0"] + 1e-3  # e.g. trained weights passed off as theta0
    torch.save(content, path)
    with pytest.raises(ModelLoadError, match="theta0"):
        load_subspace_model(path, net())


def test_decoding_check_catches_a_wrong_recorded_error(compressed):
    x, y = data()
    saved = compressed.train_error
    try:
        compressed.train_error = saved + 1.0 / len(x)
        with pytest.raises(PacBayesError, match="decoding check"):
            subspace_bound(compressed, x, y, delta=0.05)
    finally:
        compressed.train_error = saved


def test_single_logit_models_and_label_checks():
    x, y3 = data(n=300)
    y = (y3 == 0).long()
    model = train_subspace_model(net(1), x, y, SubspaceSettings(dim=10, levels=(4,), epochs=2, qat_epochs=0), seed=0)
    assert 0.0 <= subspace_bound(model, x, y, delta=0.1)[0].value <= 1.0
    with pytest.raises(InputError):
        subspace_bound(model, x, y3, delta=0.1)
    with pytest.raises(InputError):
        train_subspace_model(net(1), x, y3, SubspaceSettings(dim=10, levels=(4,), epochs=1), seed=0)


def test_distillation_uses_the_teacher_but_not_its_weights_as_theta0():
    x, y = data(n=300)
    teacher = net()
    plain = train_subspace_model(teacher, x, y, SubspaceSettings(dim=10, levels=(4,), epochs=1, qat_epochs=0), seed=0)
    distilled = train_subspace_model(
        teacher, x, y, SubspaceSettings(dim=10, levels=(4,), epochs=1, qat_epochs=0, distill=True), seed=0
    )
    assert torch.equal(plain.model.theta0, distilled.model.theta0)
    assert plain.message != distilled.message


def test_wrapper_in_the_users_own_training_loop():
    x, y = data(n=300)
    model = SubspaceModel(net(), dim=16, seed=5)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(30):
        loss = nn.functional.cross_entropy(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert model.z.abs().sum() > 0
    compressed = compress_subspace_model(model, x, y, levels=(2, 5), qat_epochs=0, extra_configurations=4)
    assert compressed.configurations == 8
    tuned = compress_subspace_model(model, x, y, levels=(2, 5), qat_epochs=3, extra_configurations=4)
    assert tuned.configurations == 2 * 3 * 4
    (result,) = subspace_bound(compressed, x, y, delta=0.05)
    assert result.details["train_error"] == compressed.train_error
    assert result.details["configurations"] == 8


@pytest.mark.heavy
def test_mnist_binary_bound_is_non_vacuous():
    """The example's setting (about a minute on one CPU thread): bound well below chance."""
    from pacbayes.data import binarise, load_dataset

    train = binarise(load_dataset("mnist-embedded", split="train"))
    test = binarise(load_dataset("mnist-embedded", split="test"))
    model = train_subspace_model(small_cnn(1), train.x, train.labels, SubspaceSettings(dim=500, epochs=15), seed=0)
    (result,) = subspace_bound(model, train.x, train.labels, delta=0.05, test=(test.x, test.labels))
    assert result.details["decoding_check"].startswith("passed")
    assert result.details["test_error"] <= result.value < 0.4


def test_the_kept_candidate_is_the_best_of_every_level_count_and_epoch():
    """The selection over (level count, epoch) against a by-hand replay of the same candidates."""
    x, y = data(n=300)
    fit = {"epochs": 3, "lr": 0.1}
    compressed = train_subspace_model(net(), x, y, SubspaceSettings(dim=16, levels=(2, 4), qat_epochs=3, **fit), seed=5)
    trained = SubspaceModel(net(), dim=16, seed=5)
    fit_subspace(trained, x, y, seed=5, **fit)
    z = trained.z.detach().clone()
    scores = []
    for count in (2, 4):
        with torch.no_grad():
            trained.z.copy_(z)

        def score(codebook, symbols):
            candidate = compress(trained, codebook, symbols)
            error = zero_one_error(candidate.decode(), x, y)
            trained.set_quantised(None)
            scores.append(compression_bound(error, candidate.code_bits, len(x), 0.05, 6)["value"])

        finetune_quantised(trained, x, y, make_levels(z.numpy(), count), epochs=3, lr=0.02, seed=5, on_epoch=score)
    assert len(scores) == 6
    kept = compression_bound(compressed.train_error, compressed.code_bits, len(x), 0.05, 6)["value"]
    assert kept == pytest.approx(min(scores), abs=1e-12)
