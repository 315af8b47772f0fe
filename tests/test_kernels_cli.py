"""`pacbayes kernel`: JSON contract, the written matrix, Monte Carlo from a model file, errors."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from pacbayes.cli import main
from pacbayes.kernels import ConvolutionalNNGP, FullyConnectedNNGP


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_fc_kernel_json(tmp_path):
    x = np.random.default_rng(0).normal(size=(20, 6))
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "K.npy"
    result = run(
        "kernel",
        tmp_path / "x.npy",
        "--arch",
        "fc",
        "--depth",
        2,
        "--activation",
        "erf",
        "--sigma-w",
        1.5,
        "--sigma-b",
        "0.1,0.2,0.3",
        "-o",
        out,
        "--json",
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    expected = FullyConnectedNNGP(2, "erf", 1.5, [0.1, 0.2, 0.3]).matrix(x).numpy()
    np.testing.assert_array_equal(np.load(out), expected)
    assert payload["shape"] == [20, 20] and payload["seconds"] >= 0
    assert payload["min_eigenvalue"] == pytest.approx(np.linalg.eigvalsh(expected)[0], rel=1e-9)
    assert payload["kernel"]["activation"] == "erf"


def test_cnn_kernel_from_npz_images(tmp_path):
    x = np.random.default_rng(1).normal(size=(5, 6, 6))
    np.savez(tmp_path / "x.npz", x=x)
    out = tmp_path / "K.npy"
    result = run(
        "kernel",
        tmp_path / "x.npz",
        "--arch",
        "cnn",
        "--depth",
        2,
        "--pooling",
        "gap",
        "--kernel-size",
        3,
        "--stride",
        2,
        "--sigma-b",
        0.1,
        "-o",
        out,
        "--json",
    )
    assert result.exit_code == 0, result.output
    expected = ConvolutionalNNGP([(None, 3, 2, 1)] * 2, "relu", 1.0, 0.1, "gap").matrix(x[:, None])
    np.testing.assert_allclose(np.load(out), expected.numpy(), rtol=1e-14)
    assert json.loads(result.stdout)["kernel"]["pooling"] == "gap"


@pytest.mark.parametrize("projection", [None, 2])
def test_monte_carlo_kernel_of_a_model_file(tmp_path, projection):
    x = np.random.default_rng(2).normal(size=(6, 4))
    np.save(tmp_path / "x.npy", x)
    torch.jit.save(
        torch.jit.script(nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 1))), str(tmp_path / "model.pt")
    )
    result = run(
        "kernel",
        tmp_path / "x.npy",
        "--model",
        tmp_path / "model.pt",
        "--samples",
        50,
        "-o",
        tmp_path / "K.npy",
        "--json",
        *([] if projection is None else ["--kernel-projection", projection]),
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["kernel"]["kind"] == "monte-carlo" and payload["diagnostics"]["rank"] == 6
    assert payload["kernel"]["projection"] == projection
    assert payload["diagnostics"]["features_per_initialisation"] == (5 if projection is None else 2)
    assert np.load(tmp_path / "K.npy").shape == (6, 6)


@pytest.mark.parametrize(
    "extra,data",
    [
        (["--depth", "0"], np.ones((3, 2))),
        (["--sigma-w", "0"], np.ones((3, 2))),
        (["--sigma-b", "-1"], np.ones((3, 2))),
        (["--sigma-b", "a,b"], np.ones((3, 2))),
        ([], np.array([[1.0, np.nan]])),
        (["--arch", "cnn"], np.ones((3, 2))),
        (["--kernel-projection", "0"], np.ones((3, 2))),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, extra, data):
    np.save(tmp_path / "x.npy", data)
    result = run("kernel", tmp_path / "x.npy", "-o", tmp_path / "K.npy", *extra)
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1 and "error" in result.output


def test_missing_inputs_file(tmp_path):
    result = run("kernel", tmp_path / "nope.npy", "-o", tmp_path / "K.npy")
    assert result.exit_code == 2 and "cannot read" in result.output
