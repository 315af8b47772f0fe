"""Certified sandwich by minimax tilting (Botev 2017): exact references, reproducibility, parts."""

import math

import numpy as np
import pytest
import scipy.stats
import torch
from orthants import ar1_log_orthant

from pacbayes.errors import InputError
from pacbayes.evidence import certified_log_evidence, equicorrelated_log_orthant
from pacbayes.evidence._gauss import exp, mills_ratio, truncated_normal_above
from pacbayes.evidence.certified import PROPOSALS
from pacbayes.evidence.tilted import (
    maximise_psi,
    pivoted_cholesky_order,
    solve_tilting,
    tilted_log_weights,
)


def _equicorrelated(m, rho, seed):
    y = np.random.default_rng(seed).choice([-1.0, 1.0], size=m)
    return (1 - rho) * np.eye(m) + rho, y


@pytest.mark.parametrize("rho, m", [(0.1, 200), (0.5, 200), (0.9, 200), (0.9, 1000)])
def test_sandwich_contains_exact_equicorrelated(rho, m):
    K, y = _equicorrelated(m, rho, seed=m + 1)
    exact = equicorrelated_log_orthant(y, rho)
    cert = certified_log_evidence(K, y, delta_prime=0.01, samples=1000, seed=0)
    assert cert.lower <= exact <= cert.upper
    assert cert.grad_norm < 1e-6
    assert cert.lower == pytest.approx(cert.log_estimate - math.log(100.0), abs=1e-12)
    assert abs(cert.log_estimate - exact) < 0.2  # the estimate itself is close, not just bracketing


def test_estimate_is_accurate_on_small_exact_cases():
    # Sheppard's formula at m = 2 and the trivariate exchangeable orthant
    rho = 0.6
    K2 = np.array([[1.0, rho], [rho, 1.0]])
    cert = certified_log_evidence(K2, [1, -1], delta_prime=0.5, samples=20_000, seed=3)
    assert cert.log_estimate == pytest.approx(math.log(0.25 - math.asin(rho) / (2 * math.pi)), abs=0.01)
    K3 = (1 - rho) * np.eye(3) + rho
    cert = certified_log_evidence(K3, [1, 1, 1], delta_prime=0.5, samples=20_000, seed=3)
    assert cert.log_estimate == pytest.approx(math.log(0.125 + 3 * math.asin(rho) / (4 * math.pi)), abs=0.01)


def test_seeded_and_reproducible():
    K, y = _equicorrelated(30, 0.5, seed=2)
    a = certified_log_evidence(K, y, delta_prime=0.05, seed=11, samples=500)
    b = certified_log_evidence(K, y, delta_prime=0.05, seed=11, samples=500)
    c = certified_log_evidence(K, y, delta_prime=0.05, seed=12, samples=500)
    assert a.log_estimate == b.log_estimate and a.upper == b.upper
    assert c.log_estimate != a.log_estimate and c.upper == a.upper  # psi* is deterministic
    assert (a.seed, a.samples, a.delta_prime, a.jitter) == (11, 500, 0.05, 0.0)


def test_pivoted_cholesky_factorises_the_permuted_covariance():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(150, 150))
    sigma = torch.as_tensor(A @ A.T / 150 + 0.1 * np.eye(150))
    perm, L = pivoted_cholesky_order(sigma)
    assert sorted(perm.tolist()) == list(range(150))
    assert torch.allclose(L, torch.tril(L))
    assert torch.allclose(L @ L.T, sigma[perm][:, perm], atol=1e-12)


