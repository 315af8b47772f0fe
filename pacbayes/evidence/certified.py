"""The certified sandwich for ln P(S): Markov's inequality on an unbiased estimate, and psi*.

P(S) = Pr[g > 0] for g = Y f ~ N(0, Sigma), Sigma = Y (K + jitter I) Y.

* Lower bound: an importance-sampling estimate Z_hat (the mean of ``samples`` seeded weights) has
  E[Z_hat] = P(S), so by Markov's inequality ln P(S) >= ln Z_hat - ln(1/delta') with probability
  >= 1 - delta' over the sampling (:func:`pacbayes.bounds.markov_lower_bound`). The proposal is
  an option fixed before any draw, never chosen from the weights, so the step holds for either:

  - ``"ep-cavity"`` (default): the EP Gaussian's cavity conditionals,
    :mod:`pacbayes.evidence.ep_cavity`, from EP sites (passed in, or from a run of
    :func:`pacbayes.evidence.ep_log_evidence`). Unbiased whatever the sites; EP only sets the
    variance, which on MNIST NNGP kernels is far below the tilted one (docs/evidence.md).
  - ``"tilted"``: Botev's (2017) minimax-tilted GHK, :mod:`pacbayes.evidence.tilted`.

* Sample count: ``samples`` draws, fixed before any is seen; or, given ``sample_tolerance`` (nats),
  chosen from a pilot: PILOT_SAMPLES draws, then discarded, estimate the relative variance r of the
  weights, and the count is fixed at N = ceil(r / sample_tolerance^2) (the standard error of
  ln Z_hat, about sqrt(r / N), at most the tolerance), within [PILOT_SAMPLES, samples]. The N counted
  draws come after the pilot's and are independent of them, so conditionally on N, E[Z_hat] = P(S)
  and Markov's step holds as for a fixed count: no union over stopping times, no share of delta'.

* Upper bound: psi* = max_x psi(x; mu*) at Botev's saddle point (his Theorem 3.1), deterministic,
  reported only when certified (:func:`pacbayes.evidence.tilted.certified_upper`): every tilted
  weight is at most exp(psi*), so a psi below one drawn is refused; with the ep-cavity proposal
  PSI_CHECK_DRAWS tilted draws (after the cavity ones, same generator) serve that check. It is
  optional (``upper=False``): the lower bound never uses it, and with the ep-cavity proposal the
  tilting it needs is most of the sandwich's time at large m.
"""

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from pacbayes import checks
from pacbayes.bounds import markov_lower_bound
from pacbayes.defaults import DEFAULT_PROPOSAL, PROPOSALS
from pacbayes.defaults import EVIDENCE_SAMPLES as DEFAULT_SAMPLES
from pacbayes.errors import ConvergenceError, InputError
from pacbayes.evidence._gauss import exp
from pacbayes.evidence._validate import require_positive_definite, validate_inputs
from pacbayes.evidence.ep import ep_log_evidence
from pacbayes.evidence.ep_cavity import CavityProposal
from pacbayes.evidence.multiclass import difference_covariance
from pacbayes.evidence.multiclass_ep import multiclass_ep_log_evidence
from pacbayes.evidence.tilted import (
    certified_upper,
    maximise_psi,
    pivoted_cholesky_order,
    solve_tilting,
    tilted_log_weights,
)
from pacbayes.results import CERTIFIED_SUMMARY, SerialisesItself

PSI_CHECK_DRAWS = 256  # tilted draws that check psi* when the lower bound uses the ep-cavity proposal
PILOT_SAMPLES = 1_000  # draws that fix the count under a sample tolerance, then discarded
NOT_ASKED = "not computed: psi* was not asked for (upper=False); the lower bound does not need it"


@dataclass
class CertifiedEvidence(SerialisesItself):
    """A certified sandwich for ln P(S) under the prior N(0, K + jitter I).

    ``lower`` holds with probability >= 1 - ``delta_prime`` over the sampling (Markov);
    ``upper`` = psi* (Botev 2017, Theorem 3.1) is deterministic, and is given only when the
    maximiser of psi converged (``grad_norm`` <= PSI_GRAD_TOL) and psi* is not below any tilted
    log weight drawn (all of them, or PSI_CHECK_DRAWS with the ep-cavity proposal); otherwise, or
    when it was not asked for (``grad_norm`` is then None), it is None and ``upper_reason`` says why;
    ``log_estimate`` = ln Z_hat is the unbiased-in-Z importance-sampling estimate of ``proposal``.
    ``order`` is the variable order of the tilting (psi*), or of the EP-cavity sampler when no
    tilting ran (ep-cavity proposal, upper=False). ``samples`` draws were counted in ln Z_hat,
    after ``pilot_samples`` discarded ones that fixed that count (0: the count was fixed in advance).
    """

    SUMMARY = CERTIFIED_SUMMARY

    lower: float
    log_estimate: float
    upper: float | None
    grad_norm: float | None
    samples: int
    seed: int
    seconds: float
    jitter: float
    delta_prime: float
    relative_std: float
    effective_samples: float
    newton_steps: int
    order: np.ndarray = field(repr=False)
    upper_reason: str | None = None
    proposal: str = DEFAULT_PROPOSAL
    pilot_samples: int = 0


