"""`pacbayes check CLAIMS.toml`: values against an independent certify run, pass/fail, bad files."""

import json
import re

import pytest
import torch
from click.testing import CliRunner

from pacbayes.certification import CertifyOptions, certify, prepare_data
from pacbayes.claims import ClaimChecker, check_claims, load_claims
from pacbayes.cli import load_data_spec, main
from pacbayes.data import load_dataset
from pacbayes.demo import demo_network, train_to_zero_error
from pacbayes.errors import InputError
from pacbayes.families.marginal import MarginalSettings

COMMON = 'model = "demo"\nwidth = 32\nm = 40\nseed = 5\ntest = "{test}"\n'


@pytest.fixture(scope="module")
def small_test(tmp_path_factory):
    """300 held-out images as an .npz file, so every claim evaluates quickly."""
    import numpy as np

    test = load_dataset("mnist-embedded", split="test")
    path = tmp_path_factory.mktemp("data") / "test.npz"
    np.savez(path, x=test.x[:300].numpy(), y=test.labels[:300].numpy())
    return str(path)


def write(tmp_path, text, name="claims.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def independent_value(small_test, corrupt=0.0, kind="certified"):
    """Train and certify the same demo model by hand, without the claims machinery."""
    train, test = load_data_spec("mnist-embedded:train"), load_data_spec(small_test)
    options = CertifyOptions(m=40, seed=5, corrupt=corrupt)
    torch.manual_seed(5)
    model = demo_network(width=32)
    fitted, _, _ = prepare_data(model, train, test, options)
    train_to_zero_error(model, fitted, seed=5, max_epochs=1000, quiet=True)
    report = certify(model, train, test, options)
    return next(b.value for b in report.bounds if b.certified == (kind == "certified") and "clean" not in b.name)


@pytest.fixture(scope="module")
def clean_value(small_test):
    return independent_value(small_test)


def test_threshold_claims_pass_and_fail_on_the_independent_value(small_test, clean_value, tmp_path):
    value = clean_value
    text = (
        "[defaults]\n" + COMMON.format(test=small_test) + f'[[claim]]\nname = "holds"\nat_most = {value + 0.01}\n'
        f'[[claim]]\nname = "fails"\nat_most = {value - 0.01}\n'
        f'[[claim]]\nname = "at least"\nat_least = {value - 0.01}\n'
    )
    path = write(tmp_path, text)
    results = check_claims(path, load_data_spec)
    assert [r.passed for r in results] == [True, False, True]
    assert all(r.value == pytest.approx(value, rel=1e-12) for r in results)
    assert results[0].bound_name == "marginal-certified" and results[1].op == "<="

    runner = CliRunner()
    cache = str(tmp_path / "cache")
    as_json = runner.invoke(main, ["check", path, "--json", "--quiet", "--cache-dir", cache])
    assert as_json.exit_code == 1
    payload = json.loads(as_json.stdout)
    assert (payload["passed"], payload["failed"], payload["all_passed"]) == (2, 1, False)
    assert [c["name"] for c in payload["claims"]] == ["holds", "fails", "at least"]
    table = runner.invoke(main, ["check", path, "--quiet", "--cache-dir", cache])
    assert table.exit_code == 1 and "FAIL" in table.stdout and "2 of 3 claims hold" in table.stdout


def test_comparison_claim_uses_both_sides(small_test, clean_value, tmp_path):
    text = (
        "[defaults]\n" + COMMON.format(test=small_test) + '[[claim]]\nname = "noise raises the bound"\ncorrupt = 0.5\n'
        'compare = { op = ">", with = { corrupt = 0.0 } }\n'
    )
    (result,) = check_claims(write(tmp_path, text), load_data_spec)
    assert result.value == pytest.approx(independent_value(small_test, corrupt=0.5), rel=1e-12)
    assert result.reference == pytest.approx(clean_value, rel=1e-12)
    assert result.passed == (result.value > result.reference)
    assert result.reference_settings["corrupt"] == 0.0 and result.settings["corrupt"] == 0.5


def test_model_file_relative_to_the_claims_file(small_test, tmp_path):
    train, test = load_data_spec("mnist-embedded:train"), load_data_spec(small_test)
    options = CertifyOptions(m=40, seed=5)
    torch.manual_seed(7)
    model = demo_network(width=32)
    fitted, _, _ = prepare_data(model, train, test, options)
    train_to_zero_error(model, fitted, seed=7, quiet=True)
    torch.jit.script(model).save(str(tmp_path / "net.pt"))
    expected = next(b.value for b in certify(model, train, test, options).bounds if b.certified)
    text = f'[[claim]]\nname = "file"\nmodel = "net.pt"\nm = 40\nseed = 5\ntest = "{small_test}"\nat_most = 1.0\n'
    (result,) = check_claims(write(tmp_path, text), load_data_spec)
    assert result.passed and result.value == pytest.approx(expected, rel=1e-9)


def test_results_are_reused_within_a_run(small_test, tmp_path, monkeypatch):
    checker = ClaimChecker(load_data_spec)
    computed = []
    real = checker._compute
    monkeypatch.setattr(checker, "_compute", lambda settings: computed.append(1) or real(settings))
    text = (
        "[defaults]\n"
        + COMMON.format(test=small_test)
        + '[[claim]]\nname = "a"\nat_most = 1.0\n[[claim]]\nname = "b"\nat_least = 0.0\n'
    )
    for claim in load_claims(write(tmp_path, text)):
        checker.check(claim)
    assert computed == [1]


@pytest.mark.parametrize(
    "text, message",
    [
        ("[[claim]\n", "not valid TOML"),
        ("[defaults]\nm = 3\n", "no \\[\\[claim\\]\\] tables"),
        ("[claims]\nx = 1\n", "unknown top-level"),
    ],
)
def test_files_that_are_not_claims_files_are_refused(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(InputError, match=message):
        load_claims(path)
    result = CliRunner().invoke(main, ["check", path])
    assert result.exit_code == 2 and result.stderr.startswith("pacbayes: error:")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "text, message",
    [
        ('[[claim]]\nname = "x"\nat_most = 0.2\nwidht = 3\n', "unknown keys"),
        ('[[claim]]\nname = "x"\nat_most = 0.2\nat_least = 0.1\n', "exactly one of"),
        ('[[claim]]\nname = "x"\n', "exactly one of"),
        ('[[claim]]\nname = "x"\nat_most = 2.0\n', "error rate"),
        ('[[claim]]\nname = "x"\ncompare = { op = "=>", with = { m = 3 } }\n', "compare needs op"),
        ('[[claim]]\nname = "x"\ncompare = { op = ">", with = { colour = 3 } }\n', "unknown settings"),
    ],
)
def test_a_malformed_claim_is_an_error_row(tmp_path, text, message):
    path = write(tmp_path, text)
    (claim,) = load_claims(path)
    assert claim.name == "x" and re.search(message, claim.problem)
    result = CliRunner().invoke(main, ["check", path, "--json"])
    assert result.exit_code == 2 and result.stderr.startswith("pacbayes: error:")
    assert len(result.stderr.strip().splitlines()) == 1
    (row,) = json.loads(result.stdout)["claims"]
    assert row["name"] == "x" and not row["passed"] and re.search(message, row["error"])


def test_missing_file_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["check", str(tmp_path / "absent.toml")])
    assert result.exit_code == 2 and "does not exist" in result.stderr


