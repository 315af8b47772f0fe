"""End-to-end `certify`: every model file kind, independent error checks, trends and bad input."""

import json
import math

import pytest
import torch
from click.testing import CliRunner
from tasks import MnistTask

from pacbayes.bounds import clean_distribution_bound, holdout_bound, marginal_likelihood_bound
from pacbayes.certification import CertifyOptions, certify, prepare_data
from pacbayes.cli import main
from pacbayes.data import Dataset, binarise, load_dataset, take
from pacbayes.demo import demo_network, run_demo, train_to_zero_error
from pacbayes.errors import InputError, ModelLoadError
from pacbayes.models import load_model

M = 80
WIDTH = 64


@pytest.fixture(scope="module")
def task():
    return MnistTask(m=M, n_test=400, seed=0, width=WIDTH)


def independent_error(model, x, labels):
    with torch.no_grad():
        predictions = [int(model(x[i : i + 1]).item() > 0) for i in range(len(x))]
    return sum(p != int(t) for p, t in zip(predictions, labels, strict=False)) / len(x)


def test_report_errors_match_an_independent_evaluation(data, trained):
    train, test = data
    report = certify(trained, train, test, CertifyOptions(seed=0))
    binary_test = binarise(test)
    assert report.train_error == 0.0
    assert report.test_error == pytest.approx(independent_error(trained, binary_test.x, binary_test.labels))
    assert report.m == M
    names = [b.name for b in report.bounds]
    assert names == ["marginal-ep", "marginal-certified"]
    certified = report.bounds[1]
    assert certified.certified and not report.bounds[0].certified
    # the certified bound is the formula evaluated at the certified ln P(S) with its delta share
    assert certified.value == pytest.approx(
        marginal_likelihood_bound(certified.log_evidence, M, certified.delta["pac-bayes (marginal)"]), rel=1e-12
    )
    assert certified.log_evidence <= report.diagnostics["marginal"]["certified"]["upper"]
    # one union bound: every delta in the ledger adds up to at most the user's delta
    spent = report.delta_ledger["hold-out (test-set bound for the model)"] + sum(
        report.delta_ledger["marginal"].values()
    )
    assert spent <= report.delta + 1e-15
    mistakes = round(report.test_error * len(test))
    assert report.baselines["holdout_bound"] == pytest.approx(
        holdout_bound(mistakes, len(test), report.delta_ledger["hold-out (test-set bound for the model)"])
    )
    assert 0.0 <= report.baselines["q_star_test_error_ep"] <= 1.0


def save_every_kind(model, directory):
    example = torch.zeros(1, 1, 28, 28)
    paths = {}
    paths["torchscript"] = directory / "scripted.pt"
    torch.jit.script(model).save(str(paths["torchscript"]))
    paths["export"] = directory / "exported.pt2"
    torch.export.save(torch.export.export(model, (example,)), str(paths["export"]))
    paths["state_dict"] = directory / "weights.pt"
    torch.save(model.state_dict(), str(paths["state_dict"]))
    paths["pickle"] = directory / "pickled.pt"
    torch.save(model, str(paths["pickle"]))
    return paths


def test_certify_cli_on_every_model_file_kind(data, trained, tmp_path):
    paths = save_every_kind(trained, tmp_path)
    common = ["--m", str(M), "--json", "--quiet", "--test", "mnist-embedded:test"]
    extra = {
        "torchscript": [],
        "export": [],
        "pickle": ["--trust-pickle"],
        "state_dict": ["--architecture", "pacbayes.demo:demo_network", "--kwargs", json.dumps({"width": WIDTH})],
    }
    values = {}
    for kind, path in paths.items():
        result = CliRunner().invoke(main, ["certify", str(path), *common, *extra[kind]])
        assert result.exit_code == 0, (kind, result.output)
        payload = json.loads(result.stdout)
        assert {"train_error", "test_error", "m", "delta", "bounds"} <= set(payload)
        assert payload["train_error"] == 0.0 and payload["m"] == M
        for entry in payload["bounds"]:
            assert {"name", "value", "certified", "log_evidence"} <= set(entry)
        values[kind] = payload
    # the same network through every file kind gives the same measured errors, kernel and bounds
    assert len({v["test_error"] for v in values.values()}) == 1
    assert {v["diagnostics"]["marginal"]["kernel"]["kind"] for v in values.values()} == {"nngp-fc"}
    assert len({tuple(v["diagnostics"]["marginal"]["kernel"]["layers"]) for v in values.values()}) == 1
    assert len({tuple((b["name"], b["value"]) for b in v["bounds"]) for v in values.values()}) == 1


def test_untrusted_pickle_is_refused(trained, tmp_path):
    path = tmp_path / "pickled.pt"
    torch.save(trained, str(path))
    with pytest.raises(ModelLoadError, match="trust-pickle"):
        load_model(str(path))


def test_demo_setting_bound_exceeds_test_error_and_is_not_vacuous(tmp_path):
    report, path, _ = run_demo(m=150, workdir=str(tmp_path), quiet=True)
    certified = [b for b in report.bounds if b.certified][0]
    assert report.train_error == 0.0
    assert report.test_error < certified.value < 1.0


