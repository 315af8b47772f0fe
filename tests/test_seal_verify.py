"""`pacbayes verify` catches every forgery of a certified statement, and code named by a file (a claims
file's architecture, a report's recorded command line) runs only with --trust-code.

One genuine report per family is computed once on tiny data (32 training and 24 test points of 16
features, a linear model that fits the training set); each forgery edits a copy of one and must make
verify exit 1 naming the check it breaks, while the untouched reports pass.
"""

import copy
import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from pacbayes.bounds import holdout_bound, marginal_likelihood_bound
from pacbayes.certification import HOLDOUT, CertifyOptions, certify
from pacbayes.cli import load_data_spec, main
from pacbayes.families import FAMILIES, settings_attribute
from pacbayes.families.dziugaite_roy import DziugaiteRoySettings
from pacbayes.families.marginal import MARKOV_SHARE, PAC_BAYES_SHARE
from pacbayes.families.subspace import SubspaceSettings
from pacbayes.provenance import model_file_record
from pacbayes.report import json_safe
from pacbayes.report_cache import CacheWarning, _checksum

FEATURES = 16
STOCHASTIC = DziugaiteRoySettings(
    mc_samples=10, test_draws=2, posterior_epochs=1, lambda_grid=True, posterior_start="model"
)
SUBSPACE = SubspaceSettings(dim=4, epochs=2, qat_epochs=1, levels=(4,))
OPTIONS = {
    "marginal": CertifyOptions(bounds=("marginal",)),
    "dziugaite-roy": CertifyOptions(bounds=("dziugaite-roy",), dziugaite_roy=STOCHASTIC),
    "subspace": CertifyOptions(bounds=("subspace",), subspace=SUBSPACE),
    "clean-labels": CertifyOptions(
        bounds=("dziugaite-roy", "subspace"), corrupt=0.2, dziugaite_roy=STOCHASTIC, subspace=SUBSPACE
    ),
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Separable training data, a test set with 3 flipped labels, the linear model, its files."""
    root = tmp_path_factory.mktemp("seal")
    w = np.random.default_rng(0).normal(size=FEATURES)
    x = np.random.default_rng(1).normal(size=(56, FEATURES)).astype(np.float32)
    y = (x @ w > 0).astype(np.int64)
    y[-3:] = 1 - y[-3:]
    np.savez(root / "train.npz", x=x[:32], y=y[:32])
    np.savez(root / "test.npz", x=x[32:], y=y[32:])
    model = nn.Sequential(nn.Linear(FEATURES, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor(w, dtype=torch.float32)[None])
        model[0].bias.zero_()
    torch.jit.script(model).save(str(root / "model.pt"))
    torch.save(model.state_dict(), root / "weights.pt")
    files = {name: str(root / name) for name in ("train.npz", "test.npz", "model.pt", "weights.pt")}
    return {"root": root, "model": model, **files}


def data(tiny):
    return load_data_spec(tiny["train.npz"]), load_data_spec(tiny["test.npz"])


def as_json(report) -> dict:
    """The report as pacbayes certify --out writes it (non-finite numbers as null)."""
    return json.loads(json.dumps(json_safe(report.to_dict())))


@pytest.fixture(scope="module")
def reports(tiny):
    """One genuine report per family (and one with clean-label conversions), as JSON objects."""
    return {key: as_json(certify(tiny["model"], *data(tiny), options)) for key, options in OPTIONS.items()}


def write(tmp_path, record, name="report.json"):
    path = tmp_path / name
    path.write_text(json.dumps(record))
    return path


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def verify(tiny, path, *extra):
    """(exit status, names of the failed checks, output) of verify with the data given."""
    result = run("verify", path, "--train", tiny["train.npz"], "--test", tiny["test.npz"], "--json", *extra)
    failures = [c["name"] for c in json.loads(result.stdout)["checks"] if c["status"] == "mismatch"]
    return result.exit_code, failures, result.output


# ---------------------------------------------------------------- forgeries
def row(record, name):
    return next(b for b in record["bounds"] if b["name"] == name)


def relabel_estimate(record):
    row(record, "marginal-ep").update(certified=True, value=0.001)


def recount_test(record):
    """holdout_n doubled with the hold-out bound recomputed to match: only the data can tell."""
    baselines = record["baselines"]
    baselines["holdout_n"] *= 2
    mistakes = round(record["test_error"] * baselines["holdout_n"])
    baselines["holdout_bound"] = holdout_bound(mistakes, baselines["holdout_n"], record["delta_ledger"][HOLDOUT])


def raise_evidence_consistently(record):
    """ln P(S) raised by 5 nats and the bound recomputed from it: only Markov's step can tell."""
    b = row(record, "marginal-certified")
    b["log_evidence"] += 5.0
    b["value"] = marginal_likelihood_bound(b["log_evidence"], record["m"], b["delta"][PAC_BAYES_SHARE])


def scale_shares(node, factor):
    for key, value in node.items():
        node[key] = scale_shares(value, factor) if isinstance(value, dict) else value * factor
    return node


def relabel_delta(record):
    """delta 0.05 -> 0.005 with every share scaled and the hold-out bound recomputed: the ledger adds up."""
    record["delta"] /= 10
    scale_shares(record["delta_ledger"], 0.1)
    for b in record["bounds"]:
        scale_shares(b["delta"], 0.1)
    baselines = record["baselines"]
    mistakes = round(record["test_error"] * baselines["holdout_n"])
    baselines["holdout_bound"] = holdout_bound(mistakes, baselines["holdout_n"], record["delta_ledger"][HOLDOUT])


def move_share(record, family, name, key, source):
    """Move a row's ``source`` share into ``key`` in the row and the ledger (the sum stays the same)."""
    for shares in (row(record, name)["delta"], record["delta_ledger"][family]):
        shares[key] += shares.pop(source)


def set_in(path, value):
    """A forgery that sets the key at ``path`` (a list of keys and bound names) to ``value``."""

    def forge(record):
        node = record
        for key in path[:-1]:
            node = next(b for b in node if b["name"] == key) if isinstance(node, list) else node[key]
        node[path[-1]] = value(node[path[-1]]) if callable(value) else value

    return forge


FORGERIES = [
    # the estimate row, the classifier, the best bound
    ("marginal", relabel_estimate, "certified_marginal-ep"),
    ("marginal", relabel_estimate, "value_marginal-ep"),
    ("marginal", relabel_estimate, "best_certified_bound"),
    ("marginal", set_in(["bounds", "marginal-ep", "certified"], True), "certified_marginal-ep"),
    ("marginal", set_in(["best_certified_bound_classifier"], "model"), "best_certified_bound_classifier"),
    ("marginal", set_in(["bounds", "marginal-certified", "classifier"], "model"), "classifier_marginal-certified"),
    ("marginal", set_in(["best_certified_bound"], 0.01), "best_certified_bound"),
    ("marginal", set_in(["best_certified_bound_name"], "marginal-ep"), "best_certified_bound_name"),
    ("marginal", set_in(["certified_by_family", "marginal", "value"], 0.01), "certified_by_family"),
    # the hold-out bound and the test data
    ("marginal", set_in(["baselines", "holdout_n"], lambda n: n * 2), "holdout_bound"),
    ("marginal", recount_test, "data_count_test"),
    ("marginal", set_in(["baselines", "holdout_n"], 0), "holdout_bound"),
    ("marginal", set_in(["baselines", "holdout_n"], None), "holdout_bound"),
    ("marginal", set_in(["test_error"], "0.0"), "holdout_bound"),
    ("marginal", set_in(["test_error"], lambda e: e + 0.01), "holdout_bound"),
    ("marginal", set_in(["baselines", "holdout_classifier"], "q-star"), "holdout_classifier"),
    ("marginal", set_in(["baselines", "holdout_candidates"], 3), "options_holdout_candidates"),
    # ln P(S), m, delta and the ledger
    (
        "marginal",
        set_in(["bounds", "marginal-certified", "log_evidence"], lambda v: v + 5.0),
        "value_marginal-certified",
    ),
    ("marginal", raise_evidence_consistently, "log_evidence_marginal-certified"),
    (
        "marginal",
        set_in(["bounds", "marginal-certified", "details", "log_estimate"], None),
        "log_evidence_marginal-certified",
    ),
    (
        "marginal",
        set_in(["bounds", "marginal-certified", "details", "variant"], "mcallester"),
        "value_marginal-certified",
    ),
    ("marginal", set_in(["m"], 64), "data_count_train"),
    ("marginal", lambda r: (set_in(["m"], 64)(r), set_in(["provenance", "options", "m"], 64)(r)), "data_count_train"),
    ("marginal", set_in(["m"], 64), "value_marginal-certified"),
    ("marginal", set_in(["train_error"], 0.0625), "train_error_marginal-certified"),
    ("marginal", relabel_delta, "options_delta"),
    ("marginal", relabel_delta, "value_marginal-certified"),
    ("marginal", set_in(["delta"], 0.005), "delta_ledger_sum"),
    ("marginal", lambda r: r["delta_ledger"]["marginal"].pop(MARKOV_SHARE), "delta_shares_marginal-certified"),
    ("marginal", set_in(["delta_ledger", "marginal", MARKOV_SHARE], "0.001"), "delta_ledger_sum"),
    ("marginal", lambda r: r["delta_ledger"].update(refund=-0.04), "delta_ledger_sum"),
    ("marginal", lambda r: r["bounds"].append(copy.deepcopy(r["bounds"][-1])), "bound_names_unique"),
    ("marginal", set_in(["bounds", "marginal-certified", "family"], "oracle"), "value_marginal-certified"),
    # the stochastic network: KL, draws, sampled error, points, the grid's share
    ("dziugaite-roy", set_in(["bounds", "dziugaite-roy", "details", "kl"], lambda v: v / 10), "value_dziugaite-roy"),
    ("dziugaite-roy", set_in(["bounds", "dziugaite-roy", "details", "kl"], "0"), "value_dziugaite-roy"),
    ("dziugaite-roy", set_in(["bounds", "dziugaite-roy", "details", "mc_draws"], 10**6), "value_dziugaite-roy"),
    (
        "dziugaite-roy",
        set_in(["bounds", "dziugaite-roy", "details", "sampled_error"], lambda e: e + 0.0001),
        "empirical_error_bound_dziugaite-roy",
    ),
    ("dziugaite-roy", set_in(["bounds", "dziugaite-roy", "details", "m"], 3200), "count_dziugaite-roy"),
    (
        "dziugaite-roy",
        set_in(["bounds", "dziugaite-roy", "details", "grid_index"], lambda j: j + 1),
        "grid_share_dziugaite-roy",
    ),
    (
        "dziugaite-roy",
        lambda r: move_share(r, "dziugaite-roy", "dziugaite-roy", "pac_bayes_kl", "lambda_grid_other_points"),
        "value_dziugaite-roy",
    ),
    (
        "dziugaite-roy",
        lambda r: r["delta_ledger"]["dziugaite-roy"].pop("sample_convergence"),
        "delta_shares_dziugaite-roy",
    ),
    (
        "dziugaite-roy",
        set_in(["bounds", "dziugaite-roy", "details", "mc_sampling"], "exact"),
        "empirical_error_bound_dziugaite-roy",
    ),
    ("dziugaite-roy", set_in(["bounds", "dziugaite-roy", "certified"], "yes"), "certified_dziugaite-roy"),
    # the compressed model: bits, configurations, error, shares, points
    ("subspace", set_in(["bounds", "subspace", "details", "code_bits"], lambda b: b // 2), "value_subspace"),
    ("subspace", set_in(["bounds", "subspace", "details", "code_bits"], lambda b: b // 2), "kl_subspace"),
    ("subspace", set_in(["bounds", "subspace", "details", "kl_nats"], 1.0), "kl_subspace"),
    ("subspace", set_in(["bounds", "subspace", "details", "configurations"], 0), "value_subspace"),
    ("subspace", set_in(["bounds", "subspace", "details", "train_error"], 0.5), "value_subspace"),
    ("subspace", set_in(["bounds", "subspace", "details", "m"], 320), "count_subspace"),
    ("subspace", lambda r: move_share(r, "subspace", "subspace", "occam", "catoni"), "form_shares_subspace"),
    # clean-label conversions
    (
        "clean-labels",
        set_in(["bounds", "subspace-clean-labels", "value"], 0.3),
        "value_subspace-clean-labels",
    ),
    (
        "clean-labels",
        set_in(["bounds", "subspace-clean-labels", "details", "corruption"], 0.0),
        "corruption_subspace-clean-labels",
    ),
    (
        "clean-labels",
        set_in(["bounds", "dziugaite-roy-clean-labels", "details", "converted_from"], "subspace"),
        "certified_dziugaite-roy-clean-labels",
    ),
    (
        "clean-labels",
        set_in(["bounds", "subspace-clean-labels", "delta", "occam"], 0.0),
        "certified_subspace-clean-labels",
    ),
    (
        "clean-labels",
        set_in(["bounds", "subspace-clean-labels", "details", "converted_from"], ["subspace"]),
        "certified_subspace-clean-labels",
    ),
    # a certified corrupted-label bound below the noise floor c (K - 1) / K = 0.1 cannot hold
    ("clean-labels", set_in(["bounds", "subspace", "value"], 0.05), "noise_floor_subspace"),
]


def test_every_registered_family_has_verify_arithmetic():
    from pacbayes.verification import ARITHMETIC

    assert set(ARITHMETIC) == set(FAMILIES)


@pytest.mark.parametrize("key", list(OPTIONS))
def test_a_genuine_report_passes_with_and_without_data(tiny, reports, key, tmp_path):
    from pacbayes.verification import check_report

    path = write(tmp_path, reports[key])
    code, failures, output = verify(tiny, path)
    assert (code, failures) == (0, []), output
    statuses = {c["name"]: c["status"] for c in json.loads(output)["checks"]}
    assert statuses["data_count_test"] == statuses["data_count_train"] == "match"
    assert all(c.status != "mismatch" for c in check_report(reports[key]))  # arithmetic alone


@pytest.mark.parametrize(
    "key, forge, check", FORGERIES, ids=[f"{i:02d}-{check}" for i, (_, _, check) in enumerate(FORGERIES)]
)
def test_verify_catches_the_forgery(tiny, reports, key, forge, check, tmp_path):
    record = copy.deepcopy(reports[key])
    forge(record)
    code, failures, output = verify(tiny, write(tmp_path, record))
    assert code == 1 and check in failures, (failures, output)
    text = run("verify", write(tmp_path, record), "--train", tiny["train.npz"], "--test", tiny["test.npz"])
    assert text.exit_code == 1 and f"MISMATCH: {failures[0]}" in text.stdout


@pytest.mark.parametrize(
    "forge",
    [
        set_in(["bounds"], {}),
        set_in(["bounds"], [3]),
        set_in(["bounds", "marginal-ep", "family"], ["marginal"]),
        set_in(["delta"], "0.05"),
        set_in(["delta_ledger"], None),
    ],
    ids=["bounds-object", "bounds-numbers", "family-list", "delta-string", "no-ledger"],
)
def test_a_report_verify_cannot_read_is_refused_in_one_line(tiny, reports, forge, tmp_path):
    record = copy.deepcopy(reports["marginal"])
    forge(record)
    result = run("verify", write(tmp_path, record))
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("pacbayes: error:")


# ---------------------------------------------------------------- rerun: at the delta the report claims
@pytest.fixture(scope="module")
def loose(tiny):
    """A marginal report certified at delta 0.5 on the TorchScript model, with its command line."""
    report = as_json(certify(tiny["model"], *data(tiny), CertifyOptions(bounds=("marginal",), delta=0.5)))
    report["model_path"] = tiny["model.pt"]
    report["provenance"].update(model_file_record(tiny["model.pt"]))
    report["provenance"]["command_line"] = [
        "pacbayes",
        "certify",
        tiny["model.pt"],
        "--train",
        tiny["train.npz"],
        "--test",
        tiny["test.npz"],
        "--delta",
        "0.5",
    ]
    return report


def test_a_rerun_recertifies_at_the_claimed_delta(tiny, loose, tmp_path):
    code, failures, output = verify(tiny, write(tmp_path, loose), "--rerun")
    assert (code, failures) == (0, []), output
    forged = copy.deepcopy(loose)
    relabel_delta(forged)  # 0.5 -> 0.05, every share scaled: the sum adds up
    code, failures, _ = verify(tiny, write(tmp_path, forged), "--rerun")
    assert code == 1 and {"options_delta", "rerun_bound_marginal-certified"} <= set(failures)


# ---------------------------------------------------------------- code named by a file
def architecture_file(folder, marker):
    """A .py file that writes ``marker`` when imported and defines Net, the tiny model's architecture."""
    path = folder / "net.py"
    path.write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\nfrom torch import nn\n\n"
        f"class Net(nn.Sequential):\n    def __init__(self):\n        super().__init__(nn.Linear({FEATURES}, 1))\n"
    )
    return f"{path}:Net"


def assert_refused(result, *words):
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("pacbayes: error:"), result.output
    assert all(word in lines[0] for word in words), lines[0]


def test_verify_rerun_imports_a_recorded_architecture_only_with_trust_code(tiny, loose, tmp_path):
    marker = tmp_path / "RAN"
    architecture = architecture_file(tmp_path, marker)
    record = copy.deepcopy(loose)
    record["model_path"] = tiny["weights.pt"]
    record["provenance"].update(model_file_record(tiny["weights.pt"]))
    record["provenance"]["command_line"][2:3] = [tiny["weights.pt"], "--architecture", architecture]
    path = write(tmp_path, record)
    assert_refused(run("verify", path, "--rerun"), "--trust-code", "net.py:Net")
    assert not marker.exists()
    code, failures, output = verify(tiny, path, "--rerun", "--trust-code")
    assert marker.exists() and (code, failures) == (0, []), output


def test_an_architecture_typed_on_verify_needs_no_flag(tiny, loose, tmp_path):
    marker = tmp_path / "RAN"
    record = copy.deepcopy(loose)
    record["model_path"] = tiny["weights.pt"]
    record["provenance"].update(model_file_record(tiny["weights.pt"]))
    code, failures, output = verify(
        tiny, write(tmp_path, record), "--rerun", "--architecture", architecture_file(tmp_path, marker)
    )
    assert marker.exists() and (code, failures) == (0, []), output


def claims_file(tiny, folder, architecture, test):
    """A claims file with one claim on the tiny state_dict model; ``architecture`` None leaves the key out."""
    path = folder / "claims.toml"
    named = "" if architecture is None else f'architecture = "{architecture}"\n'
    path.write_text(
        f'[[claim]]\nname = "named code"\nmodel = "{tiny["weights.pt"]}"\n{named}'
        f'train = "{tiny["train.npz"]}"\ntest = "{tiny["test.npz"]}"\n{test}'
    )
    return path


@pytest.mark.parametrize(
    "extra",
    ["at_most = 1.0\n", 'compare = { op = ">=", with = { seed = 1 } }\n'],
    ids=["threshold", "compare"],
)
def test_a_claims_file_architecture_runs_only_with_trust_code(tiny, tmp_path, extra):
    marker = tmp_path / "RAN"
    path = claims_file(tiny, tmp_path, architecture_file(tmp_path, marker), extra)
    assert_refused(run("check", path, "--quiet"), "--trust-code", "named code")
    assert not marker.exists()
    trusted = run("check", path, "--quiet", "--trust-code")
    assert trusted.exit_code == 0 and marker.exists(), trusted.output


def test_an_architecture_in_compare_with_is_refused_too(tiny, tmp_path):
    marker = tmp_path / "RAN"
    test = f'compare = {{ op = ">=", with = {{ architecture = "{architecture_file(tmp_path, marker)}" }} }}\n'
    assert_refused(run("check", claims_file(tiny, tmp_path, None, test), "--quiet"), "--trust-code")
    assert not marker.exists()


@pytest.mark.parametrize("architecture", ["builtins:exit", "os:system"])
def test_a_non_module_class_architecture_is_an_error_even_when_trusted(tiny, tmp_path, architecture):
    path = claims_file(tiny, tmp_path, architecture, "at_most = 1.0\n")
    result = run("check", path, "--quiet", "--trust-code")
    assert result.exit_code == 2 and "ERROR" in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and ("torch.nn.Module" in lines[0] or "namespace" in lines[0]), result.output


# ---------------------------------------------------------------- the claims cache is verified, not only checksummed
def forge_cached_bound(cache, value):
    """Lower the certified marginal bound of the one cache entry in ``cache`` and recompute its checksum."""
    (entry,) = cache.iterdir()
    stored = json.loads(entry.read_text())
    row(stored["report"], "marginal-certified")["value"] = stored["report"]["best_certified_bound"] = value
    stored["report"]["certified_by_family"]["marginal"]["value"] = value
    stored["sha256"] = _checksum(stored["report"])
    entry.write_text(json.dumps(stored))


def test_an_edited_cache_entry_with_a_fresh_checksum_is_recomputed(tiny, tmp_path):
    cache = tmp_path / "cache"
    claims = tmp_path / "claims.toml"
    claims.write_text(
        f'[[claim]]\nname = "tight"\nmodel = "{tiny["model.pt"]}"\ntrain = "{tiny["train.npz"]}"\n'
        f'test = "{tiny["test.npz"]}"\nat_most = 0.05\n'
    )
    genuine = run("check", claims, "--quiet", "--json", "--cache-dir", cache)
    assert genuine.exit_code == 1, genuine.output
    value = json.loads(genuine.stdout)["claims"][0]["value"]
    forge_cached_bound(cache, 0.04)
    with pytest.warns(CacheWarning, match="fails verification \\(value_marginal-certified\\)"):
        again = run("check", claims, "--quiet", "--json", "--cache-dir", cache)
    assert again.exit_code == 1 and json.loads(again.stdout)["claims"][0]["value"] == pytest.approx(value, rel=1e-12)
    assert math.isfinite(value) and value > 0.05


def test_assert_certified_recomputes_an_edited_cache_entry_with_a_fresh_checksum(tiny, tmp_path):
    """The library gate shares the claims cache's rule: a checksum alone does not make an entry true."""
    from pacbayes.testing import assert_certified

    train, test = data(tiny)
    genuine = assert_certified(tiny["model"], train, test=test, at_most=1.0, cache_dir=tmp_path)
    forge_cached_bound(tmp_path, 0.01)
    with pytest.warns(CacheWarning, match="fails verification"):
        with pytest.raises(AssertionError):
            assert_certified(tiny["model"], train, test=test, at_most=0.05, cache_dir=tmp_path)
    assert genuine.value > 0.05


@pytest.mark.parametrize("family", ["marginal", "dziugaite-roy", "subspace"])
def test_a_rerun_replays_the_recorded_attempt_without_counting_another(tiny, tmp_path, family):
    """verify --rerun recomputes attempt k at attempt k's delta and leaves the ledger as it was."""
    ledger = tmp_path / "attempts.jsonl"
    options = OPTIONS[family]
    settings = replace(options.settings_for(family), attempts_ledger=str(ledger))
    options = replace(options, **{settings_attribute(family): settings})
    for seed in (0, 1):  # the second run is attempt 2
        record = as_json(certify(tiny["model"], *data(tiny), replace(options, seed=seed)))
    record["model_path"] = tiny["model.pt"]
    record["provenance"].update(model_file_record(tiny["model.pt"]))
    lines = ledger.read_bytes()
    code, failures, output = verify(tiny, write(tmp_path, record), "--rerun")
    assert (code, failures) == (0, []), output
    assert ledger.read_bytes() == lines
