"""The structured multi-class sampler: unbiased on tiny exact cases, below ln P(S), agrees with the dense one."""

import math

import numpy as np
import pytest
import torch
from test_evidence_multiclass import JITTER, _kernel

from pacbayes.errors import InputError
from pacbayes.evidence import multiclass_certified_log_evidence, multiclass_genz_log_orthant
from pacbayes.evidence.multiclass_ep import certified_method
from pacbayes.evidence.multiclass_sampler import (
    STRUCTURED_PROPOSAL,
    StructuredProposal,
    centring_basis,
    point_maps,
    structured_certified_log_evidence,
)


def _brute_force(K, labels, classes, draws=300_000, seed=0):
    """(P(S), standard error) from prior draws of the C logits: the fraction labelling every point right."""
    m = K.shape[0]
    chol = np.linalg.cholesky(K + JITTER * np.eye(m))
    f = np.random.default_rng(seed).standard_normal((draws, classes, m)) @ chol.T
    hits = (f.argmax(1) == labels[None, :]).all(1)
    p = hits.mean()
    return p, math.sqrt(p * (1.0 - p) / draws)


def _log_estimate_and_error(result):
    """ln Z_hat and its standard error (the relative standard error of Z_hat) of a certified result."""
    return result.log_estimate, result.relative_std / math.sqrt(result.samples)