def test_label_corruption_raises_the_bound(data):
    train, test = data
    values = {}
    for fraction in (0.0, 0.5):
        options = CertifyOptions(corrupt=fraction, seed=1)
        model = demo_network(width=WIDTH)
        torch.manual_seed(1)
        corrupted_train, _, _ = prepare_data(model, train, test, options)
        train_to_zero_error(model, corrupted_train, quiet=True, max_epochs=600)
        report = certify(model, train, test, options)
        values[fraction] = {b.name: b.value for b in report.bounds}
        if fraction > 0:
            assert "test_error_corrupted_labels" in report.baselines
            assert values[fraction]["marginal-certified-clean-labels"] == pytest.approx(
                clean_distribution_bound(values[fraction]["marginal-certified"], fraction)
            )
    assert values[0.5]["marginal-certified"] > values[0.0]["marginal-certified"]
    assert values[0.5]["marginal-ep"] > values[0.0]["marginal-ep"]


def test_nonzero_training_error_is_refused(data):
    train, test = data
    untrained = demo_network(width=WIDTH)
    with pytest.raises(InputError, match="zero training error"):
        certify(untrained, train, test)


def select_classes(ds: Dataset, keep: tuple) -> Dataset:
    """The examples of classes ``keep`` (indices 0..len(keep)-1 in that order)."""
    mask = torch.isin(ds.labels, torch.tensor(keep))
    index = {c: i for i, c in enumerate(keep)}
    labels = torch.tensor([index[int(v)] for v in ds.labels[mask]], dtype=torch.int64)
    return Dataset(ds.x[mask], labels, tuple(ds.classes[c] for c in keep), ds.name, dict(ds.info, classes=keep))


def test_multi_logit_model_gets_the_multi_class_marginal_bound():
    """A 3-logit net on digits 0-2: the marginal family runs the C-class bound, EP inside the certified
    sandwich's reach, Q*'s Gibbs error a probability, and the JSON keys unchanged plus ``classes``."""
    train = take(select_classes(load_dataset("mnist-embedded", split="train"), (0, 1, 2)), 24, seed=0)
    test = take(select_classes(load_dataset("mnist-embedded", split="test"), (0, 1, 2)), 40, seed=0)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 64), torch.nn.ReLU(), torch.nn.Linear(64, 3))
    train_to_zero_error(model, train, seed=0, quiet=True)
    report = certify(model, train, test, CertifyOptions(bounds=("marginal",)))
    bounds = {b.name: b for b in report.bounds}
    certified, ep = bounds["marginal-certified"], bounds["marginal-ep"]
    assert report.diagnostics["marginal"]["classes"] == 3 and certified.details["classes"] == 3
    upper = certified.details["log_evidence_upper"]
    assert certified.log_evidence <= ep.log_evidence + 1.0 and (upper is None or ep.log_evidence <= upper + 1.0)
    assert 0.0 < certified.value < 1.0 and certified.certified and not ep.certified
    assert 0.0 <= report.diagnostics["marginal"]["q_star_test_error_ep"] <= 1.0
    payload = report.to_dict()
    assert payload["diagnostics"]["marginal"]["classes"] == 3
    assert payload["diagnostics"]["marginal"]["kernel"]["kind"].startswith("nngp")


def test_overlapping_test_data_is_refused(data, trained):
    train, _ = data
    with pytest.raises(InputError):
        certify(trained, train, train)


@pytest.mark.parametrize(
    "options",
    [
        CertifyOptions(delta=0.0),
        CertifyOptions(delta=1.5),
        CertifyOptions(bounds=("nope",)),
        CertifyOptions(corrupt=1.5),
        CertifyOptions(m=1),
    ],
)
def test_bad_options_are_refused(data, trained, options):
    with pytest.raises(InputError):
        certify(trained, *data, options)


def test_cli_bad_inputs_are_one_line(trained, tmp_path):
    scripted = tmp_path / "model.pt"
    torch.jit.script(trained).save(str(scripted))
    corrupt_file = tmp_path / "corrupt.pt"
    corrupt_file.write_bytes(b"not a model at all")
    wrong_input = tmp_path / "wrong.pt"
    torch.jit.script(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(10, 1))).save(str(wrong_input))
    cases = [
        [str(corrupt_file)],
        [str(tmp_path / "missing.pt")],
        [str(wrong_input), "--m", "20"],
        [str(scripted), "--delta", "2"],
        [str(scripted), "--kwargs", "{bad json"],
        [str(scripted), "--bounds", "nope"],
        [str(scripted), "--train", str(tmp_path / "no-such-data.npz")],
    ]
    for args in cases:
        result = CliRunner().invoke(main, ["certify", *args, "--quiet"])
        assert result.exit_code == 2, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("pacbayes: error:"), (args, result.stderr)


def test_max_bound_gate_and_atomic_out(trained, tmp_path):
    scripted = tmp_path / "model.pt"
    torch.jit.script(trained).save(str(scripted))
    out = tmp_path / "reports" / "report.json"
    args = ["certify", str(scripted), "--m", str(M), "--quiet", "--out", str(out)]
    passing = CliRunner().invoke(main, [*args, "--max-bound", "1.0"])
    assert passing.exit_code == 0, passing.output
    written = json.loads(out.read_text())
    assert math.isclose(written["best_certified_bound"], min(b["value"] for b in written["bounds"] if b["certified"]))
    failing = CliRunner().invoke(main, [*args, "--max-bound", "0.01"])
    assert failing.exit_code == 1
    assert not list(out.parent.glob(".report-*"))
