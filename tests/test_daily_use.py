"""Daily use: the monitor's final report at a nonzero training error, its history as files, TensorBoard
before a bound applies, data scaling and label mistakes, and a why-vacuous line for every family."""

import csv
import json
import math
import sys
import types
import warnings

import numpy as np
import pytest
import torch
from tasks import MnistTask

from pacbayes.bounds import compression_bound, marginal_likelihood_bound
from pacbayes.certification import CertifyOptions, certify, prepare_data
from pacbayes.data import from_arrays, load_dataset
from pacbayes.demo import demo_network, train_to_zero_error
from pacbayes.errors import DataWarning, InputError, one_line
from pacbayes.families.marginal import why_vacuous as marginal_why_vacuous
from pacbayes.monitor import BoundMonitor
from pacbayes.report import render_text
from pacbayes.subspace.bound import why_vacuous as subspace_why_vacuous


@pytest.fixture(scope="module")
def task():
    """40 training points, a narrow demo network: enough for every check here."""
    return MnistTask(m=40, n_test=120, seed=3, width=16)


@pytest.fixture(scope="module")
def untrained(task):
    """The demo network at its random start: it errs on part of S, so the marginal bound does not apply."""
    torch.manual_seed(7)
    return demo_network(width=task.width)


def test_final_at_a_nonzero_training_error_keeps_the_holdout_certificate(data, untrained):
    train, test = data
    monitor = BoundMonitor(untrained, train, test=test, max_checkpoints=2)
    report = monitor.final(untrained)
    assert report.train_error > 0
    assert "marginal" in report.not_applying and "realisable" in report.not_applying["marginal"]
    assert report.bounds == [] and 0.0 < report.baselines["holdout_bound"] < 1.0
    assert report.gate_failures(1.0) == [("marginal", None)]  # a family that does not apply passes no gate
    record = report.to_dict()
    assert record["not_applying"] == report.not_applying and record["delta_ledger"]["marginal"] == {}
    assert "marginal does not apply to this model: training error is" in render_text(report)
    with pytest.raises(InputError, match="realisable"):  # certify itself still refuses it by default
        certify(untrained, train, test, CertifyOptions())


def test_history_is_written_as_json_and_csv(data, untrained, trained, tmp_path):
    train, test = data
    monitor = BoundMonitor(untrained, train, test=test, every=1, max_checkpoints=3)
    monitor.step(untrained)
    monitor.step(trained)
    monitor.history_to_json(str(tmp_path / "history.json"))
    monitor.history_to_csv(str(tmp_path / "history.csv"))
    records = json.loads((tmp_path / "history.json").read_text())
    assert [r["step"] for r in records] == [1, 2] and records[1]["train_error"] == 0.0
    assert set(records[0]) == {"step", "train_error", "test_error", "bounds", "applies", "seconds", "notes"}
    assert records[0]["applies"] == {"marginal-ep": False, "holdout": True}
    assert [b["name"] for b in records[1]["bounds"]] == ["marginal-ep", "holdout"]
    with open(tmp_path / "history.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [float(row["holdout"]) for row in rows] == pytest.approx([r.values["holdout"] for r in monitor.history])
    assert rows[0]["marginal-ep"] == "" and rows[0]["marginal-ep applies"] == "False"  # no flat value before it applies
    assert float(rows[1]["marginal-ep"]) == pytest.approx(monitor.history[1].values["marginal-ep"])
    assert float(rows[0]["train_error"]) == monitor.history[0].train_error > 0


class FakeWriter:
    """A SummaryWriter stand-in recording (tag, value, step)."""

    def __init__(self):
        self.scalars = []

    def add_scalar(self, tag, value, global_step=None):
        self.scalars.append((tag, value, global_step))

    def flush(self):
        pass


def test_tensorboard_logs_a_bound_only_once_it_applies(data, untrained, trained, monkeypatch):
    if "torch.utils.tensorboard" not in sys.modules:  # the logger needs only SummaryWriter's name to import
        try:
            import torch.utils.tensorboard  # noqa: F401
        except ImportError:
            monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=None))
    from pacbayes.integrations.tensorboard import TensorBoardLogger

    writer = FakeWriter()
    train, test = data
    monitor = BoundMonitor(
        untrained, train, test=test, every=1, max_checkpoints=3, callback=TensorBoardLogger(writer=writer)
    )
    monitor.step(untrained)
    monitor.step(trained)
    logged = {(tag, step) for tag, _, step in writer.scalars}
    assert ("pacbayes/bounds/holdout", 1) in logged and ("pacbayes/bounds/holdout", 2) in logged
    assert ("pacbayes/bounds/marginal-ep", 1) not in logged  # does not apply at step 1: nothing written
    assert ("pacbayes/bounds/marginal-ep", 2) in logged


def image_set(x, labels, name):
    return from_arrays(x, np.asarray(labels), name=name, info={})


def test_float_pixels_above_one_warn_and_uint8_pixels_do_not():
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, size=(20, 1, 4, 4))
    labels = np.arange(20) % 2
    with pytest.warns(DataWarning, match=r"raw\.npz: float inputs reach 25\d.*divide them by 255"):
        image_set(raw.astype(np.float32), labels, "raw.npz")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image_set(raw.astype(np.uint8), labels, "pixels.npz")  # divided by 255: no warning
        image_set(raw.astype(np.float32) / 255.0, labels, "scaled.npz")
        image_set(rng.standard_normal((20, 5)).astype(np.float32) * 3, labels, "standardised.npz")


