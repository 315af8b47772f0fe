"""examples/certify_own_model.py runs at small sizes, and certified_subset is the training set certify uses."""

import json

import pytest
import torch
from scripts import load_script

from pacbayes.certification import CertifyOptions, prepare_data
from pacbayes.data import load_dataset, take
from pacbayes.data.subsets import certified_subset


def load_example():
    return load_script("examples/certify_own_model.py")


def test_example_trains_on_the_certified_subset_and_certifies(tmp_path):
    out = tmp_path / "report.json"
    report = load_example().main(["--m", "40", "--width", "32", "--test-points", "100", "--out", str(out)])
    assert report.m == 40 and report.train_error == 0.0  # it fits exactly the points certify measured
    assert report.data["train"]["subset"] == {"m": 40, "seed": 0, "of": 5000}
    assert report.bound("marginal-certified").certified
    assert json.loads(out.read_text())["bounds"][1]["name"] == "marginal-certified"


@pytest.mark.parametrize(
    "outputs, options",
    [
        (1, CertifyOptions(m=30, seed=3)),
        (1, CertifyOptions(m=25, seed=4, negative_classes=(0, 1, 2), corrupt=0.2)),
        (10, CertifyOptions(m=20, seed=5)),
        (1, CertifyOptions()),
    ],
)
def test_certified_subset_is_what_certify_prepares(outputs, options):
    train = take(load_dataset("mnist-embedded", split="train"), 200, seed=0)
    test = take(load_dataset("mnist-embedded", split="test"), 20, seed=0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, outputs))
    prepared = prepare_data(model, train, test, options)[0]
    subset = certified_subset(
        train,
        m=options.m,
        seed=options.seed,
        binary=outputs == 1,
        negative_classes=options.negative_classes,
        corrupt=options.corrupt,
    )
    assert torch.equal(subset.x, prepared.x) and torch.equal(subset.labels, prepared.labels)
    assert subset.info == prepared.info
