"""The samplers' sequential pass: the compiled CPU kernel against a direct reference with the same
uniforms, its special functions against SciPy, the torch loop (other devices) against exact
orthants, seeds and threads, and the sample count fixed by a discarded pilot."""

import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch
from orthants import ar1_log_orthant

from pacbayes.errors import InputError
from pacbayes.evidence import (
    _sampler_kernel,
    certified,
    certified_log_evidence,
    ep_log_evidence,
    equicorrelated_log_orthant,
    sequential,
)
from pacbayes.evidence.ep_cavity import CavityProposal
from pacbayes.evidence.sequential import SAMPLE_BLOCK
from pacbayes.evidence.tilted import (
    pivoted_cholesky_order,
    solve_tilting,
    tilted_log_weights,
    tilted_steps,
    triangular_gram,
)


def _covariance(m, seed):
    a = np.random.default_rng(seed).normal(size=(m, m))
    return torch.as_tensor(a @ a.T / m + 0.3 + 0.2 * np.eye(m))


def _cavity(sigma, seed):
    """The EP-cavity proposal of ``sigma`` with arbitrary sites (any tau >= 0 keeps it unbiased)."""
    rng = np.random.default_rng(seed)
    m = sigma.shape[0]
    return CavityProposal(sigma, torch.as_tensor(rng.uniform(0, 0.5, m)), torch.as_tensor(rng.normal(size=m)))


def _tilted(sigma):
    """(L, mu) of the tilted proposal of ``sigma``."""
    _, L = pivoted_cholesky_order(sigma)
    return L, solve_tilting(L)[0]


def _reference(L, steps, samples, seed):
    """The recurrence of :class:`Steps` written out in NumPy and SciPy, one coordinate at a time over all
    draws, with the compiled pass's uniforms (one SAMPLE_BLOCK x samples block after another)."""
    generator = torch.Generator().manual_seed(seed)
    m = L.shape[0]
    uniforms = torch.cat(
        [
            torch.rand(min(SAMPLE_BLOCK, m - s), samples, dtype=torch.float64, generator=generator)
            for s in range(0, m, SAMPLE_BLOCK)
        ]
    ).numpy()
    strict, table = np.tril(L.numpy(), -1), torch.stack(steps, 1).numpy()
    Z, log_w = np.zeros((m, samples)), np.zeros(samples)
    for k in range(m):
        offset, lower_base, lower_slope, z_base, z_slope, z_scale, base, slope, curve, draw = table[k]
        c = offset + strict[k] @ Z
        lower = lower_base + lower_slope * c
        log_mass = scipy.special.log_ndtr(-lower)
        x = np.maximum(-scipy.special.ndtri_exp(np.log1p(-uniforms[k]) + log_mass), lower)
        Z[k] = z_base + z_slope * c + z_scale * x
        log_w += log_mass + base + c * (slope + curve * c) + draw * x
    return log_w


@pytest.fixture
def two_threads():
    """The compiled pass splits the draws over torch's threads: use two."""
    kept = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(kept)


@pytest.fixture
def torch_loop(monkeypatch):
    """Run the per-coordinate torch loop (the path of devices other than the CPU) on the CPU."""
    monkeypatch.setattr(sequential, "uses_compiled_kernel", lambda L: False)


@pytest.mark.parametrize("proposal", ["ep-cavity", "tilted"])
def test_compiled_pass_equals_the_recurrence_written_out(proposal, two_threads):
    # m = 300 and 300 draws span SAMPLE_BLOCK and TILE boundaries and both threads' ranges
    m, samples, seed = 300, 300, 4
    sigma = _covariance(m, seed=1)
    if proposal == "ep-cavity":
        cavity = _cavity(sigma, seed=2)
        L, steps = cavity.factor, cavity.steps()
    else:
        L, mu = _tilted(sigma)
        steps = tilted_steps(L, mu)
    assert sequential.uses_compiled_kernel(L)
    got = sequential.sequential_log_weights(L, steps, samples, torch.Generator().manual_seed(seed), desc="")
    np.testing.assert_allclose(got.numpy(), _reference(L, steps, samples, seed), rtol=1e-10, atol=1e-9)


