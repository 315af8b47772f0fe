"""`pacbayes data info DATA`: JSON contract and the one-line error."""

import json

import numpy as np
from click.testing import CliRunner

from pacbayes.cli import main


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_info_reports_what_was_read(tmp_path):
    x = np.arange(5 * 2 * 3, dtype=np.uint8).reshape(5, 2, 3) * 8
    np.savez(tmp_path / "d.npz", x=x, y=np.array([4, 9, 9, 4, 9]))
    result = run("data", "info", str(tmp_path / "d.npz"), "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["n"] == 5 and payload["shape"] == [1, 2, 3]
    assert payload["classes"] == [4, 9] and payload["class_counts"] == [2, 3]
    assert payload["x_min"] == 0.0 and payload["x_max"] == np.float32(x.max()) / np.float32(255)
    assert payload["info"]["format"] == "npz"
    text = run("data", "info", "mnist-embedded:test")
    assert text.exit_code == 0 and "mnist-embedded: 5000 examples of shape (1, 28, 28)" in text.output


def test_info_missing_file_is_one_line_exit_2(tmp_path):
    result = run("data", "info", str(tmp_path / "nope.npz"))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "no such file or directory" in result.stderr


def test_export_equals_what_the_library_loads(tmp_path):
    from pacbayes.data import load_dataset, take

    x_path, y_path = tmp_path / "x.npy", tmp_path / "y.npy"
    result = run(
        "data",
        "export",
        "mnist-embedded:test",
        "--m",
        "30",
        "--seed",
        "3",
        "-o",
        str(x_path),
        "--labels",
        str(y_path),
        "--json",
    )
    assert result.exit_code == 0, result.output
    expected = take(load_dataset("mnist-embedded", split="test"), 30, seed=3)
    x, y = np.load(x_path), np.load(y_path)
    assert x.dtype == np.float64 and x.shape == (30, 1, 28, 28)
    np.testing.assert_array_equal(x, expected.x.double().numpy())
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, expected.labels.numpy())
    assert json.loads(result.stdout) == {"x": str(x_path), "labels": str(y_path), "n": 30, "shape": [30, 1, 28, 28]}


def test_export_binarise_flatten_gives_signs(tmp_path):
    from pacbayes.data import binarise, load_dataset, take

    x_path, y_path = tmp_path / "x", tmp_path / "y.labels"  # written to exactly these paths
    result = run(
        "data",
        "export",
        "mnist-embedded:train",
        "--m",
        "40",
        "--binarise",
        "--flatten",
        "-o",
        str(x_path),
        "--labels",
        str(y_path),
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x", "y.labels"]
    expected = take(binarise(load_dataset("mnist-embedded", split="train")), 40, seed=0)
    x, y = np.load(x_path), np.load(y_path)
    assert x.dtype == np.float64 and x.shape == (40, 784)
    np.testing.assert_array_equal(x, expected.x.reshape(40, -1).double().numpy())
    assert y.dtype == np.float64 and set(np.unique(y)) == {-1.0, 1.0}
    np.testing.assert_array_equal(y, expected.labels.numpy() * 2.0 - 1.0)


def test_export_bad_output_is_one_line_exit_2(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    cases = [
        ["-o", str(tmp_path), "--labels", str(tmp_path / "y.npy")],  # an existing directory
        ["-o", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "file" / "y.npy")],  # under a file
        ["-o", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "x.npy")],  # the same path twice
        ["-o", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"), "--m", "0"],
    ]
    for args in cases:
        result = run("data", "export", "mnist-embedded:test", *args)
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("pacbayes: error: "), result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