def _check_options(delta_prime, samples, seed, chunk, proposal, sample_tolerance, upper):
    if not isinstance(upper, bool):
        raise InputError(f"upper must be True or False, got {upper!r}")
    if not (isinstance(delta_prime, (int, float)) and 0.0 < delta_prime < 1.0):
        raise InputError(f"delta_prime must be in (0, 1), got {delta_prime!r}")
    if sample_tolerance is not None and not checks.finite(sample_tolerance, "sample_tolerance") > 0.0:
        raise InputError(f"sample_tolerance must be a positive number of nats, got {sample_tolerance!r}")
    for name, value, low in (("samples", samples, 1), ("chunk", chunk, 1), ("seed", seed, 0)):
        checks.integer_at_least(value, name, low)
    if proposal not in PROPOSALS:
        raise InputError(f"proposal must be one of {', '.join(PROPOSALS)}, got {proposal!r}")


def _orthant_sites(ep, labels):
    """EP sites (tau, nu) of g = Y f from those of f (an EP result's, flattened row by row), checked."""
    tau, nu = (
        torch.as_tensor(np.asarray(s, dtype=np.float64).reshape(-1), device=labels.device)
        for s in (ep.site_precision, ep.site_natural_mean)
    )
    if tau.shape != labels.shape or nu.shape != labels.shape:
        raise InputError(f"the EP sites must have one entry per training point ({labels.numel()}); pass the EP of K")
    if not bool(torch.isfinite(tau).all() and torch.isfinite(nu).all() and (tau >= 0.0).all()):
        raise InputError("the EP sites must be finite with site precisions >= 0; pass a finished EP result")
    return tau, nu * labels


def _cavity_proposal(sigma, labels, ep, jitter) -> CavityProposal:
    """The EP-cavity proposal of the sites of ``ep`` on the orthant of ``sigma`` = Y (K + jitter I) Y, reusing EP's
    last factor of B when it checks out.

    Its Cholesky factorisation of Sigma_Q doubles as the input's positive-definiteness check: Sigma_Q is the Schur
    complement of the positive definite B = I + T^1/2 Sigma T^1/2 in [[Sigma, Sigma T^1/2], [T^1/2 Sigma, B]],
    which is congruent to diag(Sigma, I), so (Haynsworth) Sigma_Q has the inertia of Sigma and is positive
    definite exactly when Sigma is. When a factorisation fails, the input check runs and names a prior that is not
    positive definite; otherwise the failure is the proposal's own."""
    tau, nu = _orthant_sites(ep, labels)
    try:
        return CavityProposal(sigma, tau, nu, inverse_factor=getattr(ep, "inverse_factor", None), signs=labels)
    except ConvergenceError:
        require_positive_definite(sigma, jitter)
        raise


def _draws(log_weights, samples, chunk):
    return torch.cat([log_weights(min(chunk, samples - done)) for done in range(0, samples, chunk)])


def _counted_draws(log_weights, samples, chunk, sample_tolerance):
    """(log weights of the counted draws, pilot draws discarded): ``samples`` draws, or under a
    ``sample_tolerance`` the count fixed from a discarded pilot (module docstring)."""
    if sample_tolerance is None or samples <= PILOT_SAMPLES:
        return _draws(log_weights, samples, chunk), 0
    pilot = _draws(log_weights, PILOT_SAMPLES, chunk)
    weights = exp(pilot - pilot.max())
    relative_variance = float(PILOT_SAMPLES * (weights * weights).sum() / weights.sum() ** 2) - 1.0
    count = min(samples, max(PILOT_SAMPLES, math.ceil(relative_variance / sample_tolerance**2)))
    return _draws(log_weights, count, chunk), PILOT_SAMPLES


def _weight_summary(log_w):
    """(ln of the mean weight, relative standard deviation, effective sample size) of the log weights."""
    counted = log_w.numel()
    weights = exp(log_w - log_w.max())
    relative_std = float(weights.std() / weights.mean()) if counted > 1 else math.nan
    effective = float(weights.sum() ** 2 / (weights * weights).sum())
    return float(torch.logsumexp(log_w, 0)) - math.log(counted), relative_std, effective


