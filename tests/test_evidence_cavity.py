"""The EP-cavity importance sampler of P(S): unbiased for any sites, exact references, variance, inputs."""

import math

import numpy as np
import pytest
import torch
from orthants import ar1_log_orthant

from pacbayes.errors import InputError
from pacbayes.evidence import certified_log_evidence, ep_log_evidence, equicorrelated_log_orthant, genz_log_orthant
from pacbayes.evidence.certified import PROPOSALS
from pacbayes.evidence.ep_cavity import CavityProposal, ep_covariance
from pacbayes.evidence.sequential import permute_symmetric


def _random_covariance(m, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(m, m))
    return torch.as_tensor(a @ a.T / m + 0.4 + 0.1 * np.eye(m))


def _mean_ratio(proposal, exact, batches, size, seed):
    """Mean and standard error over ``batches`` independent estimates of P(S) / exact."""
    generator = torch.Generator().manual_seed(seed)
    log_w = torch.stack([proposal.log_weights(size, generator) for _ in range(batches)])
    ratios = np.exp((torch.logsumexp(log_w, 1) - math.log(size)).numpy() - exact)
    return ratios.mean(), ratios.std(ddof=1) / math.sqrt(batches)


def _ep_sites(sigma):
    ep = ep_log_evidence(sigma, np.ones(sigma.shape[0]))
    return torch.as_tensor(ep.site_precision), torch.as_tensor(ep.site_natural_mean)


@pytest.mark.parametrize("sites", ["ep", "arbitrary", "none"])
def test_unbiased_for_any_sites_against_genz(sites):
    # E[w] = P(S) must hold whatever the sites (EP's, arbitrary ones with tau >= 0, or none = GHK):
    # that, not the quality of the EP fit, is what Markov's step rests on
    m = 7
    sigma = _random_covariance(m, seed=1)
    exact, error = genz_log_orthant(sigma, np.ones(m), rel_tol=1e-5, maxpts=2_000_000)
    assert error <= 1e-4  # the reference is far tighter than the 2e-3 slack below
    rng = np.random.default_rng(2)
    tau, nu = {
        "ep": lambda: _ep_sites(sigma),
        "arbitrary": lambda: (torch.as_tensor(rng.uniform(0, 0.8, m)), torch.as_tensor(rng.normal(size=m))),
        "none": lambda: (torch.zeros(m, dtype=torch.float64), torch.zeros(m, dtype=torch.float64)),
    }[sites]()
    mean, error = _mean_ratio(CavityProposal(sigma, tau, nu), exact, batches=40, size=5000, seed=3)
    assert abs(mean - 1.0) < 4.0 * error + 2e-3
    assert error < 0.05  # the check has power


def test_without_sites_it_is_ghk():
    # tau = nu = 0: Q is the prior, ln Z_g = 0, the proposal is the prior's conditional truncated
    # (each weight prod_k Phi(c_k / s_k)); its unbiasedness is the "none" case above
    sigma = _random_covariance(3, seed=4)
    zero = torch.zeros(3, dtype=torch.float64)
    proposal = CavityProposal(sigma, zero, zero)
    assert proposal.log_normaliser == pytest.approx(0.0, abs=1e-14)
    order = proposal.order
    assert torch.allclose(proposal.factor.tril(), torch.linalg.cholesky(sigma[order][:, order]), atol=1e-12)
    assert torch.equal(proposal.variance, proposal.scale**2) and torch.equal(proposal.mean, zero)


@pytest.mark.parametrize("m", [12, 320])
def test_unbiased_on_the_exact_ar1_orthant(m):
    # m = 320 spans a block boundary of the sequential sampler (the GEMM-carried earlier blocks)
    rho = 0.8
    sigma = torch.as_tensor(rho ** np.abs(np.subtract.outer(np.arange(m), np.arange(m))))
    exact = ar1_log_orthant(m, rho)
    mean, error = _mean_ratio(CavityProposal(sigma, *_ep_sites(sigma)), exact, batches=40, size=64, seed=0)
    assert abs(mean - 1.0) < 4.0 * error + 1e-3
    assert error < 0.05


@pytest.mark.parametrize("proposal", PROPOSALS)
def test_both_proposals_bracket_the_exact_equicorrelated_orthant(proposal):
    m, rho = 300, 0.7
    y = np.random.default_rng(5).choice([-1.0, 1.0], size=m)
    K = (1 - rho) * np.eye(m) + rho
    exact = equicorrelated_log_orthant(y, rho)
    cert = certified_log_evidence(K, y, delta_prime=0.01, samples=1000, seed=0, proposal=proposal)
    assert cert.proposal == proposal
    assert cert.lower <= exact <= cert.upper
    assert abs(cert.log_estimate - exact) < 0.2