def test_family_options_are_claims_keys_type_checked_and_applied(small_test, tmp_path):
    """Claims keys come from each family's settings: a larger jitter is a different prior, so the
    bound changes exactly as certify's does; a mistyped value names the claim and the key."""
    text = (
        "[defaults]\n" + COMMON.format(test=small_test) + '[[claim]]\nname = "jitter"\njitter = 0.5\n'
        'compare = { op = ">=", with = { jitter = 1e-6 } }\n'
    )
    results = check_claims(write(tmp_path, text), load_data_spec)
    train, test = load_data_spec("mnist-embedded:train"), load_data_spec(small_test)
    options = CertifyOptions(m=40, seed=5, marginal=MarginalSettings(jitter=0.5))
    torch.manual_seed(5)
    model = demo_network(width=32)
    fitted, _, _ = prepare_data(model, train, test, options)
    train_to_zero_error(model, fitted, seed=5, max_epochs=1000, quiet=True)
    direct = next(b.value for b in certify(model, train, test, options).bounds if b.certified)
    assert results[0].value == pytest.approx(direct, rel=1e-12)
    assert results[0].reference != results[0].value
    for bad, message in (
        ('jitter = "big"', "jitter must be a finite number"),
        ('kernel_type = "rbf"', "kernel_type must be a string"),
        ('jitter_grid = [1e-6, "x"]', "jitter_grid must be a list of finite numbers"),
    ):
        (claim,) = load_claims(write(tmp_path, f'[[claim]]\nname = "c"\n{bad}\nat_most = 0.5\n', name="bad.toml"))
        assert claim.problem.startswith(f"claim 'c': {message}")


def test_family_path_options_are_relative_to_the_claims_file(small_test, tmp_path):
    """A claims file's attempts_ledger (a path option) is written beside the claims file, not in the cwd."""
    folder = tmp_path / "claims"
    folder.mkdir()
    text = "[defaults]\n" + COMMON.format(test=small_test) + '[[claim]]\nname = "l"\nattempts_ledger = "runs.jsonl"\n'
    text += "at_most = 1.0\n"
    (claim,) = load_claims(write(folder, text))
    assert claim.settings["attempts_ledger"] == str(folder / "runs.jsonl")
    results = check_claims(str(folder / "claims.toml"), load_data_spec)
    assert results[0].passed and (folder / "runs.jsonl").exists()
