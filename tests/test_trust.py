"""Certificates that hostile data or model selection could void: one label map, overlap with the
whole training set, selection by the test set, per-family gates, seed retries and jitter choice."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from tasks import MnistTask

from pacbayes.bounds import holdout_bound, series_delta
from pacbayes.certification import HOLDOUT, CertifyOptions, Report, certify, delta_shares, prepare_data
from pacbayes.cli import main
from pacbayes.data import binarise, from_arrays, load_dataset, take
from pacbayes.data.subsets import shared_examples
from pacbayes.demo import demo_network
from pacbayes.errors import InputError
from pacbayes.evidence import ep_log_evidence
from pacbayes.families import FAMILIES, FamilyOutcome, stamped
from pacbayes.families.marginal import (
    MARKOV_SHARE,
    OTHER_ATTEMPTS,
    OTHER_JITTERS,
    PAC_BAYES_SHARE,
    MarginalSettings,
    choose_jitter,
)
from pacbayes.families.subspace import SubspaceFamily
from pacbayes.monitor import BoundMonitor
from pacbayes.results import BoundResult

M = 60
WIDTH = 32


@pytest.fixture(scope="module")
def task():
    return MnistTask(m=M, n_test=300, seed=3, width=WIDTH)


def digits_file(ds, keep, name):
    """The examples of ``ds`` whose original digit is in ``keep``, as a user's file would load:
    indexed on its own (classes = the digits it holds)."""
    digits = np.array([ds.classes[i] for i in ds.labels.tolist()])
    chosen = np.isin(digits, keep)
    return from_arrays(ds.x[torch.from_numpy(chosen)].numpy(), digits[chosen], name=name, info={})


def mistakes_of(model, x, labels) -> int:
    with torch.no_grad():
        return int(((model(x).squeeze(-1) > 0).to(torch.int64) != labels).sum())


# ---------------------------------------------------------------- 1. one label map
def test_a_test_file_of_two_digits_keeps_the_training_label_map(data, trained):
    train, _ = data
    six_eight = digits_file(take(load_dataset("mnist-embedded", split="test"), 600, seed=4), [6, 8], "six-eight")
    assert six_eight.classes == (6, 8)  # indexed on its own, 6 -> 0 and 8 -> 1
    report = certify(trained, train, six_eight, CertifyOptions(seed=0))
    # under the training data's split (0-4 vs 5-9) both digits are class 1
    expected = mistakes_of(trained, six_eight.x, torch.ones(len(six_eight), dtype=torch.int64))
    assert report.test_error == pytest.approx(expected / len(six_eight))


def test_multi_logit_model_sees_the_test_digits_by_the_training_index():
    full = take(load_dataset("mnist-embedded", split="train"), 200, seed=0)
    six_eight = digits_file(take(load_dataset("mnist-embedded", split="test"), 300, seed=1), [6, 8], "six-eight")
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    _, test, outputs = prepare_data(model, full, six_eight, CertifyOptions())
    assert outputs == 10
    assert set(test.labels.tolist()) == {6, 8} and test.classes == full.classes


def test_a_test_class_the_training_data_lacks_is_refused(trained):
    pool = take(load_dataset("mnist-embedded", split="train"), 400, seed=0)
    no_nines = digits_file(pool, list(range(9)), "no-nines")
    nines = digits_file(take(load_dataset("mnist-embedded", split="test"), 300, seed=1), [8, 9], "eights-nines")
    with pytest.raises(InputError, match="label value 9 does not occur"):
        certify(trained, no_nines, nines, CertifyOptions(m=M))


# ---------------------------------------------------------------- 2. overlap with the whole training set
def test_test_data_from_the_unused_part_of_train_is_refused(trained):
    given = take(binarise(load_dataset("mnist-embedded", split="train")), 400, seed=3)
    used = take(given, M, seed=0)
    used_rows = {row.numpy().tobytes() for row in used.x}
    unused = [i for i in range(len(given)) if given.x[i].numpy().tobytes() not in used_rows]
    leaked = given.subset(unused[:50])
    with pytest.raises(InputError, match="also appear in the training data"):
        certify(trained, given, leaked, CertifyOptions(m=M, seed=0))


def test_the_report_says_disjointness_was_checked_against_everything_given(data, trained):
    train, test = data
    report = certify(trained, train, test, CertifyOptions())
    assert f"{len(train)} examples" in report.data["test"]["disjoint_from"]


# ---------------------------------------------------------------- 3. selection pays
def test_final_after_selecting_a_checkpoint_pays_for_the_selection(data, trained):
    train, test = data
    torch.manual_seed(7)
    untrained = demo_network(width=WIDTH)
    checkpoints = 4
    monitor = BoundMonitor(trained, train, test=test, delta=0.05, max_checkpoints=checkpoints)
    monitor.compute(untrained)
    monitor.compute(trained)
    best = monitor.best_checkpoint()
    assert best is monitor.history[1]  # the trained net has the smaller hold-out bound
    report = monitor.final(trained)
    share = delta_shares(0.05, ("marginal",))[HOLDOUT]
    n = len(test)
    mistakes = round(report.test_error * n)
    assert report.baselines["holdout_bound"] == pytest.approx(holdout_bound(mistakes, n, share / checkpoints))
    assert report.baselines["holdout_bound"] >= best.values["holdout"]  # a smaller share of delta
    assert report.delta_ledger[HOLDOUT] == pytest.approx(share / checkpoints)
    assert sum(v for k, v in report.delta_ledger.items() if k.startswith("hold-out")) == pytest.approx(share)
    # a fresh test set, sharing no point with the one used to select, pays nothing
    whole = load_dataset("mnist-embedded", split="test")
    fresh = take(whole.subset(np.setdiff1d(np.arange(len(whole)), shared_examples(test, whole))), 300, seed=11)
    fresh_report = monitor.final(trained, test=fresh)
    fresh_mistakes = round(fresh_report.test_error * len(fresh))
    assert fresh_report.baselines["holdout_bound"] == pytest.approx(holdout_bound(fresh_mistakes, len(fresh), share))


# ---------------------------------------------------------------- 4. gates hold per family
def _result(family, classifier, value, certified=True):
    return BoundResult(
        name=family, value=value, certified=certified, certifies=classifier, family=family, classifier=classifier
    )


def _report(bounds):
    return Report(
        train_error=0.0,
        test_error=0.1,
        m=100,
        delta=0.05,
        bounds=bounds,
        delta_ledger={},
        baselines={"holdout_bound": 0.2, "holdout_n": 100},
        data={},
        model={},
        seconds={},
    )


def test_gate_holds_for_every_family_not_the_minimum_across_classifiers():
    report = _report(
        [
            _result("marginal", "q-star", 0.2),
            _result("dziugaite-roy", "stochastic-network", 1.0),
            _result("marginal", "q-star", 0.05, certified=False),
        ]
    )
    assert report.best_certified() == 0.2  # the key stays; it names its classifier
    assert report.to_dict()["best_certified_bound_classifier"] == "q-star"
    assert report.gate_failures(0.3) == [("dziugaite-roy", 1.0)]
    assert report.gate_failures(1.0) == []
    assert report.gate_failures(float("nan")) == [("marginal", 0.2), ("dziugaite-roy", 1.0)]
    only_estimates = _report([_result("marginal", "q-star", 0.01, certified=False)])
    assert only_estimates.gate_failures(0.5) == [("marginal", None)]


def test_cli_gate_names_the_family_that_fails(trained, tmp_path, monkeypatch):
    class VacuousSubspace(SubspaceFamily):
        def run(self, model, train, test, *, delta, settings, context):
            return FamilyOutcome(
                bounds=stamped(
                    [
                        BoundResult(
                            name="subspace",
                            value=0.99,
                            certified=True,
                            certifies="the decoded compressed model",
                            delta={"all": delta},
                        )
                    ],
                    self,
                )
            )

    monkeypatch.setitem(FAMILIES, "subspace", VacuousSubspace())
    scripted = tmp_path / "model.pt"
    torch.jit.script(trained).save(str(scripted))
    out = tmp_path / "report.json"
    args = [
        "certify",
        str(scripted),
        "--m",
        str(M),
        "--seed",
        "3",
        "--bounds",
        "marginal,subspace",
        "--quiet",
        "--max-bound",
        "0.9",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert "subspace (certified 0.9900)" in result.stderr and "marginal" not in result.stderr
    written = json.loads(out.read_text())
    assert {b["name"]: b["classifier"] for b in written["bounds"]} == {
        "marginal-ep": "q-star",
        "marginal-certified": "q-star",
        "subspace": "compressed-model",
    }
    assert written["certified_by_family"]["subspace"]["value"] == 0.99
    assert "only statement about MODEL itself" in CliRunner().invoke(main, args[:-4]).output


# ---------------------------------------------------------------- 7. retries and jitter
def test_marginal_reruns_with_new_seeds_are_counted_by_the_attempts_ledger(data, trained, tmp_path):
    train, test = data
    ledger = tmp_path / "attempts.jsonl"
    reports = [
        certify(trained, train, test, CertifyOptions(seed=seed, marginal=MarginalSettings(attempts_ledger=str(ledger))))
        for seed in (0, 1)
    ]
    family = delta_shares(0.05, ("marginal",))["marginal"]
    for attempt, report in enumerate(reports, start=1):
        spent = report.delta_ledger["marginal"]
        assert report.diagnostics["marginal"]["attempt"] == attempt
        assert spent[PAC_BAYES_SHARE] + spent[MARKOV_SHARE] == pytest.approx(series_delta(attempt, family))
        assert sum(spent.values()) == pytest.approx(family)
        assert spent[OTHER_ATTEMPTS] == pytest.approx(family - series_delta(attempt, family))
    assert len(ledger.read_text().splitlines()) == 2


def duplicate_point_kernel():
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    return x @ x.T


def test_singular_kernel_message_suggests_no_value_computed_from_it():
    with pytest.raises(InputError) as err:
        ep_log_evidence(duplicate_point_kernel(), torch.tensor([1.0, 1.0, -1.0]), jitter=0.0)
    message = str(err.value)
    assert "e.g. jitter=" not in message and "--jitter-grid" in message


def test_a_declared_jitter_grid_is_paid_for():
    K = duplicate_point_kernel()
    assert choose_jitter(K, MarginalSettings(jitter_grid=(0.0, 1e-6, 1e-3))) == (1e-6, 3)
    assert choose_jitter(K, MarginalSettings(jitter=1e-4)) == (1e-4, 1)
    with pytest.raises(InputError, match="any jitter in the declared grid"):
        choose_jitter(K, MarginalSettings(jitter_grid=(0.0,)))
    with pytest.raises(InputError, match="ascending"):
        choose_jitter(K, MarginalSettings(jitter_grid=(1e-3, 1e-6)))


def test_jitter_grid_through_certify_spends_delta_over_the_grid(data, trained):
    train, test = data
    report = certify(trained, train, test, CertifyOptions(marginal=MarginalSettings(jitter_grid=(1e-6, 1e-4))))
    spent = report.delta_ledger["marginal"]
    family = delta_shares(0.05, ("marginal",))["marginal"]
    assert spent[OTHER_JITTERS] == pytest.approx(series_delta(1, family) / 2)
    assert sum(spent.values()) == pytest.approx(family)
    assert report.diagnostics["marginal"]["kernel"]["jitter"] == 1e-6