def test_saddle_is_stationary_and_psi_star_bounds_every_weight():
    m, rho = 12, 0.7
    K, y = _equicorrelated(m, rho, seed=9)
    yt = torch.as_tensor(y)
    _, L = pivoted_cholesky_order(yt[:, None] * torch.as_tensor(K) * yt[None, :])
    mu, x, _, _ = solve_tilting(L)
    strict = L / L.diagonal()[:, None]
    strict.diagonal().zero_()
    grad_mu = mills_ratio(mu + strict @ x) + mu - x  # d psi / d mu at the saddle (Botev eq. 9)
    assert float(grad_mu.abs().max()) < 1e-8 and float(mu[-1]) == 0.0
    best, _, grad_norm = maximise_psi(x, mu, strict)
    assert grad_norm < 1e-8 and best >= equicorrelated_log_orthant(y, rho)
    # re-maximisation from a perturbed x returns to the same maximum (psi is concave in x)
    start = x + 0.5 * torch.as_tensor(np.random.default_rng(1).normal(size=m))
    again, _, grad_norm = maximise_psi(start, mu, strict)
    assert grad_norm < 1e-8 and again == pytest.approx(best, abs=1e-9)
    # the bounding argument itself: every importance weight is at most exp(psi*)
    log_w = tilted_log_weights(L, mu, 5000, torch.Generator().manual_seed(0))
    assert float(log_w.max()) <= best + 1e-9


@pytest.mark.parametrize("lower", [-3.0, 0.0, 0.5, 2.9, 3.5, 8.0, 40.0])
def test_truncated_normal_sampler_matches_scipy(lower):
    generator = torch.Generator().manual_seed(5)
    z, log_mass = truncated_normal_above(torch.full((4000,), lower, dtype=torch.float64), generator)
    z = z.numpy()
    assert (z >= lower).all()
    assert float(log_mass[0]) == pytest.approx(scipy.stats.norm.logsf(lower), rel=1e-12)
    assert scipy.stats.kstest(z, scipy.stats.truncnorm(lower, np.inf).cdf).pvalue > 1e-3


def test_gauss_helpers_against_scipy():
    t = torch.tensor([-300.0, -40.0, -5.0, 0.0, 3.0, 30.0], dtype=torch.float64)
    reference = np.exp(scipy.stats.norm.logpdf(t.numpy()) - scipy.special.log_ndtr(t.numpy()))
    np.testing.assert_allclose(mills_ratio(t).numpy(), reference, rtol=1e-10)
    x = torch.linspace(-700, 700, 101, dtype=torch.float64)
    np.testing.assert_allclose(exp(x).numpy(), np.exp(x.numpy()), rtol=1e-12)


@pytest.mark.parametrize(
    "kwargs",
    [{"delta_prime": 0.0}, {"delta_prime": 1.0}, {"delta_prime": 0.1, "samples": 0}, {"delta_prime": 0.1, "seed": -1}],
)
def test_bad_options(kwargs):
    K, y = _equicorrelated(4, 0.5, seed=0)
    with pytest.raises(InputError):
        certified_log_evidence(K, y, **kwargs)


def _fifteen_points():
    K, y = _equicorrelated(15, 0.9, seed=15)
    return K, y, equicorrelated_log_orthant(y, 0.9)


@pytest.fixture
def early_stop(monkeypatch):
    """Start the psi maximisation away from the saddle (x + 1) and allow it a single Newton step:
    psi there is -14.99, below the exact ln P(S) = -12.59 of the fifteen-point kernel."""
    from pacbayes.evidence import certified, tilted

    solve, maximise = tilted.solve_tilting, tilted.maximise_psi

    def shifted(L):
        mu, x, t, steps = solve(L)
        return mu, x + 1.0, t, steps

    monkeypatch.setattr(certified, "solve_tilting", shifted)
    monkeypatch.setattr(certified, "maximise_psi", lambda x, mu, strict: maximise(x, mu, strict, max_steps=1))


def test_early_stopped_psi_is_not_reported_as_an_upper_bound(early_stop):
    """Issue 11 (5): psi at an unconverged iterate is below the maximum (here below the truth)."""
    K, y, exact = _fifteen_points()
    cert = certified_log_evidence(K, y, delta_prime=0.01, samples=2000, seed=0)
    assert cert.upper is None
    assert "gradient norm" in cert.upper_reason and f"{cert.grad_norm:.1e}" in cert.upper_reason
    assert cert.grad_norm > 1.0 and cert.lower <= exact  # the Markov lower bound does not need psi*


