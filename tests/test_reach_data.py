"""`pacbayes certify` end to end on real CIFAR-10 and Fashion-MNIST files in their original formats.

The fixtures are small slices cut by tests/fixtures/make_reach_fixtures.py: CIFAR-10 python batches (50
training and 20 test images) and Fashion-MNIST gzip idx files (60 and 20), every class present. Each of the
three example architectures (examples/image_models.py) is trained to zero training error on the binarised
training split and certified through the CLI from its state_dict.
"""

import json
import pathlib
import pickletools

import pytest
import torch
from click.testing import CliRunner
from scripts import ROOT, load_script

from pacbayes.cli import main
from pacbayes.data import binarise, load_dataset
from pacbayes.demo import train_to_zero_error
from pacbayes.device import threads_for_network
from pacbayes.models import classification_error

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
DATA = {
    "cifar-10": (FIXTURES / "cifar-10-slice", {"channels": 3, "size": 32}, "cifar-10 python batches", 50),
    "fashion-mnist": (FIXTURES / "fashion-mnist-slice", {"channels": 1, "size": 28}, "idx", 60),
}
MONTE_CARLO_SAMPLES = 16
ARCHITECTURES = {  # class, its widths, the kernel kind certify picks, extra certify options
    "ConvBnMaxPool": ({"width": 4}, "monte-carlo", ["--kernel-samples", str(MONTE_CARLO_SAMPLES)]),
    "ResidualAvgPool": ({"width": 16, "pool": 4}, "nngp-graph", ["--kernel-type", "analytic"]),  # not a timed choice
    "Mlp": ({"width": 64}, "nngp-fc", []),
}
EXAMPLE = ROOT / "examples" / "image_models.py"


@pytest.fixture(scope="module")
def models():
    return load_script("examples/image_models.py")


def trained_state_dict(models, architecture: str, kwargs: dict, train, path: pathlib.Path) -> pathlib.Path:
    """Train ``architecture(**kwargs)`` to zero error on ``train`` (checked here too) and save its state_dict."""
    torch.manual_seed(0)
    model = getattr(models, architecture)(**kwargs)
    with threads_for_network(model):
        train_to_zero_error(model, train, seed=0, lr=1e-2, batch_size=25, max_epochs=400, quiet=True)
    assert classification_error(model.eval(), train) == 0.0
    torch.save(model.state_dict(), path)
    return path


@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
@pytest.mark.parametrize("dataset", list(DATA))
def test_certify_real_format_slice(models, dataset, architecture, tmp_path):
    root, shape, data_format, m = DATA[dataset]
    widths, kind, extra = ARCHITECTURES[architecture]
    kwargs = {**shape, **widths}
    train = binarise(load_dataset(str(root), split="train"))  # classes 0-4 -> 0, 5-9 -> 1: certify's default
    weights = trained_state_dict(models, architecture, kwargs, train, tmp_path / "weights.pt")
    result = CliRunner().invoke(
        main,
        [
            "certify",
            str(weights),
            "--architecture",
            f"{EXAMPLE}:{architecture}",
            "--kwargs",
            json.dumps(kwargs),
            "--train",
            f"{root}:train",
            "--test",
            f"{root}:test",
            "--json",
            "--quiet",
            *extra,
        ],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["train_error"] == 0.0 and payload["m"] == m
    assert payload["data"]["train"]["format"] == data_format
    certified = [b for b in payload["bounds"] if b["certified"]]
    assert [b["name"] for b in certified] == ["marginal-certified"]
    assert all(0.0 <= b["value"] <= 1.0 for b in certified)
    assert certified[0]["log_evidence"] < 0.0
    kernel = payload["diagnostics"]["marginal"]["kernel"]
    assert kernel["kind"] == kind
    if kind == "monte-carlo":
        estimate = kernel["estimate"]
        assert kernel["samples"] == MONTE_CARLO_SAMPLES and estimate["estimator"] == "readout"
        assert estimate["rank"] == m and estimate["full_rank"]  # samples x features >= m
        assert 0.0 < estimate["standard_error_mean_relative"] <= estimate["standard_error_max_relative"] < 1.0
        assert f"rank {m}" in kernel["summary"]
    else:
        assert "samples" not in kernel and "analytic NNGP" in kernel["summary"]


def pickle_globals(path: pathlib.Path) -> set:
    """The (module, name) pairs a pickle file names, read from its opcodes without unpickling it."""
    names = set()
    for opcode, argument, _ in pickletools.genops(path.read_bytes()):
        if opcode.name == "GLOBAL":
            names.add(tuple(str(argument).split(" ")))
    return names


def test_cifar_slice_is_in_the_original_python_2_layout():
    batches = FIXTURES / "cifar-10-slice" / "cifar-10-batches-py"
    expected = {("numpy.core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype")}
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        assert pickle_globals(batches / name) == expected, name
    assert pickle_globals(batches / "batches.meta") == set()


@pytest.mark.parametrize("dataset", list(DATA))
def test_slices_hold_every_class_in_both_splits(dataset):
    root, _, _, m = DATA[dataset]
    train, test = (load_dataset(str(root), split=split) for split in ("train", "test"))
    assert len(train) == m and len(test) == 20
    for split in (train, test):
        counts = torch.bincount(split.labels, minlength=10)
        assert (counts == counts[0]).all() and counts[0] > 0
