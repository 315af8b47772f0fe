"""Evidence results serialise themselves: the certify report's diagnostics and ``pacbayes evidence --json``
take their values from the same ``to_dict``, each under the keys it has always had."""

import numpy as np

from pacbayes.evidence.run import run_evidence

REPORT_EP_KEYS = ["log_evidence", "sweeps", "final_change", "seconds", "converged"]
REPORT_CERTIFIED_KEYS = [
    "lower",
    "log_estimate",
    "upper",
    "upper_note",
    "grad_norm",
    "samples",
    "pilot_samples",
    "proposal",
    "effective_samples",
    "seed",
    "seconds",
    "delta_prime",
]
CLI_KEYS = [
    "method",
    "m",
    "classes",
    "jitter",
    "prior",
    "log_evidence_ep",
    "log_evidence_lower",
    "log_evidence_upper",
    "log_evidence_upper_note",
    "delta_prime",
    "proposal",
    "sweeps",
    "seconds",
    "ep_converged",
    "ep_final_change",
    "seconds_ep",
    "log_estimate",
    "grad_norm",
    "samples",
    "seed",
    "relative_std",
    "effective_samples",
    "seconds_certified",
]


def small_run(method: str):
    K = 0.5 * np.eye(6) + 0.5
    y = np.r_[np.ones(3), -np.ones(3)]
    options = {"delta_prime": 0.05, "seed": 1, "samples": 200, "jitter": 0.0, "tol": 1e-6}
    return run_evidence(K, y, method=method, proposal="ep-cavity", quiet=True, **options)


def test_the_cli_record_is_the_results_summaries_under_its_own_keys():
    run = small_run("all")
    ep, certified, record = run.ep.to_dict(), run.certified.to_dict(), run.to_dict()
    assert list(ep) == REPORT_EP_KEYS and list(certified) == REPORT_CERTIFIED_KEYS
    assert list(record) == CLI_KEYS
    assert (record["log_evidence_ep"], record["ep_converged"]) == (ep["log_evidence"], ep["converged"])
    assert (record["log_evidence_lower"], record["log_evidence_upper"]) == (certified["lower"], certified["upper"])
    assert record["log_evidence_upper_note"] == certified["upper_note"] == run.certified.upper_reason
    assert record["seconds"] == ep["seconds"] + certified["seconds"]
    assert record["relative_std"] == run.certified.relative_std and record["samples"] == 200


def test_an_ep_run_leaves_every_certified_key_null():
    record = small_run("ep").to_dict()
    assert list(record) == CLI_KEYS[:16]
    assert record["log_evidence_lower"] is None and record["delta_prime"] is None and record["proposal"] is None
