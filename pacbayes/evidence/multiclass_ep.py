"""Multi-class ln P(S) by expectation propagation on the C - 1 differences per point, and its predictive.

P(S) = Pr[g > 0], g_ic = f_{y_i}(x_i) - f_c(x_i), f ~ N(0, I_C (x) K') (see
:mod:`pacbayes.evidence.multiclass`). EP puts one Heaviside site 1[g_ic > 0] ~ N(g_ic | nu/tau, 1/tau)
on each of the (C-1)m differences (Minka 2001; the multinomial-probit EP of Riihimäki, Jylänki &
Vehtari, JMLR 14, 2013, in its zero-noise limit), with the tilted moments, ln Z_EP and the
parallel schedule with adaptive damping of the binary EP (:mod:`pacbayes.evidence.ep`).

* method "dense": the binary EP run unchanged on the dense (C-1)m orthant of
  :func:`~pacbayes.evidence.multiclass.difference_covariance` (every sign +1). Memory and time grow
  as ((C-1)m)^2 and ((C-1)m)^3 per sweep.
* method "structured": the same sites and updates, with the posterior computed from the
  I_C (x) K structure (:mod:`pacbayes.evidence.multiclass_posterior`): per sweep C Choleskys of
  m x m plus two m x m Woodbury corrections, memory 2 C m^2 floats. EP's fixed point depends only
  on the prior of g and the sites, so both methods follow the same iterates up to rounding.
* "auto": dense while (C-1)m <= DENSE_LIMIT and C <= DENSE_CLASSES, else structured.
"""

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from pacbayes import checks
from pacbayes.defaults import MULTICLASS_METHODS
from pacbayes.errors import InputError
from pacbayes.evidence._validate import validate_test_kernels
from pacbayes.evidence.ep import (
    DEFAULT_TOL,
    _check_options,
    _tilted,
    checked_convergence,
    ep_log_evidence,
    parallel_update,
    run_sweeps,
)
from pacbayes.evidence.multiclass import difference_covariance, pair_index, validate_multiclass
from pacbayes.evidence.multiclass_posterior import (
    StructuredBuffers,
    pair_marginals,
    star_transpose,
    structured_posterior,
)
from pacbayes.progress import progress
from pacbayes.results import EPEstimate

METHODS = MULTICLASS_METHODS
# "auto" uses the dense orthant up to this many differences (C-1)m and classes; beyond C = 4 its
# (2/3) (C-1)^3 m^3 flops per sweep exceed the structured ~6.6 C m^3.
DENSE_LIMIT, DENSE_CLASSES = 3000, 4
# the certified bound uses the dense orthant up to this many differences (C-1)m (m = 1,000 at C = 10: three
# 9,000^2 matrices, 1.9 GB), the structured sampler (pacbayes.evidence.multiclass_sampler) beyond
CERTIFIED_DENSE_LIMIT = 9000
STRUCTURED_MIXED_AUTO = 1000  # "auto" precision of the structured posterior: float32 sweeps first from this m
DEFAULT_PREDICT_SAMPLES = 20_000  # Monte Carlo draws per test point: standard error <= 0.5/sqrt(n) = 0.0035
_PREDICT_FLOATS = 20_000_000  # test points per chunk: C * m * C * chunk floats for W K_cross


