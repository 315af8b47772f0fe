"""Claims keys: generated from the certify options, each applied end to end, bad claims as ERROR rows."""

# ruff: noqa: F811 (small_test is test_claims' fixture, imported and taken as an argument)

import json
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from test_claims import COMMON, small_test, write  # noqa: F401

from pacbayes import claims, families
from pacbayes.bounds import holdout_bound
from pacbayes.certification import HOLDOUT, CertifyOptions, certify, delta_shares, prepare_data
from pacbayes.claims import check_claims, claim_keys, load_claims
from pacbayes.cli import load_data_spec, main
from pacbayes.cli.docs import key_table
from pacbayes.demo import demo_network, train_to_zero_error
from pacbayes.families import option

DOCS = Path(__file__).resolve().parents[1] / "docs" / "files.md"
ARCHITECTURE = "pacbayes.demo:demo_network"


def trained(small_test, options, width=32, seed=5):
    """(model, train, test): the demo network of ``width`` trained to zero error on the claim's data."""
    train, test = load_data_spec("mnist-embedded:train"), load_data_spec(small_test)
    torch.manual_seed(seed)
    model = demo_network(width=width)
    fitted, _, _ = prepare_data(model, train, test, options)
    train_to_zero_error(model, fitted, seed=seed, max_epochs=1000, quiet=True)
    return model, train, test


@pytest.fixture(scope="module")
def state_dict_file(small_test, tmp_path_factory):
    """A width-32 demo network saved as a state_dict (its class needs width=32), and its direct report."""
    options = CertifyOptions(m=40, seed=5)
    model, train, test = trained(small_test, options)
    path = tmp_path_factory.mktemp("model") / "weights.pt"
    torch.save(model.state_dict(), path)
    return str(path), certify(model, train, test, options)


def test_kwargs_build_the_architecture_of_a_state_dict(small_test, state_dict_file, tmp_path):
    path, report = state_dict_file
    common = f'model = "{path}"\narchitecture = "{ARCHITECTURE}"\nm = 40\nseed = 5\ntest = "{small_test}"\n'
    text = (
        f"[defaults]\n{common}"
        '[[claim]]\nname = "with kwargs"\nkwargs = { width = 32 }\nat_most = 1.0\n'
        '[[claim]]\nname = "without kwargs"\nat_most = 1.0\n'
    )
    with_kwargs, without = check_claims(write(tmp_path, text), load_data_spec, trust_code=True)
    direct = next(b.value for b in report.bounds if b.certified)
    assert with_kwargs.error is None and with_kwargs.value == pytest.approx(direct, rel=1e-12)
    assert with_kwargs.settings["kwargs"] == {"width": 32}
    assert without.error is not None and "weights.pt" in without.error  # width 512 does not fit the weights
    runner = CliRunner()
    assert runner.invoke(main, ["check", write(tmp_path, text), "--quiet"]).exit_code == 2  # no --trust-code
    lone = '[[claim]]\nname = "lone"\nkwargs = { width = 32 }\nat_most = 1.0\n'
    (claim,) = load_claims(write(tmp_path, lone, name="lone.toml"))
    assert "kwargs" in claim.problem and "architecture" in claim.problem


def test_holdout_bound_is_the_reports_hold_out_bound(small_test, state_dict_file, tmp_path):
    """bound = "holdout" reads the model's own test-set bound at certify's share of delta, from the run
    of ``bounds`` (default marginal), and holdout_candidates divides that share."""
    path, report = state_dict_file
    common = f'model = "{path}"\narchitecture = "{ARCHITECTURE}"\nkwargs = {{ width = 32 }}\nm = 40\nseed = 5\n'
    text = (
        f'[defaults]\n{common}test = "{small_test}"\nbound = "holdout"\n'
        '[[claim]]\nname = "holdout"\nat_most = 1.0\n'
        '[[claim]]\nname = "selected from 4"\nholdout_candidates = 4\nat_most = 1.0\n'
        '[[claim]]\nname = "estimate"\nkind = "estimate"\nat_most = 1.0\n'
    )
    plain, selected, estimate = check_claims(write(tmp_path, text), load_data_spec, trust_code=True)
    n = report.baselines["holdout_n"]
    mistakes = round(report.test_error * n)
    share = delta_shares(0.05, ("marginal",))[HOLDOUT]
    assert plain.bound_name == "holdout" and plain.value == pytest.approx(report.baselines["holdout_bound"], rel=1e-12)
    assert plain.value == pytest.approx(holdout_bound(mistakes, n, share), rel=1e-12)
    assert selected.value == pytest.approx(holdout_bound(mistakes, n, share / 4), rel=1e-12)
    assert selected.value > plain.value
    assert estimate.error is not None and "certified only" in estimate.error


