"""Each example's --quick mode runs end to end, prints its numbers and writes its PNG."""

import math

import numpy as np
import pytest
import torch

from scripts import load_script


@pytest.fixture(autouse=True)
def one_thread():
    """The examples' many small tensor operations run fastest, and steadiest on a shared CPU, on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def example(name):
    return load_script(f"examples/{name}.py")


def test_sgd_bayes_quick(tmp_path, capsys):
    out = tmp_path / "sgd.png"
    result = example("sgd_bayes").main(["--quick", "--out", str(out)])
    assert out.stat().st_size > 10_000
    for name, block in result["result"]["targets"].items():
        assert block["sgd"]["failed"] == 0 and sum(block["sgd"]["counts"].values()) == 500, name
        for low, high in block["certified"].values():
            assert low <= high <= 0.0
        ps = block["accepted"] / 320_000
        assert ps < 50 * math.exp(block["ep_log_ps"]) + 1e-4  # rejection and EP agree on P(S)'s scale
    assert "Pearson r" in capsys.readouterr().out


def test_sgd_bayes_helpers_against_brute_force():
    sb = example("sgd_bayes")
    counts = {b"a": 3, b"b": 1, b"c": 2}
    samples = [k for k, c in counts.items() for _ in range(c)]
    pairs = [(i, j) for i in range(6) for j in range(6) if i != j]
    brute = sum(samples[i] == samples[j] for i, j in pairs) / len(pairs)
    assert sb.collision_probability(counts) == pytest.approx(brute)
    labels = torch.tensor([True, False, True, True, False, False, True, False, True])
    key = bytes(np.packbits(labels.numpy()))
    assert torch.equal(sb.key_signs(key, 9) > 0, labels)
    assert sb.test_error(key, ~labels) == 1.0 and sb.test_error(key, labels) == 0.0


def test_double_descent_quick(tmp_path, capsys):
    out = tmp_path / "dd.png"
    rows = example("double_descent").main(["--quick", "--out", str(out)])
    assert out.stat().st_size > 10_000
    narrow, wide = rows
    assert narrow["train_error"] > 0 and "marginal-certified" not in narrow["bounds"]  # cannot interpolate
    assert wide["train_error"] == 0 and "marginal-certified" in wide["bounds"]
    for row in rows:
        assert {"dziugaite-roy", "subspace"} <= set(row["bounds"])
        assert all(0.0 <= value <= 1.0 for value in row["bounds"].values())
    assert "width" in capsys.readouterr().out


def test_label_corruption_quick(tmp_path):
    out = tmp_path / "lc.png"
    rows = example("label_corruption").main(["--quick", "--quiet", "--out", str(out)])
    assert out.stat().st_size > 10_000
    clean, noisy = rows
    assert noisy["log_evidence_certified"] < clean["log_evidence_certified"]  # corrupted labels: a smaller P(S)
    assert noisy["bound_certified"] > clean["bound_certified"]


def test_simplicity_bias_quick(tmp_path):
    out = tmp_path / "sb.png"
    results = example("simplicity_bias").main(["--quick", "--out", str(out)])
    assert out.stat().st_size > 10_000 and sorted(results) == [2, 3]