@dataclass
class MulticlassEPResult(EPEstimate):
    """Converged (or explicitly flagged) EP estimate of the multi-class ln P(S); an estimate, not a bound.

    Sites are (m, C-1) arrays on g_ic, column j of point i being class ``pair_index(labels, C)[i, j]``.
    ``prior`` (K + jitter I) and the sites define q(f); :func:`multiclass_ep_predict` uses them.
    """

    jitter: float
    classes: int
    method: str
    tol: float
    damping: float
    labels: np.ndarray
    site_precision: np.ndarray
    site_natural_mean: np.ndarray
    history: list = field(default_factory=list)
    prior: torch.Tensor | None = field(default=None, repr=False)

    @property
    def m(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class _PairMarginals:
    """What the EP loop needs of the structured posterior: ln|I + (I_C (x) K) W| / 2 and the pairs' marginals."""

    half_log_det: float
    mean: torch.Tensor
    variance: torch.Tensor


def _structured_ep(prior, labels, classes, tol, max_sweeps, damping, precision, quiet):
    """The EP loop of :func:`pacbayes.evidence.ep.run_sweeps` with the structured posterior."""
    m = prior.shape[0]
    other = torch.as_tensor(pair_index(labels, classes), device=prior.device)
    own = torch.as_tensor(labels, device=prior.device)
    ones = torch.ones(m * (classes - 1), dtype=prior.dtype, device=prior.device)
    prior_var = 2.0 * prior.diagonal()[:, None].expand(m, classes - 1).reshape(-1)  # Var(g_ic) = 2 K'_ii
    _, tau, nu = _tilted(ones, 1.0 / prior_var, torch.zeros_like(prior_var))
    priors, buffers = {torch.float64: prior}, StructuredBuffers()

    def posterior(tau, nu, dtype):
        if dtype not in priors:
            priors[dtype] = prior.to(dtype)
        post = structured_posterior(
            priors[dtype], own, other, tau.reshape(m, -1).to(dtype), nu.reshape(m, -1).to(dtype), buffers=buffers
        )
        mean, variance = (t.reshape(-1).double() for t in pair_marginals(post, own, other))
        return _PairMarginals(float(post.half_log_det), mean, variance)

    bar = progress(total=max_sweeps, desc=f"multi-class EP (m={m}, C={classes})", quiet=quiet, unit="sweep")
    run = run_sweeps(
        posterior,
        parallel_update(ones),
        ones,
        tau,
        nu,
        tol=tol,
        max_sweeps=max_sweeps,
        damping=damping,
        precision=precision,
        what="multi-class EP",
        bar=bar,
    )
    bar.close()
    return run


def chosen_method(m: int, classes: int, method: str = "auto") -> str:
    """The EP method run for m points and C classes: ``method`` itself, or what "auto" picks."""
    if method != "auto":
        return method
    return "dense" if (classes - 1) * m <= DENSE_LIMIT and classes <= DENSE_CLASSES else "structured"


def certified_method(m: int, classes: int, method: str = "auto") -> str:
    """The sampler of the multi-class certified bound: ``method`` itself, or what "auto" picks ("dense" while
    (C-1)m <= CERTIFIED_DENSE_LIMIT: its EP-cavity proposal on the full orthant is the tighter; "structured"
    beyond: O(C m^2) memory per class factor instead of ((C-1)m)^2)."""
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if method != "auto":
        return method
    return "dense" if (classes - 1) * m <= CERTIFIED_DENSE_LIMIT else "structured"


def multiclass_ep_log_evidence(
    K,
    labels,
    classes,
    *,
    jitter=0.0,
    tol=DEFAULT_TOL,
    max_sweeps=200,
    damping="adaptive",
    device=None,
    quiet=True,
    method="auto",
    precision="auto",
    allow_unconverged=False,
) -> MulticlassEPResult:
    """Estimate ln P(S) = ln Pr[f_{y_i}(x_i) > f_c(x_i) for all i, c != y_i], f ~ N(0, I_C (x) (K + jitter I)).

    K: m x m one-logit kernel; labels: class indices 0..classes-1 (a class without training points
    is allowed). ``tol``, ``max_sweeps``, ``damping``, ``allow_unconverged`` as in
    :func:`pacbayes.evidence.ep_log_evidence` (parallel schedule): stop when the change of ln Z
    between sweeps is <= tol max(1, |ln Z|); ConvergenceError otherwise unless allow_unconverged.
    ``method``: "dense", "structured" or "auto" (see the module docstring). ``precision``: "mixed"
    (float32 sweeps first, converged in float64), "double" or "auto" (as the binary EP decides for
    the dense orthant; mixed for the structured posterior from m = STRUCTURED_MIXED_AUTO).
    """
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    _check_options(tol, max_sweeps, damping, "parallel", precision=precision)
    start = time.perf_counter()
    prior, labels, classes, jitter = validate_multiclass(K, labels, classes, jitter, device)
    size = (classes - 1) * labels.size
    method = chosen_method(labels.size, classes, method)
    if method == "dense":
        sigma = difference_covariance(prior, labels, classes, device=prior.device)
        dense = ep_log_evidence(
            sigma,
            torch.ones(size, dtype=sigma.dtype, device=sigma.device),
            tol=tol,
            max_sweeps=max_sweeps,
            damping=damping,
            precision=precision,
            device=prior.device,
            quiet=quiet,
            allow_unconverged=True,
            check_definite=False,  # sigma = A (I_C (x) prior) A^T, A of full row rank: positive definite as the prior
        )
        history, converged, step = dense.history, dense.converged, dense.damping
        tau, nu = dense.site_precision, dense.site_natural_mean
        change = dense.final_change * max(1.0, abs(history[-1]))
    else:
        if precision == "auto":
            precision = "mixed" if labels.size >= STRUCTURED_MIXED_AUTO else "double"
        run = _structured_ep(prior, labels, classes, tol, max_sweeps, damping, precision, quiet)
        history, converged, change, step = run.history, run.converged, run.change, run.step
        tau, nu = run.tau.cpu().numpy(), run.nu.cpu().numpy()
    relative_change = checked_convergence(
        "multi-class EP", history, change, converged, allow_unconverged, max_sweeps, tol
    )
    return MulticlassEPResult(
        log_evidence=history[-1],
        converged=converged,
        sweeps=len(history),
        final_change=relative_change,
        seconds=time.perf_counter() - start,
        jitter=jitter,
        classes=classes,
        method=method,
        tol=tol,
        damping=step,
        labels=labels,
        site_precision=np.asarray(tau).reshape(labels.size, classes - 1),
        site_natural_mean=np.asarray(nu).reshape(labels.size, classes - 1),
        history=history,
        prior=prior,
    )


def _star_matrices(tau, labels, other, classes):
    """P_i = sum_c tau_ic (e_y - e_c)(e_y - e_c)^T for every point: (m, C, C)."""
    m = tau.shape[0]
    rows = torch.arange(m, device=tau.device)[:, None]
    star = torch.zeros(m, classes, classes, dtype=tau.dtype, device=tau.device)
    star[rows, other, other] = tau
    star[rows, labels[:, None], other] = -tau
    star[rows, other, labels[:, None]] = -tau
    star[rows[:, 0], labels, labels] = tau.sum(1)
    return star


def multiclass_ep_predict(
    result: MulticlassEPResult, K_cross, k_test_diag, *, samples=DEFAULT_PREDICT_SAMPLES, seed=0
) -> np.ndarray:
    """Probability under Q*'s EP approximation that each class is the argmax at each test point, (n, C).

    The EP posterior q(f) = N(mu, Sigma) of the training logits gives, for a test point with one-logit
    prior covariances k (K_cross column) and variance k** (k_test_diag), C-dim Gaussian logits
    (the jitter is independent noise on every logit value: k** + jitter, cross covariances unchanged):
    mean_c = k^T alpha_c, alpha = K'^-1 mu = A^T (nu - tau mu_g), and
    Cov_cc' = [c = c'] (k** + jitter) - k^T (W - W Sigma W)_cc' k (R&W 2006 eq. 3.61 with the block site
    precision W). Argmax probabilities by ``samples`` seeded Monte Carlo draws (the same draws for every
    test point): each entry has standard error sqrt(p (1 - p) / samples) <= 0.5 / sqrt(samples).
    Cost: one structured posterior (memory 3 C m^2 floats) plus about 6 C^2 m^2 flops per test point.
    """
    checks.integer_at_least(samples, "samples", 1)
    checks.integer_at_least(seed, "seed", 0)
    prior, classes, m = result.prior, result.classes, result.m
    if prior is None:
        raise InputError("this EP result holds no prior covariance; predict with the result multiclass EP returned")
    cross, prior_var = validate_test_kernels(K_cross, k_test_diag, m, prior.device)
    other = torch.as_tensor(pair_index(result.labels, classes), device=prior.device)
    labels = torch.as_tensor(result.labels, device=prior.device)
    tau, nu = (torch.as_tensor(a, device=prior.device) for a in (result.site_precision, result.site_natural_mean))
    post = structured_posterior(prior, labels, other, tau, nu, keep_operators=True)
    mean_g, _ = pair_marginals(post, labels, other)
    alpha = star_transpose(nu - tau * mean_g, labels, other, classes)  # (C, m)
    star = _star_matrices(tau, labels, other, classes)
    generator = torch.Generator(device=prior.device).manual_seed(seed)
    draws = torch.randn(samples, classes, dtype=prior.dtype, device=prior.device, generator=generator)
    chunk = max(1, _PREDICT_FLOATS // (classes * classes * m))
    out = []
    for begin in range(0, cross.shape[1], chunk):
        k = cross[:, begin : begin + chunk]
        n = k.shape[1]
        weighted = torch.einsum("icd,it->cidt", star, k)  # W (I_C (x) k) for each test point
        quadratic = torch.einsum("icd,it->tcd", star, k * k) - post.column_grams(weighted)
        cov = torch.diag_embed((prior_var[begin : begin + n] + result.jitter)[:, None].expand(n, classes)) - quadratic
        out.append(_argmax_probabilities((alpha @ k).T, cov, draws))
    return torch.cat(out).cpu().numpy()


def _argmax_probabilities(mean, cov, draws):
    """Monte Carlo Pr[argmax_c f_c = c] for f ~ N(mean[t], cov[t]) with shared standard-normal ``draws``."""
    values, vectors = torch.linalg.eigh(0.5 * (cov + cov.transpose(1, 2)))
    root = vectors * torch.sqrt(torch.clamp(values, min=0.0))[:, None, :]
    samples, classes = draws.shape
    counts = torch.zeros_like(mean)
    step = max(1, _PREDICT_FLOATS // (samples * classes))
    for begin in range(0, mean.shape[0], step):
        logits = mean[begin : begin + step, None, :] + torch.einsum("tcd,sd->tsc", root[begin : begin + step], draws)
        winners = logits.argmax(dim=2)
        counts[begin : begin + step].scatter_add_(1, winners, torch.ones_like(winners, dtype=mean.dtype))
    return counts / samples