def test_negative_classes_and_bounds_are_applied(small_test, tmp_path):
    """negative_classes changes the class split the demo model is trained and certified on; a claim
    whose ``bounds`` do not run its ``bound`` is an ERROR row."""
    split = (0, 1, 2, 3, 4, 5, 6)
    options = CertifyOptions(m=40, seed=5, negative_classes=split)
    model, train, test = trained(small_test, options)
    direct = certify(model, train, test, options)
    text = (
        "[defaults]\n" + COMMON.format(test=small_test) + "negative_classes = [0, 1, 2, 3, 4, 5, 6]\n"
        '[[claim]]\nname = "split"\nat_most = 1.0\n'
        '[[claim]]\nname = "split hold-out"\nbound = "holdout"\nat_most = 1.0\n'
        '[[claim]]\nname = "not run"\nbounds = ["dziugaite-roy"]\nat_most = 1.0\n'
    )
    marginal, holdout, not_run = check_claims(write(tmp_path, text), load_data_spec)
    assert marginal.value == pytest.approx(next(b.value for b in direct.bounds if b.certified), rel=1e-12)
    assert holdout.value == pytest.approx(direct.baselines["holdout_bound"], rel=1e-12)
    assert marginal.settings["negative_classes"] == split
    assert "does not run the claim's bound" in not_run.error


def test_one_bad_claim_among_good_ones_is_an_error_row(small_test, tmp_path):
    """An unknown key, a value of the wrong type or range, a missing file and refused data each make
    their own ERROR row, with the reason; the good claims still run and pass."""
    text = (
        "[defaults]\n" + COMMON.format(test=small_test) + '[[claim]]\nname = "good"\nat_most = 1.0\n'
        '[[claim]]\nname = "unknown key"\ncolour = "red"\nat_most = 1.0\n'
        '[[claim]]\nname = "wrong type"\nnegative_classes = ["a"]\nat_most = 1.0\n'
        '[[claim]]\nname = "out of range"\ndelta = 1.5\nat_most = 1.0\n'
        '[[claim]]\nname = "missing file"\nmodel = "absent.pt"\nat_most = 1.0\n'
        '[[claim]]\nname = "refused data"\ntest = "mnist-embedded:train"\nat_most = 1.0\n'
        '[[claim]]\nname = "good hold-out"\nbound = "holdout"\nat_least = 0.0\n'
    )
    result = CliRunner().invoke(main, ["check", write(tmp_path, text), "--json", "--quiet"])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)["claims"]}
    assert list(rows)[0] == "good" and len(rows) == 7
    for name, reason in (
        ("unknown key", "unknown keys ['colour']"),
        ("wrong type", "claim 'wrong type': negative_classes[0] must be an integer"),
        ("out of range", "claim 'out of range': delta must lie in (0.0, 1.0)"),
        ("missing file", "absent.pt"),
        ("refused data", "disjoint"),
    ):
        assert not rows[name]["passed"] and reason in rows[name]["error"], rows[name]
    for name in ("good", "good hold-out"):
        assert rows[name]["passed"] and rows[name]["error"] is None and rows[name]["value"] > 0


@dataclass(frozen=True)
class KnobSettings:
    knob: float = option(0.5, "--toy-knob", "a toy family's option")


@dataclass(frozen=True)
class KnobFamily:
    name: str = "toy"
    settings_type: type = KnobSettings


def test_claims_keys_are_generated_from_the_certify_options(monkeypatch):
    """Every run-wide CertifyOptions field but the caller's (quiet, max_minutes, cache_dir), and every family
    option, is a key; a family registered later brings its options as keys, type-checked like the others."""
    run_wide = {f for f in CertifyOptions.__dataclass_fields__ if f not in claims.CALLERS_OPTIONS}
    assert set(claims.CALLERS_OPTIONS) == {"quiet", "max_minutes", "cache_dir"}
    run_wide -= {families.settings_attribute(name) for name in families.FAMILIES}
    assert run_wide <= claim_keys() and {"kwargs", "negative_classes", "holdout_candidates", "bounds"} <= claim_keys()
    assert "toy_knob" not in claim_keys()
    monkeypatch.setitem(families.FAMILIES, "toy", KnobFamily())
    assert "toy_knob" in claim_keys()
    assert claims.family_fields()["toy_knob"].default == 0.5


def test_a_bad_value_in_defaults_is_an_error_row_for_every_claim(tmp_path):
    text = '[defaults]\nseed = -1\n[[claim]]\nname = "a"\nat_most = 1.0\n[[claim]]\nname = "b"\nat_least = 0.0\n'
    loaded = load_claims(write(tmp_path, text))
    assert [c.name for c in loaded] == ["a", "b"]
    assert all(c.problem.startswith(f"claim '{c.name}': seed") for c in loaded)


def test_the_docs_table_of_claims_keys_is_the_codes():
    """docs/files.md holds the table :func:`pacbayes.cli.docs.key_table` makes, row for row."""
    table = key_table()
    assert table in DOCS.read_text(), (
        "the claims keys table in docs/files.md is out of date: replace it with the output of "
        'python -c "from pacbayes.cli.docs import key_table; print(key_table())"'
    )
    keys = {line.split("`")[1] for line in table.splitlines()[2:]}
    assert keys == claim_keys() - {"name", "at_most", "at_least", "compare"}


def test_options_of_a_claim_are_the_certify_options(small_test, tmp_path):
    """certify_options turns a checked claim into the CertifyOptions certify runs."""
    text = "[defaults]\n" + COMMON.format(test=small_test) + '[[claim]]\nname = "o"\nbound = "holdout"\njitter = 0.5\n'
    (claim,) = load_claims(write(tmp_path, text + "allow_duplicates = true\nat_most = 1.0\n"))
    options = claims.certify_options(claim.settings)
    expected = CertifyOptions(m=40, seed=5, allow_duplicates=True)
    assert options == replace(expected, marginal=replace(expected.marginal, jitter=0.5))