def test_psi_below_a_tilted_weight_is_refused(monkeypatch):
    """A psi* below the largest tilted log weight drawn cannot be the maximum: no upper (either proposal)."""
    from pacbayes.evidence import certified, tilted

    maximise = tilted.maximise_psi

    def claims_stationary(x, mu, strict):
        value, x, _ = maximise(x, mu, strict)
        return value - 5.0, x, 0.0

    monkeypatch.setattr(certified, "maximise_psi", claims_stationary)
    K, y, _ = _fifteen_points()
    for proposal in PROPOSALS:
        cert = certified_log_evidence(K, y, delta_prime=0.01, samples=2000, seed=0, proposal=proposal)
        assert cert.upper is None and "below" in cert.upper_reason


def test_converged_upper_bounds_exact_and_genz_values():
    """A normal run certifies psi*: above the exact equicorrelated value and above SciPy's Genz."""
    from pacbayes.evidence.tilted import PSI_GRAD_TOL

    K, y, exact = _fifteen_points()
    cert = certified_log_evidence(K, y, delta_prime=0.01, samples=2000, seed=0)
    assert cert.upper_reason is None and cert.grad_norm <= PSI_GRAD_TOL
    assert cert.lower <= exact <= cert.upper and cert.upper >= cert.log_estimate
    rng = np.random.default_rng(4)
    A = rng.normal(size=(8, 8))
    K8, y8 = A @ A.T / 8 + 0.2 * np.eye(8), rng.choice([-1.0, 1.0], size=8)
    genz = math.log(
        scipy.stats.multivariate_normal.cdf(
            np.zeros(8),
            cov=y8[:, None] * K8 * y8[None, :],
            maxpts=400_000,
            abseps=1e-14,
            releps=1e-6,
            rng=np.random.default_rng(0),
        )
    )
    cert8 = certified_log_evidence(K8, y8, delta_prime=0.01, samples=2000, seed=0)
    assert cert8.upper_reason is None and cert8.upper >= genz + 2e-3  # Genz's own error ~1e-4 nats
    assert cert8.lower <= genz - 2e-3


def test_cli_prints_and_records_an_uncertified_upper(early_stop, tmp_path):
    import json

    from click.testing import CliRunner

    from pacbayes.cli import main

    K, y, _ = _fifteen_points()
    np.save(tmp_path / "K.npy", K)
    np.save(tmp_path / "y.npy", y)
    args = [
        "evidence",
        "--kernel",
        str(tmp_path / "K.npy"),
        "--labels",
        str(tmp_path / "y.npy"),
        "--method",
        "certified",
        "--samples",
        "500",
        "--quiet",
    ]
    text = CliRunner().invoke(main, args)
    assert text.exit_code == 0, text.output
    assert "not certified: " in text.output and "-14.99" not in text.output
    payload = json.loads(CliRunner().invoke(main, args + ["--json"]).stdout)
    assert payload["log_evidence_upper"] is None and "gradient" in payload["log_evidence_upper_note"]
    assert payload["log_evidence_lower"] is not None


def test_marginal_bound_details_without_psi_star(early_stop):
    from pacbayes.families.marginal import MarginalSettings, marginal_bounds

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)).double()
    x = torch.as_tensor(np.random.default_rng(0).normal(size=(16, 2)))
    signs = torch.sign(x[:, 0] + 1e-3)
    results, diagnostics = marginal_bounds(
        model, x[:12], signs[:12], x[12:], signs[12:], classes=2, delta=0.05, settings=MarginalSettings(device="cpu")
    )
    certified = next(r for r in results if r.name == "marginal-certified")
    assert certified.details["log_evidence_upper"] is None
    assert certified.details["best_possible_bound"] is None
    assert "gradient" in certified.details["log_evidence_upper_note"]
    assert diagnostics["certified"]["upper"] is None and certified.value <= 1.0


def _equicorrelated_case(labels, rho, jitter=0.0):
    """K = (1 - rho) I + rho 11^T; K + jitter I is equicorrelated again, correlation rho / (1 + jitter)."""
    y = np.asarray(labels, dtype=float)
    return (1 - rho) * np.eye(y.size) + rho, y, jitter, equicorrelated_log_orthant(y, rho / (1 + jitter)), 0.0


