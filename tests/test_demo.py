"""The demo's model file: a torch.export program that loads back to the same function and certifies."""

import warnings

import pytest
import torch

from pacbayes.certification import CertifyOptions, certify
from pacbayes.data import binarise, load_dataset, take
from pacbayes.demo import demo_network, save_exported, train_to_zero_error
from pacbayes.models import as_plain_sequential, load_model, model_file_kind


def test_saved_demo_network_is_an_export_program_equal_to_the_network(tmp_path):
    torch.manual_seed(3)
    model = demo_network(width=16)
    x = torch.rand(7, 1, 28, 28)
    path = tmp_path / "model.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecation warning: TorchScript is not written any more
        save_exported(model, x[:2], str(path))
    assert model_file_kind(path) == "export"
    loaded = load_model(path)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))  # any batch size: 7 was never seen at export time
        plain = as_plain_sequential(loaded, example_x=x[:4])
        assert torch.equal(plain(x), model(x))  # the analytic kernel can read its layers
    assert [type(layer).__name__ for layer in plain] == ["Flatten", "Linear", "ReLU", "Linear", "ReLU", "Linear"]


def test_exported_file_certifies_like_the_network(tmp_path):
    torch.manual_seed(4)
    train = take(binarise(load_dataset("mnist-embedded", split="train")), 30, seed=4)
    test = take(load_dataset("mnist-embedded", split="test"), 60, seed=4)
    model = demo_network(width=32)
    train_to_zero_error(model, train, seed=4, quiet=True)
    save_exported(model, train.x[:2], str(tmp_path / "model.pt"))
    direct = certify(model, train, test, CertifyOptions())
    from_file = certify(load_model(tmp_path / "model.pt"), train, test, CertifyOptions())
    assert from_file.train_error == direct.train_error == 0.0
    assert from_file.test_error == direct.test_error
    assert from_file.values == pytest.approx(direct.values, rel=1e-12)
