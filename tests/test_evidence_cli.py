"""`pacbayes evidence`: JSON contract, labelled text output, one-line errors."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from pacbayes.cli import main
from pacbayes.evidence import (
    certified_log_evidence,
    ep_log_evidence,
    equicorrelated_log_orthant,
)

RHO = 0.5


@pytest.fixture
def files(tmp_path):
    m = 25
    y = np.r_[np.ones(12), np.zeros(13)]  # {0, 1} labels are accepted
    np.save(tmp_path / "K.npy", (1 - RHO) * np.eye(m) + RHO)
    np.save(tmp_path / "y.npy", y)
    return str(tmp_path / "K.npy"), str(tmp_path / "y.npy")


def run(*args):
    return CliRunner().invoke(main, ["evidence", *args])


def test_json_contract_and_values(files):
    kernel, labels = files
    result = run(
        "--kernel",
        kernel,
        "--labels",
        labels,
        "--method",
        "all",
        "--delta-prime",
        "0.05",
        "--seed",
        "3",
        "--samples",
        "500",
        "--device",
        "cpu",
        "--json",
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    for key in ("log_evidence_ep", "log_evidence_lower", "log_evidence_upper", "delta_prime", "sweeps", "seconds"):
        assert key in payload
    K, y = np.load(kernel), np.load(labels)
    assert payload["log_evidence_ep"] == ep_log_evidence(K, y).log_evidence
    cert = certified_log_evidence(K, y, delta_prime=0.05, seed=3, samples=500)
    assert payload["log_evidence_lower"] == cert.lower and payload["log_evidence_upper"] == cert.upper
    exact = equicorrelated_log_orthant(y, RHO)
    assert payload["log_evidence_lower"] <= exact <= payload["log_evidence_upper"]
    assert payload["delta_prime"] == 0.05 and payload["prior"] == "N(0, K + 0 I)"


@pytest.mark.parametrize("proposal", ["ep-cavity", "tilted"])
def test_proposal_is_chosen_and_recorded(files, proposal):
    kernel, labels = files
    args = ["--kernel", kernel, "--labels", labels, "--method", "certified", "--samples", "300", "--json"]
    result = run(*args, "--proposal", proposal)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["proposal"] == proposal and payload["log_evidence_ep"] is None
    K, y = np.load(kernel), np.load(labels)
    cert = certified_log_evidence(K, y, delta_prime=0.01, samples=300, proposal=proposal)
    assert payload["log_evidence_lower"] == pytest.approx(cert.lower, abs=1e-12)
    assert payload["log_evidence_lower"] <= equicorrelated_log_orthant(y, RHO)


def test_ep_only_leaves_certified_keys_null(files):
    result = run("--kernel", files[0], "--labels", files[1], "--method", "ep", "--json", "--jitter", "0.1")
    payload = json.loads(result.stdout)
    assert payload["log_evidence_lower"] is None and payload["log_evidence_upper"] is None
    assert payload["sweeps"] >= 2 and payload["jitter"] == 0.1


def test_text_output_labels_each_number(files):
    result = run("--kernel", files[0], "--labels", files[1], "--samples", "200", "--quiet")
    assert result.exit_code == 0, result.output
    for label in ("estimate (EP, not a bound)", "certified lower", "upper (psi*", "K + 0 I"):
        assert label in result.output


def test_errors_are_one_line_exit_2(files, tmp_path):
    np.save(tmp_path / "short.npy", np.ones(3))
    for args in (
        ["--kernel", files[0], "--labels", str(tmp_path / "short.npy")],
        ["--kernel", str(tmp_path / "missing.npy"), "--labels", files[1]],
        ["--kernel", files[0], "--labels", files[1], "--delta-prime", "1.5"],
    ):
        result = run(*args, "--quiet")
        assert result.exit_code == 2
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("pacbayes: error: ")


def test_expected_time_and_memory_are_said_first_unless_quiet(files):
    kernel, labels = files
    loud = run("--kernel", kernel, "--labels", labels, "--method", "ep")
    assert loud.exit_code == 0, loud.output
    assert "EP for ln P(S): n = 25, expected" in loud.stderr and "GiB" in loud.stderr
    assert "certified" not in loud.stderr  # only what runs is announced
    both = run("--kernel", kernel, "--labels", labels, "--samples", "200")
    assert "certified ln P(S) (ep-cavity sampling, minimax tilting for psi*): n = 25" in both.stderr
    quiet = run("--kernel", kernel, "--labels", labels, "--method", "ep", "--quiet")
    assert "expected" not in quiet.stderr


def test_no_upper_keeps_the_lower_bound_and_says_psi_was_not_asked_for(files):
    kernel, labels = files
    common = ("--kernel", kernel, "--labels", labels, "--samples", "400", "--seed", "2")
    full = json.loads(run(*common, "--json").stdout)
    result = run(*common, "--no-upper", "--json")
    assert result.exit_code == 0, result.output
    lower_only = json.loads(result.stdout)
    assert lower_only["log_evidence_lower"] == full["log_evidence_lower"]
    assert lower_only["log_evidence_upper"] is None and full["log_evidence_upper"] is not None
    assert "not computed" in lower_only["log_evidence_upper_note"]
    text = run(*common, "--no-upper").stdout
    assert "upper (psi*, deterministic): not computed" in text and "not certified" not in text


def test_the_structured_multiclass_sampler_is_chosen_by_flag(tmp_path):
    m, classes = 12, 3
    np.save(tmp_path / "K.npy", (1 - RHO) * np.eye(m) + RHO)
    np.save(tmp_path / "y.npy", np.arange(m) % classes)
    args = ("--kernel", str(tmp_path / "K.npy"), "--labels", str(tmp_path / "y.npy"), "--classes", str(classes))
    result = run(*args, "--samples", "300", "--certified-method", "structured", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["log_evidence_upper"] is None  # the structured sampler has no psi*
    assert payload["log_evidence_lower"] < payload["log_evidence_ep"]
    bad = run(*args, "--certified-method", "sparse")
    assert bad.exit_code == 2 and "sparse" in bad.output
