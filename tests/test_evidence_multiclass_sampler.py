"""The structured multi-class sampler: unbiased on tiny exact cases, below ln P(S), agrees with the dense one."""

import math

import numpy as np
import pytest
import torch
from test_evidence_multiclass import JITTER, _kernel

from pacbayes.errors import InputError
from pacbayes.evidence import (
    multiclass_certified_log_evidence,
    multiclass_ep_log_evidence,
    multiclass_genz_log_orthant,
)
from pacbayes.evidence.multiclass_ep import certified_method
from pacbayes.evidence.multiclass_sampler import (
    STRUCTURED_PROPOSAL,
    ConditionalProposal,
    centring_basis,
    ep_conditionals,
    point_maps,
    prior_regression,
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


def test_any_proposal_parameters_keep_the_estimate_unbiased():
    m, classes = 4, 3
    K, labels = _kernel(m, 5), np.array([2, 0, 0, 1])
    generator = np.random.default_rng(7)
    eye = torch.eye(classes - 1, dtype=torch.float64)
    gain = eye + torch.as_tensor(generator.normal(scale=0.3, size=(m, classes - 1, classes - 1)))
    offset = torch.as_tensor(generator.normal(scale=0.5, size=(m, classes - 1)))
    root = torch.as_tensor(generator.normal(scale=0.5, size=(m, classes - 1, classes - 1)))
    factor = torch.linalg.cholesky(torch.as_tensor(K + JITTER * np.eye(m)))
    # wider than each prior conditional N(mu_i, L_ii^2 I), so that the weights have a finite variance
    covariance = factor.diagonal()[:, None, None] ** 2 * (1.5 * eye + root @ root.transpose(1, 2))
    tau = torch.as_tensor(generator.uniform(0.0, 3.0, size=(m, classes - 1)))
    nu = torch.as_tensor(generator.normal(scale=1.0, size=(m, classes - 1)))
    proposal = ConditionalProposal(factor, labels, gain, offset, covariance, tau, nu)
    log_w = proposal.log_weights(200_000, torch.Generator().manual_seed(1))
    weights = torch.exp(log_w - log_w.max())
    estimate = float(torch.logsumexp(log_w, 0)) - math.log(log_w.numel())
    error = float(weights.std() / weights.mean()) / math.sqrt(log_w.numel())
    exact, exact_error = multiclass_genz_log_orthant(K, labels, classes, jitter=JITTER, rel_tol=1e-4)
    assert abs(estimate - exact) <= 4.0 * error + exact_error


def test_prior_regression_gives_the_conditional_means():
    K = torch.as_tensor(_kernel(5, 2) + JITTER * np.eye(5))
    W = prior_regression(torch.linalg.cholesky(K))
    assert torch.count_nonzero(torch.triu(W)) == 0
    for i in range(1, 5):
        expected = torch.linalg.solve(K[:i, :i], K[:i, i])  # E[v_i | v_<i] = k^T K_<i^-1 v_<i
        torch.testing.assert_close(W[i, :i], expected, rtol=1e-8, atol=1e-10)


def _dense_cavity_conditionals(prior, labels, classes, tau, nu, order):
    """(F, e, S) per point in ``order`` from the dense (C-1)m Gaussian EP posterior of the centred logits."""
    m, dims = prior.shape[0], classes - 1
    maps = point_maps(labels, classes)
    site = maps.transpose(1, 2) @ (tau[:, :, None] * maps)
    natural = (maps.transpose(1, 2) @ nu[:, :, None])[:, :, 0]
    precision = torch.kron(torch.eye(dims, dtype=torch.float64), torch.linalg.inv(prior).contiguous())
    shift = torch.zeros(dims * m, dtype=torch.float64)
    for i in range(m):
        at = torch.arange(dims) * m + i
        precision[at[:, None], at[None, :]] += site[i]
        shift[at] += natural[i]
    cov = torch.linalg.inv(precision)
    mean = cov @ shift
    chol = torch.linalg.cholesky(prior[order][:, order])
    out = []
    for a, i in enumerate(order.tolist()):
        at = torch.arange(dims) * m + i
        row = torch.zeros(m, dtype=torch.float64)  # mu_i = sum_j row_j v_j: E[v_i | earlier points] under the prior
        if a:
            row[order[:a]] = torch.linalg.solve(prior[order[:a]][:, order[:a]], prior[order[:a], i])
        lift = torch.kron(torch.eye(dims, dtype=torch.float64), row[None, :])  # (dims, dims m)
        cross, own = cov[at] @ lift.T, lift @ cov @ lift.T + 1e-10 * cov[at][:, at].diagonal().max() * torch.eye(dims)
        slope = cross @ torch.linalg.inv(own)
        conditional = cov[at][:, at] - slope @ cross.T
        s = torch.linalg.inv(torch.linalg.inv(conditional) - site[i])
        f = s @ torch.linalg.inv(conditional) @ slope
        e = s @ (torch.linalg.solve(conditional, mean[at] - slope @ (lift @ mean)) - natural[i])
        out.append((f, e, s))
    return [torch.stack(t) for t in zip(*out, strict=False)], chol


def test_proposal_conditionals_match_the_dense_ep_posterior():
    m, classes = 9, 4
    K, labels = _kernel(m, 3), np.random.default_rng(5).integers(0, classes, size=m)
    prior = torch.as_tensor(K + JITTER * np.eye(m))
    ep = multiclass_ep_log_evidence(prior, labels, classes)
    tau, nu = torch.as_tensor(ep.site_precision), torch.as_tensor(ep.site_natural_mean)
    order, factor, *got = ep_conditionals(prior, labels, classes, tau, nu)
    expected, chol = _dense_cavity_conditionals(prior, labels, classes, tau, nu, order)
    torch.testing.assert_close(factor, chol)
    for a, b in zip(got, expected, strict=False):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-7)
    _, _, *single = ep_conditionals(prior, labels, classes, tau, nu, single=True)  # the same order here
    for a, b in zip(single, expected, strict=False):
        torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-2)


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
