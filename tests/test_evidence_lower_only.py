"""The certified lower bound without psi*, and the EP-cavity proposal built from EP's own factor of B."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from pacbayes.errors import InputError
from pacbayes.evidence import certified_log_evidence, ep_log_evidence, equicorrelated_log_orthant
from pacbayes.evidence.certified import NOT_ASKED
from pacbayes.evidence.ep_cavity import CavityProposal, matches_inverse_factor


def _kernel_and_labels(m, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(m, m))
    K = torch.as_tensor(a @ a.T / m + 0.3 + 0.05 * np.eye(m))
    return K, torch.as_tensor(np.where(rng.random(m) < 0.5, -1.0, 1.0))


def _orthant(K, y, ep):
    sigma = K * y[:, None] * y[None, :]
    tau = torch.as_tensor(ep.site_precision)
    return sigma, tau, torch.as_tensor(ep.site_natural_mean) * y


@pytest.mark.parametrize("proposal", ["ep-cavity", "tilted"])
def test_lower_bound_alone_is_the_same_lower_bound(proposal):
    # upper=False leaves the draws and so the lower bound unchanged (same seed); psi* is not reported
    y = np.array([1.0, -1.0, 1.0, 1.0, -1.0, 1.0, -1.0, 1.0])
    rho = 0.5
    K = (1 - rho) * np.eye(8) + rho * np.ones((8, 8))
    options = dict(delta_prime=0.05, samples=3000, seed=4, proposal=proposal)
    both = certified_log_evidence(K, y, **options)
    alone = certified_log_evidence(K, y, upper=False, **options)
    assert alone.lower == both.lower and alone.log_estimate == both.log_estimate
    assert alone.upper is None and alone.upper_reason == NOT_ASKED and alone.grad_norm is None
    assert both.upper is not None and alone.lower <= equicorrelated_log_orthant(y, rho) <= both.upper


def test_lower_bound_alone_orders_by_the_sampler():
    # with the ep-cavity proposal and no psi* no tilting runs: the order is the sampler's, no Newton steps
    K, y = _kernel_and_labels(12, seed=0)
    ep = ep_log_evidence(K, y)
    cert = certified_log_evidence(K, y, delta_prime=0.05, samples=200, ep=ep, upper=False)
    sigma, tau, nu = _orthant(K, y, ep)
    assert cert.newton_steps == 0
    assert np.array_equal(cert.order, CavityProposal(sigma, tau, nu).order.numpy())


def test_upper_must_be_a_bool():
    with pytest.raises(InputError, match="upper must be True or False"):
        certified_log_evidence(np.eye(3), np.ones(3), delta_prime=0.05, upper="no")


def test_proposal_from_eps_factor_equals_the_proposal_built_afresh():
    # EP's last float64 factor of B replaces B's Cholesky: the same Gaussian, so the same weights
    K, y = _kernel_and_labels(40, seed=1)
    ep = ep_log_evidence(K, y, precision="double")
    sigma, tau, nu = _orthant(K, y, ep)
    assert matches_inverse_factor(sigma, torch.sqrt(tau), ep.inverse_factor, y)
    fresh = CavityProposal(sigma, tau, nu)
    reused = CavityProposal(sigma, tau, nu, inverse_factor=ep.inverse_factor, signs=y)
    assert reused.log_normaliser == pytest.approx(fresh.log_normaliser, rel=1e-10, abs=1e-10)
    assert torch.equal(reused.order, fresh.order)
    weights = [p.log_weights(500, torch.Generator().manual_seed(2)) for p in (fresh, reused)]
    assert torch.allclose(weights[0], weights[1], rtol=0.0, atol=1e-8)


@pytest.mark.parametrize("change", ["other kernel", "other sites", "signs", "float32"])
def test_a_factor_of_another_matrix_is_not_used(change):
    # the weights are those of P(S) only for the factor of this B: any other is refused by the probe
    K, y = _kernel_and_labels(30, seed=2)
    ep = ep_log_evidence(K, y, precision="double")
    sigma, tau, nu = _orthant(K, y, ep)
    factor, signs, root = ep.inverse_factor, y, torch.sqrt(tau)
    if change == "other kernel":
        factor = ep_log_evidence(K + 0.01 * torch.eye(30, dtype=torch.float64), y, precision="double").inverse_factor
    elif change == "other sites":
        root = torch.sqrt(1.01 * tau)
    elif change == "signs":
        signs = torch.ones_like(y)
    else:
        factor = factor.float()
    assert not matches_inverse_factor(sigma, root, factor, signs)
    reused = CavityProposal(sigma, root**2, nu, inverse_factor=factor, signs=signs)
    fresh = CavityProposal(sigma, root**2, nu)
    assert reused.log_normaliser == fresh.log_normaliser and torch.equal(reused.factor, fresh.factor)


def test_certified_with_eps_factor_is_unchanged_within_rounding():
    # certified_log_evidence reuses the EP result's factor: the estimate is that of a proposal built afresh
    K, y = _kernel_and_labels(50, seed=3)
    ep = ep_log_evidence(K, y, precision="double")
    reused = certified_log_evidence(K, y, delta_prime=0.05, samples=800, ep=ep, upper=False)
    ep.inverse_factor = None
    fresh = certified_log_evidence(K, y, delta_prime=0.05, samples=800, ep=ep, upper=False)
    assert math.isclose(reused.log_estimate, fresh.log_estimate, rel_tol=1e-10, abs_tol=1e-9)


@pytest.fixture(scope="module")
def demo_run():
    """(certify with the marginal family alone, the demo net trained on 30 embedded digits, its test data, options)."""
    from pacbayes.certification import CertifyOptions, certify
    from pacbayes.data import binarise, load_dataset, take
    from pacbayes.demo import demo_network, train_to_zero_error

    train = take(binarise(load_dataset("mnist-embedded", split="train")), 30, seed=1)
    test = take(load_dataset("mnist-embedded", split="test"), 100, seed=1)
    torch.manual_seed(0)
    model = demo_network(width=32)
    train_to_zero_error(model, train, quiet=True)
    options = CertifyOptions(bounds=("marginal",), quiet=True)
    return lambda marginal_options: certify(
        model, train, test, replace(options, marginal=replace(options.marginal, **marginal_options))
    )


def test_certify_no_upper_reports_the_same_certified_bound_without_psi(demo_run):
    full = demo_run({})
    lower_only = demo_run({"no_upper": True})
    a, b = full.bound("marginal-certified"), lower_only.bound("marginal-certified")
    assert (a.value, a.log_evidence, a.certified) == (b.value, b.log_evidence, b.certified)
    assert a.details["log_evidence_upper"] is not None and b.details["log_evidence_upper"] is None
    assert NOT_ASKED in lower_only.diagnostics["marginal"]["certified"]["upper_note"]


def test_certify_fixes_its_draw_count_from_a_pilot_unless_told_not_to(demo_run):
    # the default tolerance (0.1 nats) runs a discarded pilot of 1,000 draws and then at least 1,000 counted
    # draws; --sample-tolerance 0 keeps the fixed count of 10,000 with no pilot
    from pacbayes.evidence.certified import DEFAULT_SAMPLES, PILOT_SAMPLES

    piloted = demo_run({}).diagnostics["marginal"]["certified"]
    fixed = demo_run({"sample_tolerance": 0.0}).diagnostics["marginal"]["certified"]
    assert piloted["pilot_samples"] == PILOT_SAMPLES and PILOT_SAMPLES <= piloted["samples"] <= DEFAULT_SAMPLES
    assert fixed["pilot_samples"] == 0 and fixed["samples"] == DEFAULT_SAMPLES