def evidence_from_weights(
    log_w, *, delta_prime, seed, start, jitter, order, proposal, pilot, upper_reason, upper=None, grad_norm=None,
    newton_steps=0,
) -> "CertifiedEvidence":  # fmt: skip
    """The :class:`CertifiedEvidence` of counted importance log weights ``log_w``: ln Z_hat their log mean,
    ``lower`` = ln Z_hat - ln(1/delta_prime) (Markov, :func:`pacbayes.bounds.markov_lower_bound`), the weights'
    spread, and the seconds since ``start``; psi* (``upper``) and what the sampler did are given by the caller."""
    log_estimate, relative_std, effective = _weight_summary(log_w)
    return CertifiedEvidence(
        lower=markov_lower_bound(log_estimate, delta_prime),
        log_estimate=log_estimate,
        upper=upper,
        grad_norm=grad_norm,
        samples=log_w.numel(),
        seed=seed,
        seconds=time.perf_counter() - start,
        jitter=jitter,
        delta_prime=float(delta_prime),
        relative_std=relative_std,
        effective_samples=effective,
        newton_steps=newton_steps,
        order=order.cpu().numpy(),
        upper_reason=upper_reason,
        proposal=proposal,
        pilot_samples=pilot,
    )


@dataclass
class _Tilting:
    """Botev's minimax tilting of the orthant: variable order, D^-1 L (unit diagonal), saddle point mu, x."""

    order: torch.Tensor
    factor: torch.Tensor
    mu: torch.Tensor
    x: torch.Tensor
    newton_steps: int

    def log_weights(self, samples, generator, quiet):
        """Tilted log weights: the sampler needs L only up to the scale of its rows (D^-1 L)."""
        return tilted_log_weights(self.factor, self.mu, samples, generator, quiet=quiet)


def _minimax_tilting(sigma, quiet) -> _Tilting:
    """The ordering, the Cholesky factor and the saddle point of psi, in ``sigma``'s memory (destroyed)."""
    order, L = pivoted_cholesky_order(sigma, quiet=quiet, overwrite=True)
    mu, x, _, newton_steps = solve_tilting(L)
    return _Tilting(order, L.div_(L.diagonal().clone()[:, None]), mu, x, newton_steps)


def _psi_star(tilting: _Tilting):
    """(psi at the maximiser's last iterate, its gradient norm) at the saddle-point mu, L~ = D^-1 L - I
    formed in the factor's memory and restored after."""
    strict = tilting.factor
    strict.diagonal().zero_()
    try:
        value, _, grad_norm = maximise_psi(tilting.x, tilting.mu, strict)
    finally:
        strict.diagonal().fill_(1.0)
    return value, grad_norm