def test_train_and_test_scaled_apart_warn_naming_each_scaling():
    rng = np.random.default_rng(1)
    pixels = rng.integers(1, 256, size=(40, 1, 4, 4))
    labels = np.arange(40) % 2
    with pytest.warns(DataWarning):
        train = image_set(pixels[:20].astype(np.float32), labels[:20], "train.npz")
    test = image_set(pixels[20:].astype(np.uint8), labels[20:], "test.npz")
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 1))
    with pytest.warns(DataWarning) as caught:
        prepare_data(model, train, test, CertifyOptions())
    message = str(caught[0].message)
    assert "x apart" in message and "train.npz was scaled by float values taken as given" in message
    assert "test.npz by integer values divided by 255" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prepare_data(model, image_set(pixels[:20].astype(np.uint8), labels[:20], "a"), test, CertifyOptions())


def test_cli_prints_a_data_warning_as_one_line(tmp_path):
    from click.testing import CliRunner

    from pacbayes.cli import main

    path = tmp_path / "floats.npz"
    np.savez(path, x=np.full((6, 4), 200.0, dtype=np.float32), y=np.arange(6) % 2)
    result = CliRunner().invoke(main, ["data", "info", str(path)])
    assert result.exit_code == 0
    warned = [line for line in result.stderr.splitlines() if line.startswith("pacbayes: warning: ")]
    assert len(warned) == 1 and "floats.npz: float inputs reach 200" in warned[0]
    assert "DataWarning" not in result.stderr and "warnings.warn" not in result.stderr


def test_string_labels_name_the_label_map_fix():
    with pytest.raises(InputError, match=r"labels are strings .*numpy\.unique\(y, return_inverse=True\)"):
        from_arrays(np.zeros((4, 3), np.float32), np.array(["cat", "dog", "cat", "dog"]), name="pets", info={})


def test_a_pickled_tensor_dataset_is_refused_in_one_clean_line(tmp_path):
    path = tmp_path / "data.pt"
    torch.save(torch.utils.data.TensorDataset(torch.rand(6, 3), torch.arange(6) % 2), path)
    with pytest.raises(InputError) as refused:
        load_dataset(str(path))
    message = str(refused.value)
    assert "TensorDataset" in message and "torch.save(ds.tensors, path)" in message
    assert "\x1b" not in message and "\n" not in message


def test_quoted_third_party_text_loses_escapes_and_is_cut_between_words():
    text = one_line("load failed, \x1b[1mdo those steps only if you trust it\x1b[0m. " * 10, limit=60)
    assert "\x1b" not in text and "[1m" not in text and text.endswith("...")
    assert text[:-3].split(" ")[-1] in "load failed, do those steps only if you trust it.".split(" ")
    assert len(text) <= 63


@pytest.mark.parametrize(
    "log_evidence, m, words",
    [
        (-80.0, 100, "less probability than coin flips"),
        (-62.0, 100, "together with the confidence term"),
        (-1.0, 5, "the confidence term alone"),
    ],
)
def test_marginal_bound_worse_than_chance_says_why(log_evidence, m, words):
    value = marginal_likelihood_bound(log_evidence, m, 0.025)
    assert value >= 0.5
    note = marginal_why_vacuous(log_evidence, m, 0.025, "langford", 2)
    assert words in note and f"{value:.3f}" in note and "chance 0.500" in note


def test_marginal_note_is_empty_below_chance_and_uses_the_class_count():
    assert marginal_why_vacuous(-10.0, 100, 0.025, "langford", 2) == ""
    ln_p = -1.2 * 99  # 1.2 nats per point: above ln 2, below ln 10
    assert marginal_why_vacuous(ln_p, 100, 0.025, "langford", 2)
    assert marginal_why_vacuous(ln_p, 100, 0.025, "langford", 10) == ""
    assert marginal_likelihood_bound(ln_p, 100, 0.025) < 0.9


def test_subspace_bound_worse_than_chance_blames_the_message_or_the_error():
    long_message = compression_bound(0.05, 2000, 500, 0.01, 3)
    assert "the message costs" in subspace_why_vacuous(long_message, 0.05, 500, 0.01, 2)
    bad_model = compression_bound(0.6, 20, 500, 0.01, 3)
    assert "errs on 0.600" in subspace_why_vacuous(bad_model, 0.6, 500, 0.01, 2)
    fine = compression_bound(0.1, 20, 500, 0.01, 3)
    assert fine["value"] < 0.5 and subspace_why_vacuous(fine, 0.1, 500, 0.01, 2) == ""


def test_a_vacuous_marginal_bound_is_explained_in_the_json_and_the_text(data, task):
    """Random labels on S: the trained net is refitted to them, and ln P(S) makes the bound vacuous."""
    train, test = data
    generator = torch.Generator().manual_seed(0)
    noise = train.derive(labels=torch.randint(0, 2, (len(train),), generator=generator))
    torch.manual_seed(0)
    model = demo_network(width=task.width)
    train_to_zero_error(model, noise, seed=0, quiet=True)
    report = certify(model, noise, test, CertifyOptions(delta=0.05))
    ep = report.bound("marginal-ep")
    assert ep.value >= 0.5 and math.isfinite(ep.log_evidence)
    assert ep.details["why_vacuous"] and "chance 0.500" in ep.details["why_vacuous"]
    assert report.to_dict()["bounds"][0]["details"]["why_vacuous"] == ep.details["why_vacuous"]
    assert f"marginal-ep is vacuous (no better than chance): {ep.details['why_vacuous']}" in render_text(report)