def test_kernel_log_ndtr_matches_scipy():
    t = np.concatenate([np.linspace(-1e4, 40, 3001), np.linspace(-40, 40, 4001), [-25.0, np.nextafter(-25.0, 0), 0.0]])
    got = np.vectorize(_sampler_kernel.log_ndtr)(t)
    reference = scipy.special.log_ndtr(t)
    np.testing.assert_allclose(got, reference, rtol=1e-13, atol=1e-300)


def test_kernel_ndtri_exp_matches_scipy_and_inverts_log_ndtr_beyond_it():
    log_p = -np.concatenate([np.logspace(-300, 3, 3001), np.linspace(1e-18, 60, 3001)])
    got = np.vectorize(_sampler_kernel.ndtri_exp)(log_p)
    np.testing.assert_allclose(got, scipy.special.ndtri_exp(log_p), rtol=1e-13)
    far = -np.logspace(3, 7, 200)  # SciPy's own inverse loses digits here: check the round trip instead
    x = np.vectorize(_sampler_kernel.ndtri_exp)(far)
    np.testing.assert_allclose(scipy.special.log_ndtr(x), far, rtol=1e-14)
    assert _sampler_kernel.ndtri_exp(0.0) == math.inf and _sampler_kernel.ndtri_exp(-math.inf) == -math.inf


@pytest.mark.parametrize("lower", [-3.0, 0.0, 0.5, 2.9, 3.5, 8.0, 40.0])
def test_kernel_truncated_normal_matches_scipy(lower):
    uniforms = torch.rand(4000, dtype=torch.float64, generator=torch.Generator().manual_seed(5)).numpy()
    z, log_mass = np.vectorize(_sampler_kernel.truncated_normal)(lower, uniforms)
    assert (z >= lower).all()
    assert log_mass[0] == pytest.approx(scipy.stats.norm.logsf(lower), rel=1e-12)
    assert scipy.stats.kstest(z, scipy.stats.truncnorm(lower, np.inf).cdf).pvalue > 1e-3


@pytest.mark.parametrize("lower", [-40.0, -3.0, 0.0, 30.0])
def test_kernel_truncated_normal_at_the_ends_of_the_uniform(lower):
    # u = 0 is Pr[X >= x] = Pr[X >= lower], so x = lower; u just below 1 is far out in the tail
    x, log_mass = _sampler_kernel.truncated_normal(lower, 0.0)
    assert x == pytest.approx(lower, rel=1e-14, abs=1e-14) and log_mass == pytest.approx(scipy.stats.norm.logsf(lower))
    x, _ = _sampler_kernel.truncated_normal(lower, 1.0 - 2.0**-53)
    assert math.isfinite(x) and x > max(lower, 0.0) + 1.0


@pytest.mark.parametrize("proposal", ["ep-cavity", "tilted"])
def test_torch_loop_is_unbiased_on_the_exact_ar1_orthant(proposal, torch_loop):
    # the path of devices other than the CPU; m = 320 spans the blocks of the GEMM-carried earlier coordinates
    m, rho = 320, 0.8
    sigma = torch.as_tensor(rho ** np.abs(np.subtract.outer(np.arange(m), np.arange(m))))
    if proposal == "ep-cavity":
        ep = ep_log_evidence(sigma, np.ones(m))
        draw = CavityProposal(
            sigma, torch.as_tensor(ep.site_precision), torch.as_tensor(ep.site_natural_mean)
        ).log_weights
    else:
        L, mu = _tilted(sigma)
        draw = lambda n, g: tilted_log_weights(L, mu, n, g)  # noqa: E731
    generator = torch.Generator().manual_seed(0)
    log_w = torch.stack([draw(64, generator) for _ in range(40)])
    ratios = np.exp((torch.logsumexp(log_w, 1) - math.log(64)).numpy() - ar1_log_orthant(m, rho))
    error = ratios.std(ddof=1) / math.sqrt(ratios.size)
    assert abs(ratios.mean() - 1.0) < 4.0 * error + 1e-3 and error < 0.1


