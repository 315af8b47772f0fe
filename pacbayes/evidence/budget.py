"""Expected time and peak memory of EP and the certified sandwich, said before they start.

Both estimators are dominated by dense factorisations of an n x n matrix (n = m for binary labels,
n = (C-1) m for the dense multi-class orthant; the structured multi-class EP factorises C matrices
of m x m per sweep). One probe matrix product on the target device, timed best of three, gives the
flop rate and so the seconds of a Cholesky (n^3 / 3 flops); the figures scale it by the work each
estimator does in Cholesky equivalents, and add what the flop count misses, each measured once per
process by a timed probe: the fixed cost of an EP sweep (a tiny EP run divided by its sweeps; it
dominates below a few hundred points) and the rate of the certified sampler's triangular passes (a
small certified run). The constants were fitted on the demo MLP's NNGP on mnist-embedded
(benchmarks/bench_estimates.py; EP converges in ~8 sweeps of ~3.6 Choleskys below 2,048 points, the structured
multi-class EP in ~11 sweeps of ~35 C Choleskys of m; the certified sandwich costs its pivoted
Cholesky, ~15 Newton Choleskys, ~3 Choleskys to build the EP-cavity proposal and one triangular pass
per sample, plus, when no EP result is passed to it, an EP of its own). They are estimates to plan
by, not guarantees. Memory: the number of n x n float64 matrices alive at the peak. A run that
cannot fit in the memory available is refused before any work, with the fix.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial

import torch

from pacbayes.device import threads_for
from pacbayes.estimates import best_time, remeasure_products, seconds_per_multiply_add
from pacbayes.evidence.certified import PILOT_SAMPLES, certified_log_evidence
from pacbayes.evidence.ep import MIXED_AUTO, EPResult, ep_log_evidence
from pacbayes.evidence.multiclass_ep import (
    MulticlassEPResult,
    certified_method,
    chosen_method,
    multiclass_ep_log_evidence,
)
from pacbayes.memory import check_fits

_PROBE_SIZE = 1024
EP_SWEEPS = 8  # sweeps to plan for below MIXED_AUTO (nested and prior starts converge in 6-11; 8 at m = 300)
EP_SWEEP_CHOLESKYS = 3.6  # per sweep, fitted at m = 300-2,000 (module docstring)
MIXED_EP_SWEEPS, MIXED_EP_CHOLESKYS = 7, 15.0  # from MIXED_AUTO points: sweeps, and Choleskys in all (nested start,
# float32 sweeps, three float64 ones): 13.6-15.3 measured at m = 10,000 (benchmarks/bench_evidence.py)
MULTICLASS_EP_SWEEPS = 11
EP_MATRICES = 3  # the prior, the input check's factor (unless left to the sandwich) and the sweep buffer
CERTIFIED_CHOLESKYS = 16.0
CAVITY_CHOLESKYS = 3.0  # about n^3 flops: B's inverse factor (given by EP), B^-1 from it, Sigma_Q's Cholesky
MULTICLASS_SWEEP_CHOLESKYS = 35.0  # per class and sweep, fitted at m = 50-400, C = 10 (module docstring)
CERTIFIED_MATRICES = 5  # K, the factor and the two Newton matrices in place, plus the draws
_SWEEP_PROBE = 32  # points of the EP run that measures a sweep's fixed cost
_SQUARE_PROBE = 384  # points of the EP run that measures a sweep's n^2 elementwise work
STRUCTURED_POINT_SECONDS = 4e-7  # per point, draw and class difference of the structured sampler's compiled pass
_SAMPLER_PROBE = (256, 1000)  # (points, draws) of the certified run that measures the sampler's rate


def seconds_per_cube(device: str) -> float:
    """Expected seconds of one n x n Cholesky divided by n^3: its n^3 / 3 flops (n^3 / 6 multiply-adds) at
    the rate of a float64 matrix product of size _PROBE_SIZE (:func:`pacbayes.estimates.seconds_per_multiply_add`),
    with torch's current thread count. A small Cholesky is dominated by overheads and would overstate large
    ones many times; a product runs near the machine's flop rate from this size on."""
    return seconds_per_multiply_add(torch.float64, device, (_PROBE_SIZE,) * 3) / 6.0


