"""Multi-class ln P(S): covariance, EP (dense and structured), predictive, certified sandwich, input checks."""

import math

import numpy as np
import pytest
import scipy.stats
import torch

from pacbayes.errors import InputError
from pacbayes.evidence import (
    difference_covariance,
    ep_log_evidence,
    ep_predict,
    multiclass_certified_log_evidence,
    multiclass_ep_log_evidence,
    multiclass_ep_predict,
    multiclass_genz_log_orthant,
    multiclass_posterior,
)
from pacbayes.evidence.multiclass import pair_index
from pacbayes.evidence.multiclass_posterior import StructuredBuffers, gram_complement, structured_posterior

JITTER = 1e-6


def _kernel(m, seed, d=5):
    x = np.random.default_rng(seed).normal(size=(m, d))
    sq = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    return np.exp(-0.5 * sq / d)


def _labels(m, classes, seed):
    return np.random.default_rng(seed).integers(0, classes, size=m)


def test_difference_covariance_matches_sampled_differences():
    m, classes, n = 4, 3, 400_000
    K, y = _kernel(m, 0), np.array([0, 2, 2, 1])
    chol = np.linalg.cholesky(K + JITTER * np.eye(m))
    f = np.random.default_rng(1).normal(size=(n, classes, m)) @ chol.T  # C independent logits
    other = pair_index(y, classes)
    g = f[:, y, np.arange(m)][:, :, None] - f[:, other, np.arange(m)[:, None]]  # (n, m, C-1)
    empirical = np.cov(g.reshape(n, -1), rowvar=False)
    sigma = difference_covariance(K, y, classes, jitter=JITTER).numpy()
    # standard error of a covariance entry <= sqrt(2) * max variance / sqrt(n) ~ 0.0045 here
    assert np.abs(empirical - sigma).max() < 0.025
    assert sigma[0, 0] == pytest.approx(2.0 * (K[0, 0] + JITTER))


def test_two_classes_equal_the_binary_evidence():
    m = 25
    K, y = _kernel(m, 2), _labels(m, 2, 3)
    signs = 2.0 * y - 1.0
    sigma = difference_covariance(K, y, 2, jitter=JITTER).numpy()
    np.testing.assert_allclose(sigma, 2.0 * signs[:, None] * (K + JITTER * np.eye(m)) * signs[None, :], atol=1e-14)
    binary = ep_log_evidence(K, signs, jitter=JITTER).log_evidence
    for method in ("dense", "structured"):
        result = multiclass_ep_log_evidence(K, y, 2, jitter=JITTER, method=method)
        assert result.converged and result.method == method and result.classes == 2
        assert result.log_evidence == pytest.approx(binary, abs=1e-8)


@pytest.mark.parametrize("m, classes", [(10, 3), (8, 4)])
def test_ep_within_02_nats_of_genz_and_inside_the_certified_sandwich(m, classes):
    K, y = _kernel(m, m), _labels(m, classes, m + 1)
    genz, error = multiclass_genz_log_orthant(K, y, classes, jitter=JITTER)
    ep = multiclass_ep_log_evidence(K, y, classes, jitter=JITTER)
    assert abs(ep.log_evidence - genz) < 0.2
    cert = multiclass_certified_log_evidence(K, y, classes, delta_prime=0.01, samples=2000, jitter=JITTER)
    assert cert.upper is not None and cert.lower <= genz - error and genz + error <= cert.upper
    assert abs(cert.log_estimate - genz) < 0.1 and cert.jitter == JITTER


def test_genz_agrees_with_brute_force_monte_carlo():
    m, classes, n = 3, 3, 400_000
    K, y = _kernel(m, 5), np.array([0, 1, 1])
    chol = np.linalg.cholesky(K + JITTER * np.eye(m))
    f = np.random.default_rng(6).normal(size=(n, classes, m)) @ chol.T
    winner = f.argmax(axis=1)  # (n, m): each point's argmax class
    p = float((winner == y).all(axis=1).mean())
    genz, _ = multiclass_genz_log_orthant(K, y, classes, jitter=JITTER)
    assert abs(math.log(p) - genz) < 4.0 * math.sqrt((1 - p) / (p * n)) + 1e-3
    assert abs(multiclass_ep_log_evidence(K, y, classes, jitter=JITTER).log_evidence - genz) < 0.2


@pytest.mark.parametrize("classes", [3, 4])
def test_independent_points_give_exactly_minus_m_ln_c(classes):
    # K = I: points independent, and by symmetry each point's argmax is its label with probability 1/C
    m = 30
    y = _labels(m, classes, classes)
    exact = -m * math.log(classes)
    assert abs(multiclass_ep_log_evidence(np.eye(m), y, classes).log_evidence - exact) < 0.2
    cert = multiclass_certified_log_evidence(np.eye(m), y, classes, delta_prime=0.01, samples=1000)
    assert cert.lower <= exact <= cert.upper


