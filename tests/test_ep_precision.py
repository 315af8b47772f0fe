"""EP's factor inverse and its float32 sweeps: the in-place triangular inverse, float32 against float64 runs."""

import numpy as np
import pytest
import torch

from pacbayes.evidence import ep_log_evidence
from pacbayes.evidence.ep import TRTRI_FROM, inverse_factor_of, invert_lower_in_place


def _lower(n, dtype, seed=0):
    generator = torch.Generator().manual_seed(seed)
    A = torch.randn(n, n, dtype=torch.float64, generator=generator) / n**0.5
    return torch.linalg.cholesky(A @ A.T + torch.eye(n, dtype=torch.float64)).to(dtype)


@pytest.mark.parametrize("n", [1, 7, 1024, 1025, 2100])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_inverse_in_place_is_the_triangular_inverse(n, dtype):
    L = _lower(n, dtype, seed=n)
    reference = torch.linalg.inv(L.double())
    work = L + torch.triu(torch.full_like(L, 7.0), 1)  # the strict upper triangle is not read
    assert invert_lower_in_place(work).data_ptr() == work.data_ptr()
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    np.testing.assert_allclose(work.tril().double(), reference, atol=tol * float(reference.abs().max()))


@pytest.mark.parametrize("n", [300, TRTRI_FROM])
def test_the_factor_inverse_is_the_same_on_either_side_of_the_lapack_threshold(n):
    # torch's blocked inverse below TRTRI_FROM rows, LAPACK's trtri from there on: both L^-1 over B, zeros above
    L = _lower(n, torch.float64, seed=n)
    B = L @ L.T
    inverse, half_log_det = inverse_factor_of(B.clone())
    reference = torch.linalg.inv(torch.linalg.cholesky(B))
    assert torch.equal(inverse, inverse.tril())
    np.testing.assert_allclose(inverse, reference, atol=1e-12 * float(reference.abs().max()))
    assert half_log_det == pytest.approx(0.5 * float(torch.logdet(B)), rel=1e-12)


def _rbf(m, seed=0, jitter=1e-6):
    x = np.random.default_rng(seed).normal(size=(m, 5))
    K = np.exp(-0.1 * ((x[:, None] - x[None]) ** 2).sum(-1)) + jitter * np.eye(m)
    return K, np.sign(x[:, 0] + 0.3 * x[:, 1] + 0.05)


def _rank_four(m, seed=1):
    x = np.random.default_rng(seed).normal(size=(m, 4))
    return x @ x.T / 4, np.sign(x[:, 0] + 0.3 * x[:, 1])


# (make, jitter, tol, rtol of ln Z, rtol of the sites). At the default tol 1e-6 the float32-first run and the
# float64 run stop within the convergence slack of each other. On the rank-4 kernel EP contracts slowly and
# "change <= tol" leaves ~1e-5 relative to the fixed point for either run, so the two are compared converged
# to 1e-9; its sites are determined to a few 1e-6 there (flat directions), ln Z to float64 rounding.
CASES = {
    "well-conditioned": (lambda: _rbf(500, jitter=1e-2), 0.0, 1e-6, 1e-6, None),
    "well-conditioned, tight": (lambda: _rbf(500, jitter=1e-2), 0.0, 1e-12, 1e-10, 1e-6),
    "near-singular (rank 4 + jitter), tight": (lambda: _rank_four(500), 1e-6, 1e-9, 1e-8, 1e-4),
    "all labels equal": (lambda: (_rbf(500)[0], np.ones(500)), 0.0, 1e-6, 1e-6, None),
    "all labels equal, tight": (lambda: (_rbf(500)[0], np.ones(500)), 0.0, 1e-12, 1e-10, 1e-6),
}


@pytest.mark.parametrize("case", list(CASES))
def test_float32_sweeps_reach_the_float64_result(case):
    make, jitter, tol, rtol, site_rtol = CASES[case]
    K, y = make()
    options = {"jitter": jitter, "start": "prior", "tol": tol, "max_sweeps": 400}
    double = ep_log_evidence(K, y, precision="double", **options)
    mixed = ep_log_evidence(K, y, precision="mixed", **options)
    assert double.converged and mixed.converged and mixed.single_sweeps > 0
    assert mixed.log_evidence == pytest.approx(double.log_evidence, rel=rtol)
    if site_rtol is not None:
        for new, reference in (
            (mixed.site_precision, double.site_precision),
            (mixed.site_natural_mean, double.site_natural_mean),
        ):
            np.testing.assert_allclose(new, reference, atol=site_rtol * np.abs(reference).max())


# Sweeps (of them float32) before the factor inverse moved from SciPy's LAPACK trtri into torch, same cases
# (nested start, mixed precision, m = 600): the inverse changes rounding only, not the schedule.
PREVIOUS_SWEEPS = {"rbf": (8, 5), "all +1": (19, 10)}


@pytest.mark.parametrize("case", list(PREVIOUS_SWEEPS))
def test_sweep_count_not_larger_than_before(case):
    K, y = _rbf(600)
    y = np.ones(600) if case == "all +1" else y
    result = ep_log_evidence(K, y, start="nested", precision="mixed")
    sweeps, single = PREVIOUS_SWEEPS[case]
    assert result.converged and result.sweeps <= sweeps
    assert result.sweeps - result.single_sweeps <= sweeps - single