def _probe_problem(n: int, classes: int = 2) -> tuple:
    """A seeded, well-conditioned n x n kernel (a linear kernel of 64 Gaussian features plus a constant and
    a nugget, correlations like an NNGP's) and labels that follow its first feature, as trained labels do."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 64, dtype=torch.float64, generator=generator)
    K = x @ x.T / 64 + 0.5 + 0.1 * torch.eye(n, dtype=torch.float64)
    labels = torch.arange(n) % classes if classes > 2 else (x[:, 0] > 0).long() * 2 - 1
    return K, labels


@lru_cache(maxsize=8)
def _seconds_per_square(device: str) -> float:
    """Seconds per entry of the n^2 elementwise work of a binary EP sweep (forming and scaling m x m
    matrices, memory-bound): one EP run on _SQUARE_PROBE points, per sweep, less the fixed cost of a
    sweep and its factorisations, over n^2."""
    K, labels = _probe_problem(_SQUARE_PROBE)
    with threads_for(_SQUARE_PROBE, device):
        per_sweep = _per_sweep(K, labels, 2, device) - _sweep_overhead(device)
    factorisations = EP_SWEEP_CHOLESKYS * seconds_per_cube(device) * _SQUARE_PROBE**3
    return max(per_sweep - factorisations, 0.0) / _SQUARE_PROBE**2


@lru_cache(maxsize=16)
def _sweep_overhead(device: str, classes: int = 2) -> float:
    """Seconds of one EP sweep that do not grow with n^3 (Python, small kernels, the bar): a tiny EP run
    on the device, best of two, divided by its sweeps. ``classes`` > 2: the structured multi-class EP."""
    K, labels = _probe_problem(_SWEEP_PROBE, classes)
    with threads_for(_SWEEP_PROBE, device):  # as EP at that size runs (one CPU thread)
        return _per_sweep(K, labels, classes, device)


def _per_sweep(K, labels, classes: int, device: str) -> float:
    """Seconds per sweep of EP on (K, labels): best of two runs after an untimed one, over its sweeps."""

    run: Callable[[], EPResult | MulticlassEPResult]
    if classes == 2:
        run = partial(ep_log_evidence, K, labels, device=device, allow_unconverged=True)
    else:
        run = partial(
            multiclass_ep_log_evidence, K, labels, classes, device=device, method="structured", allow_unconverged=True
        )
    sweeps = run().sweeps
    return best_time(run) / max(sweeps, 1)


@lru_cache(maxsize=8)
def _sampler_rates(device: str) -> tuple:
    """(seconds per draw and entry of the sampler's n^2 triangular pass, seconds per variable of the rest):
    two small certified runs, one with three times the other's draws (after a warm-up that loads the
    compiled sampler). Their difference over the extra draws x n^2 is the first; what the smaller run
    spends besides its draws and factorisations, per variable, the second (the pivoted ordering and the
    Newton steps loop over the variables in Python)."""

    n, draws = _SAMPLER_PROBE
    K, labels = _probe_problem(n)

    def run(samples):
        return lambda: certified_log_evidence(K, labels, delta_prime=0.01, samples=samples, ep=ep, device=device)

    with threads_for(n, device):
        ep = ep_log_evidence(K, labels, device=device, allow_unconverged=True)
        run(draws)()
        few, many = best_time(run(draws)), best_time(run(3 * draws))
    per_entry = max(many - few, 0.1 * many) / (2 * draws * n * n)
    factorisations = (CERTIFIED_CHOLESKYS + CAVITY_CHOLESKYS) * seconds_per_cube(device) * n**3
    return per_entry, max(few - per_entry * draws * n * n - factorisations, 0.0) / n


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


def remeasure_probes() -> None:
    """Forget the probes' measurements (each is taken once per process and then reused), so that the next
    estimate measures the machine as it is now, e.g. beside a measurement it is compared with."""
    remeasure_products()
    for probe in (_seconds_per_square, _sweep_overhead, _sampler_rates):
        probe.cache_clear()


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def estimate(what: str, n: int, *, choleskys: float, matrices: int, extra_seconds: float = 0.0, device="cpu") -> Budget:
    """The :class:`Budget` of work equal to ``choleskys`` Choleskys of n x n holding ``matrices`` such matrices."""
    seconds = choleskys * seconds_per_cube(str(device)) * float(n) ** 3 + extra_seconds
    return Budget(what, int(n), seconds, int(matrices * 8 * n * n))


def orthant_dimension(m: int, classes: int) -> int:
    """Dimension of the Gaussian orthant that P(S) is: m for binary labels, (C-1) m for C classes."""
    return m if classes == 2 else (classes - 1) * m


def ep_budget(n: int, device="cpu", *, definite: bool = True) -> Budget:
    """Expected cost of converged parallel EP on an n x n prior covariance: EP_SWEEPS sweeps of
    EP_SWEEP_CHOLESKYS factorisations each (from MIXED_AUTO points, where EP starts nested and sweeps in float32
    first, MIXED_EP_SWEEPS sweeps and MIXED_EP_CHOLESKYS in all), plus the measured fixed and n^2 elementwise
    costs of a sweep. ``definite`` False: EP leaves the input's definiteness check (one Cholesky and its factor)
    to the certified sandwich that follows (``check_definite``)."""
    per_sweep = _sweep_overhead(str(device)) + _seconds_per_square(str(device)) * float(n) ** 2
    sweeps, choleskys = (
        (MIXED_EP_SWEEPS, MIXED_EP_CHOLESKYS) if n >= MIXED_AUTO else (EP_SWEEPS, EP_SWEEPS * EP_SWEEP_CHOLESKYS)
    )
    return estimate(
        "EP for ln P(S)",
        n,
        choleskys=choleskys - (not definite),
        matrices=EP_MATRICES - (not definite),
        extra_seconds=sweeps * per_sweep,
        device=device,
    )


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
        extra_seconds=MULTICLASS_EP_SWEEPS * _sweep_overhead(str(device), classes),
        device=device,
    )


def planned_draws(samples: int, sample_tolerance, classes: int) -> int:
    """The draws to plan for: ``samples``, or under a ``sample_tolerance`` the discarded pilot plus the count it
    fixes, planned as PILOT_SAMPLES for binary labels (the weights' relative variance on NNGP kernels is a few
    units, so the count stays at its floor) and as ``samples`` for more classes (heavy-tailed weights reach the
    cap)."""
    if sample_tolerance is None:
        return samples
    return PILOT_SAMPLES + (min(samples, PILOT_SAMPLES) if classes == 2 else samples)


def certified_budget(n: int, samples: int, device="cpu", *, proposal: str = "ep-cavity", upper: bool = True) -> Budget:
    """Expected cost of the certified sandwich: factorisations, ``samples`` triangular passes and the per-variable
    work; the ep-cavity proposal adds the factorisations of the EP Gaussian (its EP is budgeted separately).
    Without psi* (``upper`` False) the ep-cavity sampler runs no tilting: only the proposal (whose factorisation
    is also the input's definiteness check) and the draws.

    A draw costs n^2 multiply-adds at the GEMM rate plus per-variable work of the compiled pass, so per draw and
    entry alpha + beta / n: alpha = 2 flops at the rate of :func:`seconds_per_cube`'s probe, beta from the
    measured rate of a small run (:func:`_sampler_rates`), where the per-variable term dominates (fitted against
    m = 2,048 and 10,000: 6e-11 and 2.5e-11 s measured)."""
    probe_entry, per_variable = _sampler_rates(str(device))
    alpha = 6.0 * seconds_per_cube(str(device))  # 2 flops; a Cholesky's n^3 / 3 flops take seconds_per_cube n^3
    beta = max(probe_entry - alpha, 0.0) * _SAMPLER_PROBE[0]
    cavity = CAVITY_CHOLESKYS if proposal == "ep-cavity" else 0.0
    tilting = upper or proposal != "ep-cavity"
    return estimate(
        f"certified ln P(S) ({proposal} sampling" + (", minimax tilting for psi*)" if upper else ", no psi*)"),
        n,
        choleskys=(CERTIFIED_CHOLESKYS if tilting else 0.0) + cavity,
        matrices=CERTIFIED_MATRICES,
        extra_seconds=samples * (alpha + beta / n) * float(n) ** 2 + (per_variable * n if tilting else 0.0),
        device=device,
    )


def structured_certified_budget(m: int, classes: int, samples: int, device="cpu") -> Budget:
    """Expected cost of the structured multi-class sampler (:mod:`pacbayes.evidence.multiclass_sampler`): the
    proposal (the structured posterior with its operators and the per-point conditionals), ~28 C + 2 Choleskys
    of m, and per draw one (C - 1) m^2 product plus the compiled per-point work, about
    STRUCTURED_POINT_SECONDS (C - 1) per point (measured at m = 1,000-2,000, C = 10), holding ~3 C + 6 m x m
    matrices."""
    per_draw = 6.0 * (classes - 1) * float(m) ** 2 * seconds_per_cube(str(device))
    per_draw += STRUCTURED_POINT_SECONDS * (classes - 1) * m
    return estimate(
        "certified ln P(S) (structured multi-class sampler, no psi*)",
        m,
        choleskys=28.0 * classes + 2.0,
        matrices=3 * classes + 6,
        extra_seconds=samples * per_draw,
        device=device,
    )


def evidence_budgets(
    m: int,
    classes: int,
    samples: int,
    device="cpu",
    *,
    proposal="ep-cavity",
    with_ep=True,
    upper: bool = True,
    method: str = "auto",
    sample_tolerance=None,
) -> tuple:
    """(EP, certified sandwich) budgets for m training points with ``classes`` classes. Without a
    separate EP run (``with_ep`` False) the ep-cavity proposal runs its own, counted in the sandwich.
    ``upper``, ``method`` and ``sample_tolerance`` as the certified estimators take them (psi* or not; the
    multi-class sampler; a draw count fixed by a pilot, planned by :func:`planned_draws`)."""
    n = orthant_dimension(m, classes)
    samples = planned_draws(samples, sample_tolerance, classes)
    # the sandwich that follows proves the binary prior positive definite, so EP skips that check
    ep = ep_budget(n, device, definite=False) if classes == 2 else multiclass_ep_budget(m, classes, device)
    if classes > 2 and certified_method(m, classes, method) == "structured":
        certified = structured_certified_budget(m, classes, samples, device)
    else:
        certified = certified_budget(n, samples, device, proposal=proposal, upper=upper)
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
    "planned_draws",
    "remeasure_probes",
    "seconds_per_cube",
    "structured_certified_budget",
]