@pytest.mark.parametrize("m, classes", [(12, 3), (9, 5)])
def test_structured_equals_dense_with_an_empty_class(m, classes):
    K, y = _kernel(m, 7), _labels(m, classes - 1, 8)  # class C-1 has no training point
    dense = multiclass_ep_log_evidence(K, y, classes, jitter=JITTER, method="dense", tol=1e-9)
    structured = multiclass_ep_log_evidence(K, y, classes, jitter=JITTER, method="structured", tol=1e-9)
    assert dense.converged and structured.converged
    assert structured.log_evidence == pytest.approx(dense.log_evidence, rel=1e-6)
    np.testing.assert_allclose(structured.site_precision, dense.site_precision, rtol=1e-5, atol=1e-8)
    auto = multiclass_ep_log_evidence(K, y, classes, jitter=JITTER).method
    assert auto == ("dense" if classes <= 4 else "structured")  # (C-1)m <= 3000 here


@pytest.mark.parametrize("method", ["dense", "structured"])
def test_mixed_precision_converges_to_the_float64_value(method):
    K, y = _kernel(60, 3), _labels(60, 4, 4)
    double = multiclass_ep_log_evidence(K, y, 4, jitter=JITTER, method=method, precision="double", tol=1e-9)
    mixed = multiclass_ep_log_evidence(K, y, 4, jitter=JITTER, method=method, precision="mixed", tol=1e-9)
    assert mixed.converged and mixed.final_change <= 1e-9
    assert mixed.log_evidence == pytest.approx(double.log_evidence, rel=1e-8)


def test_permuting_class_names_leaves_ln_p_unchanged():
    m, classes = 15, 4
    K, y = _kernel(m, 9), _labels(m, classes, 10)
    permutation = np.array([2, 0, 3, 1])
    for method in ("dense", "structured"):
        base = multiclass_ep_log_evidence(K, y, classes, jitter=JITTER, method=method).log_evidence
        renamed = multiclass_ep_log_evidence(K, permutation[y], classes, jitter=JITTER, method=method)
        assert renamed.log_evidence == pytest.approx(base, abs=1e-8)


def _dense_predictive(result, K, cross, test_var):
    """Brute force: the EP posterior of all C m logits by dense inverses, then GP conditioning."""
    m, classes = result.m, result.classes
    other = pair_index(result.labels, classes)
    A = np.zeros(((classes - 1) * m, classes * m))
    for i in range(m):
        for j, c in enumerate(other[i]):
            A[i * (classes - 1) + j, result.labels[i] * m + i] += 1.0
            A[i * (classes - 1) + j, c * m + i] -= 1.0
    prior = np.kron(np.eye(classes), K + result.jitter * np.eye(m))
    W = A.T @ np.diag(result.site_precision.ravel()) @ A
    sigma = np.linalg.inv(np.linalg.inv(prior) + W)
    mean = sigma @ (A.T @ result.site_natural_mean.ravel())
    solve = np.linalg.inv(prior)
    out = []
    for t in range(cross.shape[1]):
        k = np.kron(np.eye(classes), cross[:, t : t + 1])  # (C m, C)
        mu = k.T @ solve @ mean
        cov = (test_var[t] + result.jitter) * np.eye(classes) - k.T @ (solve - solve @ sigma @ solve) @ k
        out.append((mu, cov))
    return out


def _argmax_probability(mu, cov, c):
    """Pr[f_c > f_d for all d != c] for f ~ N(mu, cov), C = 3: a bivariate normal orthant."""
    rows = [d for d in range(len(mu)) if d != c]
    D = np.zeros((2, len(mu)))
    D[:, c] = 1.0
    D[[0, 1], rows] = -1.0
    return scipy.stats.multivariate_normal.cdf(np.zeros(2), mean=-(D @ mu), cov=D @ cov @ D.T)


def test_predictive_matches_dense_conditioning_and_the_binary_predictive():
    m, classes, samples = 10, 3, 20_000
    K_all = _kernel(m + 4, 11)
    K, cross, test_var = K_all[:m, :m], K_all[:m, m:], np.diag(K_all)[m:]
    result = multiclass_ep_log_evidence(K, _labels(m, classes, 12), classes, jitter=1e-3)
    probs = multiclass_ep_predict(result, cross, test_var, samples=samples, seed=3)
    assert probs.shape == (4, 3)
    np.testing.assert_allclose(probs.sum(1), 1.0)
    for t, (mu, cov) in enumerate(_dense_predictive(result, K, cross, test_var)):
        for c in range(classes):
            assert abs(probs[t, c] - _argmax_probability(mu, cov, c)) < 4.0 * 0.5 / math.sqrt(samples)
    # C = 2: Pr[class 1] = Phi(mean / sd) of the binary EP predictive
    y = _labels(m, 2, 13)
    binary = ep_log_evidence(K, 2.0 * y - 1.0, jitter=1e-3)
    mean, var = ep_predict(binary, cross, test_var)
    two = multiclass_ep_predict(multiclass_ep_log_evidence(K, y, 2, jitter=1e-3), cross, test_var, samples=samples)
    np.testing.assert_allclose(
        two[:, 1], scipy.stats.norm.cdf(mean / np.sqrt(var)), atol=4.0 * 0.5 / math.sqrt(samples)
    )