def test_far_more_effective_samples_than_tilting_on_a_correlated_kernel():
    # the reason it is the default: on an NNGP-like kernel (arc-cosine, strongly correlated) the
    # cavity weights stay nearly flat where the tilted ones degenerate (docs/evidence.md has MNIST)
    rng = np.random.default_rng(6)
    x = rng.normal(size=(400, 20))
    norms = np.linalg.norm(x, axis=1)
    cos = np.clip(x @ x.T / np.outer(norms, norms), -1, 1)
    theta = np.arccos(cos)
    K = 0.5 + (np.sin(theta) + (np.pi - theta) * cos) / (2 * np.pi)  # one ReLU layer over a bias
    y = np.where(x[:, 0] + 0.5 * x[:, 1] > 0, 1.0, -1.0)
    ep = ep_log_evidence(K, y, jitter=1e-6)
    options = dict(delta_prime=0.01, samples=1000, seed=0, jitter=1e-6)
    cavity = certified_log_evidence(K, y, proposal="ep-cavity", ep=ep, **options)
    tilted = certified_log_evidence(K, y, proposal="tilted", **options)
    assert cavity.effective_samples > 500 and cavity.effective_samples > 5 * tilted.effective_samples
    assert cavity.lower <= cavity.upper and tilted.lower <= tilted.upper


def test_passing_the_ep_result_equals_running_it_inside():
    K = _random_covariance(40, seed=7).numpy()
    y = np.random.default_rng(8).choice([-1.0, 1.0], size=40)
    inside = certified_log_evidence(K, y, delta_prime=0.05, samples=300, seed=2)
    given = certified_log_evidence(K, y, delta_prime=0.05, samples=300, seed=2, ep=ep_log_evidence(K, y))
    assert inside.lower == pytest.approx(given.lower, abs=1e-9)


@pytest.mark.parametrize(
    "sites, fragment",
    [
        ((np.ones(5), np.zeros(5)), "one entry per training point"),
        ((-np.ones(6), np.zeros(6)), "site precisions >= 0"),
        ((np.ones(6), np.full(6, np.nan)), "finite"),
    ],
)
def test_bad_sites_are_refused_with_one_line(sites, fragment):
    class Sites:
        site_precision, site_natural_mean = sites

    K = _random_covariance(6, seed=9).numpy()
    with pytest.raises(InputError, match=fragment):
        certified_log_evidence(K, np.ones(6), delta_prime=0.05, samples=10, ep=Sites())


def test_unknown_proposal_is_refused():
    with pytest.raises(InputError, match="proposal must be one of"):
        certified_log_evidence(np.eye(3), np.ones(3), delta_prime=0.05, proposal="ghk")


def test_permute_symmetric_in_place():
    a = torch.randn(9, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    a = a + a.T
    v = torch.arange(9.0)
    order = torch.randperm(9, generator=torch.Generator().manual_seed(1))
    b, w = a.clone(), v.clone()
    permute_symmetric(b, order, w)
    assert torch.equal(b, a[order][:, order]) and torch.equal(w, v[order])


@pytest.mark.parametrize("with_factor", [False, True])
def test_ep_covariance_equals_the_inverse_of_the_site_precision_sum(with_factor):
    # Sigma_Q = (Sigma^-1 + T)^-1 by direct inversion, signed variables, sites of every strength: EP's
    # own (with its inverse factor, or B factorised here), a zero site and a very weak one (the columns
    # computed from Sigma directly, where I - B^-1 would cancel)
    m = 40
    K = _random_covariance(m, 3)
    y = torch.where(torch.arange(m) % 3 == 0, -1.0, 1.0).double()
    ep = ep_log_evidence(K, y)
    tau = torch.as_tensor(ep.site_precision).clone()
    tau[5], tau[11] = 0.0, 1e-9 * float(tau.max())
    factor = ep.inverse_factor if with_factor else None
    if with_factor:
        tau = torch.as_tensor(ep.site_precision)
    sigma = K * y[:, None] * y[None, :]
    got, half_log_det = ep_covariance(sigma, tau, y, factor)
    expected = torch.linalg.inv(torch.linalg.inv(sigma) + torch.diag(tau))
    assert torch.equal(got, got.T)
    assert torch.allclose(got, expected, rtol=0, atol=1e-11 * float(expected.diagonal().max()))
    B = torch.eye(m, dtype=torch.float64) + torch.sqrt(tau)[:, None] * K * torch.sqrt(tau)[None, :]
    assert half_log_det == pytest.approx(0.5 * float(torch.logdet(B)), abs=1e-10)