def test_same_seed_same_weights_and_threads_do_not_change_them():
    sigma = _covariance(200, seed=6)
    cavity = _cavity(sigma, seed=7)

    def draw(seed, threads):
        kept = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return cavity.log_weights(500, torch.Generator().manual_seed(seed))
        finally:
            torch.set_num_threads(kept)

    one = draw(3, 1)
    assert torch.equal(one, draw(3, 1)) and not torch.equal(one, draw(4, 1))
    torch.testing.assert_close(draw(3, 2), one, rtol=1e-12, atol=1e-12)


def _equicorrelated(m=15, rho=0.9):
    y = np.random.default_rng(15).choice([-1.0, 1.0], size=m)
    return (1 - rho) * np.eye(m) + rho, y, equicorrelated_log_orthant(y, rho)


@pytest.fixture
def recorded_draws(monkeypatch):
    """A pilot of 200 draws, and every call of the tilted sampler by the certified sandwich recorded."""
    monkeypatch.setattr(certified, "PILOT_SAMPLES", 200)
    calls = []

    def recording(*args, **options):
        calls.append(tilted_log_weights(*args, **options))
        return calls[-1]

    monkeypatch.setattr(certified, "tilted_log_weights", recording)
    return calls


# the tilted weights' relative variance is about 0.19 here: the counts are the cap, ~475 and the floor
@pytest.mark.parametrize("tolerance", [0.002, 0.02, 1.0])
def test_pilot_fixes_the_count_and_only_the_later_draws_count(tolerance, recorded_draws):
    K, y, exact = _equicorrelated()
    cert = certified_log_evidence(
        K, y, delta_prime=0.01, samples=3000, seed=0, proposal="tilted", sample_tolerance=tolerance
    )
    pilot, counted = recorded_draws
    weights = np.exp(pilot.numpy() - pilot.numpy().max())
    relative_variance = weights.size * (weights**2).sum() / weights.sum() ** 2 - 1.0
    assert cert.pilot_samples == 200 and pilot.numel() == 200
    assert cert.samples == counted.numel() == min(3000, max(200, math.ceil(relative_variance / tolerance**2)))
    assert cert.log_estimate == pytest.approx(float(torch.logsumexp(counted, 0)) - math.log(counted.numel()), abs=1e-12)
    assert cert.lower <= exact <= cert.upper


def test_counts_of_the_pilot_rule_span_floor_middle_and_cap(recorded_draws):
    K, y, _ = _equicorrelated()
    counts = [
        certified_log_evidence(
            K, y, delta_prime=0.01, samples=3000, seed=0, proposal="tilted", sample_tolerance=tolerance
        ).samples
        for tolerance in (0.002, 0.02, 1.0)
    ]
    assert counts[0] == 3000 and 200 < counts[1] < 3000 and counts[2] == 200


@pytest.mark.parametrize("samples, tolerance", [(300, None), (150, 0.1)])
def test_a_fixed_count_or_a_cap_at_the_pilot_size_draws_no_pilot(samples, tolerance, recorded_draws):
    K, y, _ = _equicorrelated()
    cert = certified_log_evidence(
        K, y, delta_prime=0.01, samples=samples, seed=0, proposal="tilted", sample_tolerance=tolerance
    )
    assert (cert.samples, cert.pilot_samples, len(recorded_draws)) == (samples, 0, 1)


@pytest.mark.parametrize("tolerance", [0.0, -0.1, float("nan"), float("inf"), "0.1", [0.1]])
def test_bad_sample_tolerance_is_refused(tolerance):
    K, y, _ = _equicorrelated(4, 0.5)
    with pytest.raises(InputError, match="sample_tolerance must be a"):
        certified_log_evidence(K, y, delta_prime=0.1, sample_tolerance=tolerance)


@pytest.mark.parametrize("m", [1, 7, 512, 1100])
def test_triangular_gram_is_the_product(m):
    # the tilting's C = D^-1 L L^T D^-1 from the lower block triangle only (block 512: m = 1100 has three)
    L = torch.randn(m, m, dtype=torch.float64, generator=torch.Generator().manual_seed(m)).tril_()
    torch.testing.assert_close(triangular_gram(L), L @ L.T, rtol=1e-13, atol=1e-11)