def certified_log_evidence(
    K,
    y,
    *,
    delta_prime,
    seed=0,
    samples=DEFAULT_SAMPLES,
    jitter=0.0,
    device=None,
    quiet=True,
    chunk=10_000,
    proposal=DEFAULT_PROPOSAL,
    ep=None,
    sample_tolerance=None,
    upper=True,
) -> CertifiedEvidence:
    """Sandwich for ln P(S), f ~ N(0, K + jitter I): lower (prob. >= 1 - delta_prime) and psi*.

    ``proposal``: "ep-cavity" or "tilted" (module docstring). ``ep``: for ep-cavity, an EP result
    for the same K and y (its ``site_precision`` and ``site_natural_mean``, flattened row by row:
    one site per variable of f), e.g. :func:`pacbayes.evidence.ep_log_evidence`'s; None runs EP
    here (not converging does not matter: any sites keep the estimate unbiased). psi*
    (``upper``) is None, with ``upper_reason``, when it cannot be certified; the lower bound does
    not depend on it. ``samples`` draws in chunks of ``chunk`` (memory chunk x m floats),
    reproducible from ``seed`` (results depend on seed, samples, chunk and, for ep-cavity, the
    EP sites). Peak memory: K and three m x m matrices. ``sample_tolerance`` (nats): ``samples`` is
    then the most draws, the count fixed by a pilot (module docstring). ``upper`` False: psi* is not
    computed (``upper`` None, ``upper_reason`` NOT_ASKED, ``grad_norm`` None); with the ep-cavity
    proposal the minimax tilting is then skipped altogether (its ordering, Newton solve and psi's
    maximisation cost more than the lower bound at large m).
    """
    _check_options(delta_prime, samples, seed, chunk, proposal, sample_tolerance, upper)
    start = time.perf_counter()
    if proposal == "ep-cavity" and ep is None:  # EP first: its memory is released before the copies below
        ep = ep_log_evidence(
            K, y, jitter=jitter, device=device, quiet=quiet, allow_unconverged=True, check_definite=False
        )
    # the ep-cavity proposal's factorisation of Sigma_Q proves K + jitter I positive definite (_cavity_proposal)
    prior, labels, jitter = validate_inputs(K, y, jitter, device, definite=proposal != "ep-cavity")
    sigma = prior.mul_(labels[:, None]).mul_(labels[None, :])  # Y (K + jitter I) Y, in place
    del prior
    generator = torch.Generator(device=sigma.device).manual_seed(seed)
    psi_value, grad_norm, newton_steps, max_tilted = math.nan, math.nan, 0, -math.inf
    if proposal == "ep-cavity":
        cavity = _cavity_proposal(sigma, labels, ep, jitter)
        log_w, pilot = _counted_draws(
            lambda n: cavity.log_weights(n, generator, quiet=quiet), samples, chunk, sample_tolerance
        )
        order = cavity.order
        del cavity
    if proposal == "tilted" or upper:
        tilting = _minimax_tilting(sigma, quiet)
        del sigma
        order, newton_steps = tilting.order, tilting.newton_steps
        if upper:
            psi_value, grad_norm = _psi_star(tilting)
        if proposal == "tilted":
            log_w, pilot = _counted_draws(
                lambda n: tilting.log_weights(n, generator, quiet), samples, chunk, sample_tolerance
            )
            max_tilted = float(log_w.max())
        elif upper:  # a few tilted draws only to check psi*: each tilted weight is at most exp(psi*)
            max_tilted = float(tilting.log_weights(PSI_CHECK_DRAWS, generator, quiet).max())
    upper_value, upper_reason = certified_upper(psi_value, grad_norm, max_tilted) if upper else (None, NOT_ASKED)
    return evidence_from_weights(
        log_w,
        delta_prime=delta_prime,
        seed=seed,
        start=start,
        jitter=jitter,
        order=order,
        proposal=proposal,
        pilot=pilot,
        upper_reason=upper_reason,
        upper=upper_value,
        grad_norm=grad_norm if upper else None,
        newton_steps=newton_steps,
    )


def multiclass_certified_log_evidence(
    K,
    labels,
    classes,
    *,
    delta_prime,
    samples=DEFAULT_SAMPLES,
    seed=0,
    jitter=0.0,
    device=None,
    quiet=True,
    proposal=DEFAULT_PROPOSAL,
    ep=None,
    sample_tolerance=None,
    upper=True,
) -> CertifiedEvidence:
    """Certified sandwich for the multi-class ln P(S): lower (prob. >= 1 - delta_prime) and psi*.

    :func:`pacbayes.evidence.certified_log_evidence` run on the dense (C-1)m orthant of
    :func:`difference_covariance` with every sign +1: certified by the same argument as the binary
    case. For the ep-cavity proposal, ``ep`` is a multi-class EP result for the same K and labels
    (its (m, C-1) sites on g_ic flatten row by row to the orthant's order); None runs
    :func:`pacbayes.evidence.multiclass_ep_log_evidence` here. ``jitter`` of the result is the prior
    jitter of every logit; ``sample_tolerance`` and ``upper`` as for the binary case. Cost: the dense (C-1)m
    matrix (memory 8 (C-1)^2 m^2 bytes, three of them at the peak) and its factorisations, plus
    ``samples`` sequential draws of (C-1)m coordinates; measured on the 2-core CPU in
    docs/evidence.md (Multi-class).
    """
    if proposal == "ep-cavity" and ep is None:
        ep = multiclass_ep_log_evidence(
            K, labels, classes, jitter=jitter, device=device, quiet=quiet, allow_unconverged=True
        )
    sigma = difference_covariance(K, labels, classes, jitter, device=device)
    result = certified_log_evidence(
        sigma,
        torch.ones(sigma.shape[0], dtype=sigma.dtype, device=sigma.device),
        delta_prime=delta_prime,
        seed=seed,
        samples=checks.integer_at_least(samples, "samples", 1),
        device=device,
        quiet=quiet,
        proposal=proposal,
        ep=ep,
        sample_tolerance=sample_tolerance,
        upper=upper,
    )
    result.jitter = float(jitter)
    return result


__all__ = [
    "DEFAULT_PROPOSAL",
    "DEFAULT_SAMPLES",
    "PROPOSALS",
    "CertifiedEvidence",
    "certified_log_evidence",
    "multiclass_certified_log_evidence",
]