def _duplicate_case(jitter=1e-6):
    """Eight RBF points of which the last repeats the first (two identical rows); Genz reference."""
    X = np.random.default_rng(1).normal(size=(7, 3))
    X = np.r_[X, X[:1]]
    K = np.exp(-0.25 * ((X[:, None] - X[None]) ** 2).sum(-1))
    y = np.sign(X[:, 0] + 0.01)
    cov = y[:, None] * (K + jitter * np.eye(8)) * y[None, :]
    genz = scipy.stats.multivariate_normal.cdf(
        np.zeros(8), cov=cov, maxpts=400_000, abseps=1e-14, releps=1e-6, rng=np.random.default_rng(0)
    )
    return K, y, jitter, math.log(genz), 2e-3  # Genz's own error here is ~1e-4 nats


HARD_CASES = {
    "all +1, rho 0.5": lambda: _equicorrelated_case(np.ones(20), 0.5),
    "all -1, rho 0.999": lambda: _equicorrelated_case(-np.ones(20), 0.999),
    "18 vs 2, rho 0.5": lambda: _equicorrelated_case(np.r_[np.ones(18), -np.ones(2)], 0.5),
    "9 vs 1, rho 0.999": lambda: _equicorrelated_case(np.r_[np.ones(9), -1.0], 0.999),
    "near-singular all +1": lambda: _equicorrelated_case(np.ones(20), 0.999999, jitter=1e-6),
    "near-singular 18 vs 2": lambda: _equicorrelated_case(np.r_[np.ones(18), -np.ones(2)], 0.999999, 1e-6),
    "near-singular 10 vs 10": lambda: _equicorrelated_case(np.r_[np.ones(10), -np.ones(10)], 0.999999, 1e-6),
    "duplicate points": _duplicate_case,
}


@pytest.mark.parametrize("case", list(HARD_CASES))
def test_sandwich_on_unbalanced_near_singular_and_duplicate_kernels(case):
    """lower <= exact <= upper (psi*, certified where its maximiser converges, else refused with the
    reason) with all-equal / 9:1 labels, K + 1e-6 I at rho = 0.999999, and two identical rows; the
    estimate itself is close to the exact value."""
    K, y, jitter, exact, error = HARD_CASES[case]()
    cert = certified_log_evidence(K, y, delta_prime=0.01, samples=2000, seed=0, jitter=jitter)
    assert cert.lower <= exact - error
    if cert.upper is None:  # psi's maximiser may stall on a near-singular kernel: then it must say so
        assert case.startswith("near-singular") and "gradient norm" in cert.upper_reason
    else:
        assert exact + error <= cert.upper
    assert abs(cert.log_estimate - exact) < 0.05


def test_ar1_reference_matches_genz():
    import scipy.stats

    m, rho = 8, 0.8
    cov = rho ** np.abs(np.subtract.outer(np.arange(m), np.arange(m)))
    genz = scipy.stats.multivariate_normal.cdf(
        np.zeros(m), cov=cov, maxpts=400_000, abseps=1e-12, releps=1e-7, rng=np.random.default_rng(0)
    )
    assert ar1_log_orthant(m, rho) == pytest.approx(math.log(genz), abs=1e-4)


@pytest.mark.parametrize("m", [12, 320])
def test_estimate_is_unbiased_for_the_exact_ar1_orthant(m):
    # E[Z_hat] = P(S) is what Markov's step needs: the mean of many small independent estimates must
    # match the exact AR(1) orthant probability (m = 320 spans a block boundary of the sampler, so the
    # GEMM-carried contributions of earlier blocks take part)
    rho = 0.8
    sigma = torch.as_tensor(rho ** np.abs(np.subtract.outer(np.arange(m), np.arange(m))))
    _, L = pivoted_cholesky_order(sigma)
    mu, _, _, _ = solve_tilting(L)
    exact = ar1_log_orthant(m, rho)
    generator = torch.Generator().manual_seed(0)
    log_w = torch.stack([tilted_log_weights(L, mu, 64, generator) for _ in range(60)])
    ratios = np.exp((torch.logsumexp(log_w, 1) - math.log(64)).numpy() - exact)
    standard_error = ratios.std(ddof=1) / math.sqrt(ratios.size)
    assert abs(ratios.mean() - 1.0) < 4.0 * standard_error + 1e-3
    assert standard_error < 0.1  # the check has power