@pytest.mark.parametrize(
    "labels, classes, fragment",
    [
        ([0, 1, 3], 3, "labels must lie in 0..2"),
        ([0, -1, 1], 3, "labels must lie in 0..2"),
        ([0, 1.5, 1], 3, "non-integer"),
        ([0, 1, 1], 1, "classes must be an integer >= 2"),
        ([0, 1, 1], 2.0, "classes must be an integer >= 2"),
        ([0, 1], 3, "labels y have length 2 but the kernel is 3 x 3"),
        (["a", "b", "c"], 3, "numeric vector"),
    ],
)
def test_bad_input_gets_one_clear_line(labels, classes, fragment):
    with pytest.raises(InputError, match=fragment) as info:
        multiclass_ep_log_evidence(np.eye(3), labels, classes)
    assert "\n" not in str(info.value)


def test_bad_method_and_kernel():
    with pytest.raises(InputError, match="method must be one of"):
        multiclass_ep_log_evidence(np.eye(3), [0, 1, 2], 3, method="fast")
    with pytest.raises(InputError, match="not symmetric"):
        difference_covariance(np.triu(np.ones((3, 3))), [0, 1, 2], 3)
    result = multiclass_ep_log_evidence(np.eye(3), [0, 1, 2], 3)
    with pytest.raises(InputError, match="K_cross must be"):
        multiclass_ep_predict(result, np.ones((2, 4)), np.ones(4))


@pytest.mark.parametrize("blocks", [3, 4])
def test_gram_complement_by_blocks_equals_the_full_product(monkeypatch, blocks):
    monkeypatch.setattr(multiclass_posterior, "_GRAM_BLOCK_MIN", 1)
    rng = np.random.default_rng(16)
    K, h = _kernel(11, 17), rng.normal(size=(11, 11))
    out = torch.full((11, 11), np.nan, dtype=torch.float64)
    gram_complement(torch.as_tensor(K), torch.as_tensor(h), out, blocks=blocks)
    np.testing.assert_allclose(out.numpy(), K - h @ h.T, atol=1e-13)


@pytest.mark.parametrize("variant", ["plain", "blocked gram, reused buffers"])
def test_structured_posterior_matches_dense_inverses(monkeypatch, variant):
    m, classes = 7, 4
    buffers = None
    if variant != "plain":
        monkeypatch.setattr(multiclass_posterior, "_GRAM_BLOCK_MIN", 1)
        buffers = StructuredBuffers()
        buffers.get(classes, m + 2, torch.float32, "cpu")[0].fill_(np.nan)  # another size and precision first
    K = _kernel(m, 14) + 1e-3 * np.eye(m)
    labels = np.array([0, 1, 1, 3, 0, 2, 3])
    rng = np.random.default_rng(15)
    tau, nu = rng.uniform(size=(m, classes - 1)), rng.normal(size=(m, classes - 1))
    tau[2, 1] = 0.0
    tau[4] = 0.0  # a point whose sites are all flat
    other = pair_index(labels, classes)
    post = structured_posterior(
        torch.as_tensor(K),
        torch.as_tensor(labels),
        torch.as_tensor(other),
        torch.as_tensor(tau),
        torch.as_tensor(nu),
        keep_operators=True,
        buffers=buffers,
    )
    if buffers is not None:  # a later use of the buffers must leave the kept operators intact
        for stack in buffers.get(classes, m, torch.float64, "cpu"):
            stack.fill_(np.nan)
    A = np.zeros(((classes - 1) * m, classes * m))  # g = A f, f class-major
    for i in range(m):
        for j, c in enumerate(other[i]):
            A[i * (classes - 1) + j, [labels[i] * m + i, c * m + i]] = [1.0, -1.0]
    prior = np.kron(np.eye(classes), K)
    W = A.T @ np.diag(tau.ravel()) @ A
    sigma = np.linalg.inv(np.linalg.inv(prior) + W)
    mean = sigma @ (A.T @ nu.ravel())
    np.testing.assert_allclose(post.mean.numpy().ravel(), mean, atol=1e-12)
    points = np.arange(classes)[:, None] * m
    blocks = np.stack([sigma[np.ix_(points[:, 0] + i, points[:, 0] + i)] for i in range(m)])
    np.testing.assert_allclose(post.blocks.numpy(), blocks, atol=1e-12)
    assert 2.0 * float(post.half_log_det) == pytest.approx(np.linalg.slogdet(np.eye(classes * m) + prior @ W)[1])
    rhs = rng.normal(size=(classes, m, 2, 3))
    grams = post.column_grams(torch.as_tensor(rhs)).numpy()
    for t in range(3):
        column = rhs[..., t].reshape(classes * m, 2)
        np.testing.assert_allclose(grams[t], column.T @ sigma @ column, atol=1e-12)