CASES = {
    "random labels": (_kernel(3, 0), np.array([0, 2, 1])),
    "all labels equal": (_kernel(4, 1), np.array([1, 1, 1, 1])),
    "near-singular K": (0.999 * np.ones((3, 3)) + 0.001 * np.eye(3), np.array([2, 0, 2])),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_estimate_is_unbiased_against_brute_force_prior_draws(case):
    K, labels = CASES[case]
    exact, exact_error = _brute_force(K, labels, 3)
    result = structured_certified_log_evidence(K, labels, 3, delta_prime=0.01, samples=20_000, jitter=JITTER, seed=3)
    estimate, error = _log_estimate_and_error(result)
    assert abs(estimate - math.log(exact)) <= 4.0 * math.hypot(error, exact_error / exact)
    assert result.lower <= math.log(exact) and result.upper is None and result.proposal == STRUCTURED_PROPOSAL


@pytest.mark.parametrize("classes", [3, 4])
def test_one_point_gives_one_over_the_classes(classes):
    result = structured_certified_log_evidence(
        np.ones((1, 1)), [classes - 1], classes, delta_prime=0.01, samples=20_000, seed=0
    )
    estimate, error = _log_estimate_and_error(result)
    assert abs(estimate + math.log(classes)) <= 4.0 * error + 1e-12


def test_any_sites_keep_the_estimate_unbiased():
    m, classes = 4, 3
    K, labels = _kernel(m, 5), np.array([2, 0, 0, 1])
    generator = np.random.default_rng(7)
    d = torch.as_tensor(generator.uniform(0.0, 3.0, size=(classes - 1, m)))
    b = torch.as_tensor(generator.normal(scale=2.0, size=(classes - 1, m)))
    prior = torch.as_tensor(K + JITTER * np.eye(m))
    log_w = StructuredProposal(prior, labels, d, b).log_weights(200_000, torch.Generator().manual_seed(1))
    weights = torch.exp(log_w - log_w.max())
    estimate = float(torch.logsumexp(log_w, 0)) - math.log(log_w.numel())
    error = float(weights.std() / weights.mean()) / math.sqrt(log_w.numel())
    exact, exact_error = multiclass_genz_log_orthant(K, labels, classes, jitter=JITTER, rel_tol=1e-4)
    assert abs(estimate - exact) <= 4.0 * error + exact_error


def test_point_maps_give_the_logit_differences():
    classes, labels = 4, np.array([3, 0, 1])
    f = np.random.default_rng(0).normal(size=(labels.size, classes))
    v = f @ centring_basis(classes).numpy()  # v_i = V^T f(x_i)
    g = np.einsum("ijk,ik->ij", point_maps(labels, classes).numpy(), v)
    others = [[c for c in range(classes) if c != y] for y in labels]
    expected = np.array([[f[i, y] - f[i, c] for c in others[i]] for i, y in enumerate(labels)])
    np.testing.assert_allclose(g, expected, atol=1e-12)


def test_agrees_with_the_dense_sampler_at_m_30():
    m, classes = 30, 3
    K, labels = _kernel(m, 1), np.random.default_rng(2).integers(0, classes, size=m)
    options = dict(delta_prime=0.01, samples=20_000, jitter=JITTER, seed=4)
    structured = structured_certified_log_evidence(K, labels, classes, **options)
    dense = multiclass_certified_log_evidence(K, labels, classes, **options)
    (a, error_a), (b, error_b) = _log_estimate_and_error(structured), _log_estimate_and_error(dense)
    assert abs(a - b) <= 4.0 * math.hypot(error_a, error_b)


def test_seed_fixes_the_draws_whatever_the_threads():
    K, labels = _kernel(20, 3), np.random.default_rng(4).integers(0, 4, size=20)
    threads = torch.get_num_threads()
    values = []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            values.append(structured_certified_log_evidence(K, labels, 4, delta_prime=0.01, samples=500, seed=9))
    finally:
        torch.set_num_threads(threads)
    assert values[0].log_estimate == values[1].log_estimate
    other = structured_certified_log_evidence(K, labels, 4, delta_prime=0.01, samples=500, seed=10)
    assert other.log_estimate != values[0].log_estimate


def test_auto_switches_to_the_structured_sampler_beyond_the_dense_limit():
    assert certified_method(1000, 10) == "dense"
    assert certified_method(1001, 10) == "structured"
    assert certified_method(10, 3, "structured") == "structured"
    with pytest.raises(InputError, match="method must be one of"):
        certified_method(10, 3, "sparse")


@pytest.mark.parametrize(
    "options, fragment",
    [({"delta_prime": 0.0}, "delta_prime"), ({"delta_prime": 0.01, "samples": 0}, "samples")],
)
def test_bad_options_get_one_clear_line(options, fragment):
    with pytest.raises(InputError, match=fragment) as err:
        structured_certified_log_evidence(np.eye(2), [0, 1], 3, **options)
    assert "\n" not in str(err.value)


def test_sample_tolerance_fixes_the_count_from_a_discarded_pilot():
    K, labels = _kernel(6, 2), np.array([0, 1, 2, 0, 1, 2])
    result = structured_certified_log_evidence(
        K, labels, 3, delta_prime=0.01, samples=5_000, jitter=JITTER, seed=1, sample_tolerance=0.5
    )
    assert result.pilot_samples == 1_000 and 1_000 <= result.samples <= 5_000
    fixed = structured_certified_log_evidence(K, labels, 3, delta_prime=0.01, samples=5_000, jitter=JITTER, seed=1)
    assert fixed.pilot_samples == 0 and fixed.samples == 5_000


def test_the_label_model_routes_to_the_sampler_the_method_names():
    from pacbayes.evidence.label_model import label_model

    K, labels = _kernel(12, 5), np.random.default_rng(6).integers(0, 3, size=12)
    options = dict(delta_prime=0.01, samples=300, jitter=JITTER, seed=1, proposal="ep-cavity", upper=True)
    structured = label_model(3).certified(K, labels, method="structured", **options)
    dense = label_model(3).certified(K, labels, **options)  # auto: 24 dimensions are well within the dense limit
    assert structured.upper is None and dense.upper is not None
    direct = structured_certified_log_evidence(K, labels, 3, delta_prime=0.01, samples=300, jitter=JITTER, seed=1)
    assert structured.log_estimate == direct.log_estimate
    with pytest.raises(InputError, match="method must be one of"):
        label_model(2).certified(K, labels % 2, method="sparse", delta_prime=0.01)
