"""Expected time and peak memory of EP and the certified sandwich, said before they start.

Both estimators are dominated by dense factorisations of an n x n matrix (n = m for binary labels,
n = (C-1) m for the dense multi-class orthant; the structured multi-class EP factorises C matrices
of m x m per sweep). One probe matrix product on the target device, timed best of three, gives the
flop rate and so the seconds of a Cholesky (n^3 / 3 flops); the figures scale it by the work each
estimator does in Cholesky equivalents (measured on the MNIST NNGP benchmarks, benchmarks/
bench_evidence.py: with the nested start EP converges in ~6 sweeps of ~2.3 Choleskys, float32 ones
cheaper, plus the input check's Cholesky; the multi-class EP in ~10 structured sweeps of ~9 C
Choleskys of m (benchmarks/bench_multiclass.py); the certified sandwich costs its pivoted Cholesky,
~15 Newton Choleskys and one triangular pass per sample, plus ~8 Choleskys to build the EP-cavity
proposal and, when no EP result is passed to it, an EP of its own). They are estimates to plan by,
not guarantees. Memory: the number of n x n float64 matrices alive at the peak. A run that cannot
fit in the memory available is refused before any work, with the fix.
"""

import time
from dataclasses import dataclass
from functools import lru_cache

import torch

from pacbayes.memory import check_fits
from pacbayes.evidence.multiclass_ep import chosen_method

_PROBE_SIZE = 1024
EP_CHOLESKYS = 15.0
MULTICLASS_EP_SWEEPS = 10
EP_MATRICES = 3  # the prior, the input check's factor and the sweep buffer
CERTIFIED_CHOLESKYS = 16.0
CAVITY_CHOLESKYS = 8.0  # about 2.6 n^3 flops: B's Cholesky, a triangular solve, half a product, Sigma_Q's Cholesky
MULTICLASS_SWEEP_CHOLESKYS = 9.0  # per class, measured at m = 5,000 (91 Choleskys of m per sweep, C = 10)
CERTIFIED_MATRICES = 5  # K, the factor and the two Newton matrices in place, plus the draws


@lru_cache(maxsize=8)
def _seconds_per_cube(device: str) -> float:
    """Expected seconds of one n x n Cholesky divided by n^3: its n^3 / 3 flops at the rate of a probe
    matrix product of size _PROBE_SIZE (best of three). A small Cholesky is dominated by overheads
    and would overstate large ones many times; a product runs near the machine's flop rate from
    this size on."""
    dev = torch.device(device)
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(_PROBE_SIZE, _PROBE_SIZE, dtype=torch.float64, generator=generator).to(dev)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        a @ a
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        best = min(best, time.perf_counter() - start)
    seconds_per_flop = best / (2.0 * _PROBE_SIZE**3)
    return seconds_per_flop / 3.0


@dataclass(frozen=True)
class Budget:
    """Expected seconds and peak bytes of one estimator run on an n x n problem."""

    what: str
    n: int
    seconds: float
    peak_bytes: int

    def line(self) -> str:
        return (
            f"{self.what}: n = {self.n:,}, expected ~{_duration(self.seconds)} and ~{self.peak_bytes / 2**30:.2f} GiB "
            "peak (estimate from a timed probe)"
        )

    def check_fits(self, device: str, fix: str) -> None:
        """InputError, naming ``fix``, when the peak exceeds the memory available on ``device``."""
        check_fits(self.peak_bytes, torch.device(device), f"{self.what} at n = {self.n:,}", fix)


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def estimate(what: str, n: int, *, choleskys: float, matrices: int, extra_seconds: float = 0.0, device="cpu") -> Budget:
    """The :class:`Budget` of work equal to ``choleskys`` Choleskys of n x n holding ``matrices`` such matrices."""
    seconds = choleskys * _seconds_per_cube(str(device)) * float(n) ** 3 + extra_seconds
    return Budget(what, int(n), seconds, int(matrices * 8 * n * n))


def orthant_dimension(m: int, classes: int) -> int:
    """Dimension of the Gaussian orthant that P(S) is: m for binary labels, (C-1) m for C classes."""
    return m if classes == 2 else (classes - 1) * m


def ep_budget(n: int, device="cpu") -> Budget:
    """Expected cost of converged parallel EP on an n x n prior covariance."""
    return estimate("EP for ln P(S)", n, choleskys=EP_CHOLESKYS, matrices=EP_MATRICES, device=device)


def multiclass_ep_budget(m: int, classes: int, device="cpu") -> Budget:
    """Expected cost of multi-class EP: the dense (C-1)m orthant, or the structured posterior of
    :mod:`pacbayes.evidence.multiclass_posterior` (about 6.6 C m^3 flops, measured as the time of
    ~9 C Choleskys of m per sweep; two stacks of C m x m matrices and a few more), as
    :func:`multiclass_ep.chosen_method` picks."""
    if chosen_method(m, classes) == "dense":
        return ep_budget(orthant_dimension(m, classes), device)
    return estimate(
        "multi-class EP for ln P(S) (structured)",
        m,
        choleskys=MULTICLASS_EP_SWEEPS * MULTICLASS_SWEEP_CHOLESKYS * classes,
        matrices=6 * classes + 10,  # the two stacks of C, the predictive's and the temporaries
        device=device,
    )


def certified_budget(n: int, samples: int, device="cpu", *, proposal: str = "ep-cavity") -> Budget:
    """Expected cost of the certified sandwich: factorisations plus ``samples`` triangular passes (n^2 each);
    the ep-cavity proposal adds the factorisations of the EP Gaussian (its EP is budgeted separately)."""
    per_pass = _seconds_per_cube(str(device)) * float(n) ** 2 * 6.0  # n^2 multiply-adds at the product rate
    cavity = CAVITY_CHOLESKYS if proposal == "ep-cavity" else 0.0
    return estimate(
        f"certified ln P(S) ({proposal} sampling, minimax tilting for psi*)",
        n,
        choleskys=CERTIFIED_CHOLESKYS + cavity,
        matrices=CERTIFIED_MATRICES,
        extra_seconds=samples * per_pass,
        device=device,
    )


def evidence_budgets(m: int, classes: int, samples: int, device="cpu", *, proposal="ep-cavity", with_ep=True) -> tuple:
    """(EP, certified sandwich) budgets for m training points with ``classes`` classes. Without a
    separate EP run (``with_ep`` False) the ep-cavity proposal runs its own, counted in the sandwich."""
    n = orthant_dimension(m, classes)
    ep = ep_budget(n, device) if classes == 2 else multiclass_ep_budget(m, classes, device)
    certified = certified_budget(n, samples, device, proposal=proposal)
    if proposal == "ep-cavity" and not with_ep:
        certified = Budget(certified.what, n, certified.seconds + ep.seconds, max(certified.peak_bytes, ep.peak_bytes))
    return ep, certified


__all__ = [
    "Budget",
    "certified_budget",
    "ep_budget",
    "estimate",
    "evidence_budgets",
    "multiclass_ep_budget",
    "orthant_dimension",
]
