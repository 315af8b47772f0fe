"""ln P(S) by expectation propagation with the Heaviside likelihood, converged on ln Z.

P(S) = Pr[y_i f_i > 0 for all i], f ~ N(0, K + jitter I): the marginal likelihood of the labels
under the noise-free step likelihood 1[y f > 0] (Valle-Pérez et al. 2019). EP (Minka 2001;
Rasmussen & Williams 2006, section 3.6, Algorithms 3.5-3.6; GPML infEP) replaces each step factor
by a Gaussian site N(f_i | nu_i/tau_i, 1/tau_i) times a constant and matches moments:

* tilted moments for cavity N(mu, s^2) (R&W eq. 3.58 with the probit noise removed):
  z = y mu / s, ln Z_i = ln Phi(z), r = phi(z)/Phi(z),
  hat mu = mu + y s r, hat s^2 = s^2 (1 - r (z + r));
* the posterior through B = I + S^1/2 K S^1/2 = L L^T (R&W eq. 3.67-3.68), S = diag(tau);
* ln Z_EP as in GPML infEP (the stable form of R&W eq. 3.65 and 3.73-3.74).

Parallel schedule (all sites from one posterior, van Gerven et al. 2010): one sweep costs a
Cholesky of B plus a triangular inverse L^-1 (LAPACK trtri on the CPU, :func:`invert_lower_in_place`
elsewhere), both in place in one m x m buffer, and
diag(Sigma) = (1 - diag(B^-1)) / tau (Woodbury), diag(B^-1) the squared column norms of L^-1;
damping keeps it stable. Sequential schedule: R&W Algorithm 3.5 (rank-1 updates of Sigma, m^2 per
site, recomputed from scratch after each sweep). Both stop when the relative change of ln Z between
sweeps is <= tol; not converging within ``max_sweeps`` raises ConvergenceError unless
``allow_unconverged=True`` (then the result says converged=False).

Fewer and cheaper sweeps for large m (the converged value is unchanged: convergence is always
judged between two float64 sweeps):

* nested start: EP is first run on every other point (recursively, down to a few hundred points,
  each level to a coarse tolerance), and the remaining points' sites are the moment-matched sites of
  that EP's predictive at them. The fixed point is the same; the first full sweep starts about a
  nat from it instead of hundreds of nats (measured on MNIST NNGP kernels).
* mixed precision: sweeps run in float32 (half the flops' time; B = I + S^1/2 K S^1/2 has every
  eigenvalue >= 1, so its float32 factorisation is well conditioned) until the relative change of
  ln Z is below SINGLE_TOL, then in float64 to ``tol``. A float32 sweep that loses positive
  definiteness, gives a non-positive cavity or a ln Z not <= 0 hands over to float64 at once (the mean
  K alpha amplifies float32's rounding by K's largest eigenvalue, m times a strong common mode).
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.linalg import lapack

from pacbayes import checks
from pacbayes.defaults import EP_TOL as DEFAULT_TOL
from pacbayes.errors import ConvergenceError, InputError
from pacbayes.evidence._gauss import log_ndtr, mills_ratio
from pacbayes.evidence._validate import require_positive_definite, validate_inputs, validate_test_kernels
from pacbayes.progress import progress
from pacbayes.results import EPEstimate

SCHEDULES = ("parallel", "sequential")
STARTS = ("auto", "nested", "prior")
PRECISIONS = ("auto", "mixed", "double")
SINGLE_TOL = 1e-4  # mixed precision: float32 sweeps until the relative change of ln Z is below this
NESTED_AUTO, MIXED_AUTO = 1024, 2048  # "auto" uses the nested start / mixed precision from these m on
NESTED_FLOOR = 256  # nested levels stop halving below twice this size and start from the prior
NESTED_TOL, NESTED_SWEEPS = 1e-4, 50  # a nested level is only a start: coarse, capped
# Below this value of 1 - (B^-1)_ii = tau_i Sigma_ii the Woodbury division loses digits and
# Sigma_ii is recomputed as K_ii - |L^-1 S^1/2 K e_i|^2 instead (no cancellation there).
_CANCELLATION_GUARD = {torch.float64: 1e-6, torch.float32: 1e-3}
_ADAPTIVE_START, _ADAPTIVE_MAX, _ADAPTIVE_GROWTH, _ADAPTIVE_MIN = 0.8, 0.8, 1.25, 0.05
_INVERSE_BASE, _INVERSE_ALIGN = 1024, 64  # invert_lower_in_place: base-case size, split aligned to this
TRTRI_FROM = 2048  # CPU matrices from this size are inverted by LAPACK's trtri (inverse_factor_of)


@dataclass
class EPResult(EPEstimate):
    """Converged (or explicitly flagged) EP approximation of ln P(S) under prior N(0, K + jitter I).

    ``log_evidence`` is an estimate, not a bound. Site parameters (``site_precision`` tau,
    ``site_natural_mean`` nu) define the Gaussian approximation q(f) = N(posterior_mean,
    Sigma) with diag(Sigma) = ``posterior_variance``; :func:`ep_predict` uses them.
    ``start`` and ``precision`` say how EP ran ("nested" / "prior", "mixed" / "double");
    ``single_sweeps`` of the ``sweeps`` were float32 sweeps of the mixed-precision stage.
    """

    schedule: str
    damping: float
    tol: float
    jitter: float
    site_precision: np.ndarray
    site_natural_mean: np.ndarray
    posterior_mean: np.ndarray
    posterior_variance: np.ndarray
    history: list = field(default_factory=list)
    start: str = "prior"
    precision: str = "double"
    single_sweeps: int = 0
    inverse_factor: torch.Tensor | None = field(default=None, repr=False)
    alpha: torch.Tensor | None = field(default=None, repr=False)

    @property
    def m(self) -> int:
        return int(self.site_precision.shape[0])


def _check_options(tol, max_sweeps, damping, schedule, start="auto", precision="auto"):
    if schedule not in SCHEDULES:
        raise InputError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    if start not in STARTS:
        raise InputError(f"start must be one of {', '.join(STARTS)}, got {start!r}")
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if not (isinstance(tol, (int, float)) and 0.0 < tol < 1.0):
        raise InputError(f"tol must be a relative tolerance in (0, 1), got {tol!r}")
    checks.integer_at_least(max_sweeps, "max_sweeps", 2)
    if damping != "adaptive" and not (isinstance(damping, (int, float)) and 0.0 < damping <= 1.0):
        raise InputError(f"damping must be in (0, 1] (1 = undamped) or 'adaptive', got {damping!r}")


class SinglePrecisionLoss(Exception):
    """A float32 sweep lost positive definiteness or gave a non-positive cavity: redo it in float64."""


def _not_positive_definite(dtype, what):
    if dtype == torch.float32:
        raise SinglePrecisionLoss(what)
    raise ConvergenceError(f"EP: {what} lost positive definiteness; use a smaller damping or a fixed jitter")


def cholesky_in_place(B: torch.Tensor, what: str):
    """(L, ln|B| / 2) for B = L L^T. On the CPU torch's Cholesky (MKL) writes L over B's lower
    triangle (the strict upper triangle is then unspecified; triangular solves read only L); on
    other devices L is a new tensor. A float32 failure raises SinglePrecisionLoss, a float64 one
    ConvergenceError naming ``what``."""
    info = torch.empty((), dtype=torch.int32, device=B.device)
    if B.device.type == "cpu":
        torch.linalg.cholesky_ex(B, out=(B, info))
    else:
        B, info = torch.linalg.cholesky_ex(B)
    if int(info) != 0:
        _not_positive_definite(B.dtype, what)
    return B, float(torch.log(B.diagonal().double()).sum())


def invert_lower_in_place(L: torch.Tensor) -> torch.Tensor:
    """L^-1 written over the lower triangle of the lower-triangular L (its strict upper triangle is not
    read and stays unspecified); returns L.

    Recursive 2 x 2 blocks, L = [[A, 0], [C, D]], L^-1 = [[A^-1, 0], [-D^-1 C A^-1, D^-1]]: C is
    overwritten by two triangular solves (torch's ``out=`` on the right-hand side, no copy), then A and D
    are inverted the same way; blocks of at most _INVERSE_BASE rows are solved against I. About m^3/3
    flops in torch's triangular solves, where one solve against I costs three times that; used off the
    CPU, where torch has no trtri.
    """
    n = L.shape[0]
    if n <= _INVERSE_BASE:
        eye = torch.eye(n, dtype=L.dtype, device=L.device)
        L.copy_(torch.linalg.solve_triangular(L, eye, upper=False))
        return L
    half = -(-n // (2 * _INVERSE_ALIGN)) * _INVERSE_ALIGN
    A, C, D = L[:half, :half], L[half:, :half], L[half:, half:]
    torch.linalg.solve_triangular(D, C, upper=False, out=C)  # D^-1 C
    torch.linalg.solve_triangular(A, C, upper=False, left=False, out=C)  # D^-1 C A^-1
    C.neg_()
    invert_lower_in_place(A)
    invert_lower_in_place(D)
    return L


def inverse_factor_of(B: torch.Tensor, what="B = I + S^1/2 K S^1/2"):
    """(L^-1, ln|B| / 2) for B = L L^T, L^-1 written over B (lower triangle, upper set to 0).

    CPU from TRTRI_FROM rows: :func:`cholesky_in_place`, then LAPACK trtri (m^3/3 flops) on the Fortran view of
    the row-major buffer, in which L is upper triangular (L^T); on 2 idle cores at m = 10,000 EP took 78 s with
    it and 88 s with :func:`invert_lower_in_place`. Smaller CPU matrices and other devices:
    :func:`invert_lower_in_place`. SciPy's LAPACK runs on its own BLAS threads, which keep spinning after a call
    and took the cores from torch's next operations: EP at m = 300 ran 8x slower with trtri, while at
    m >= TRTRI_FROM a sweep's seconds dwarf that."""
    B, half_log_det = cholesky_in_place(B, what)
    if B.device.type != "cpu" or B.shape[0] < TRTRI_FROM:
        return invert_lower_in_place(B).tril_(), half_log_det
    trtri = lapack.dtrtri if B.dtype == torch.float64 else lapack.strtri
    inverse, info = trtri(B.numpy().T, lower=0, overwrite_c=1)  # (L^T)^-1 in the view: L^-1 in B
    if info != 0:
        _not_positive_definite(B.dtype, what)
    return torch.from_numpy(inverse.T).tril_(), half_log_det


def lower_triangular_times(lower: torch.Tensor, right: torch.Tensor, rows: int = 1024) -> torch.Tensor:
    """``lower @ right`` for a lower-triangular ``lower`` (zeros above the diagonal, as :func:`inverse_factor_of`
    leaves them), a block of rows at a time against the rows of ``right`` it reaches: about half the flops of the
    dense product (BLAS's trmm, which torch does not expose)."""
    out = torch.empty(lower.shape[0], right.shape[1], dtype=right.dtype, device=right.device)
    for begin in range(0, lower.shape[0], rows):
        end = min(begin + rows, lower.shape[0])
        torch.matmul(lower[begin:end, :end], right[:end], out=out[begin:end])
    return out


def column_square_sums(matrix: torch.Tensor, rows: int = 512) -> torch.Tensor:
    """sum_k matrix[k, i]^2 for every column i, in float64, a block of rows at a time (3x faster than
    torch's vector norm over dim 0 here, and no m x m temporary)."""
    out = torch.zeros(matrix.shape[1], dtype=torch.float64, device=matrix.device)
    for begin in range(0, matrix.shape[0], rows):
        block = matrix[begin : begin + rows]
        out += (block * block).sum(dim=0, dtype=torch.float64)
    return out


@dataclass
class _Posterior:
    """q(f) at the current sites: ln|B|/2, L^-1 (working precision), alpha (mean = K alpha), marginals."""

    half_log_det: float
    inverse_factor: torch.Tensor
    sqrt_tau: torch.Tensor
    alpha: torch.Tensor
    mean: torch.Tensor | None
    variance: torch.Tensor | None


class _Workspace:
    """The prior K (float64) and one reused m x m buffer in the working precision of the sweep."""

    def __init__(self, K: torch.Tensor):
        self.K = K
        self._buffer: torch.Tensor | None = None

    def buffer(self, dtype) -> torch.Tensor:
        if self._buffer is None or self._buffer.dtype != dtype:
            self._buffer = None  # free the old precision's buffer before allocating the new one
            self._buffer = torch.empty(self.K.shape, dtype=dtype, device=self.K.device)
        return self._buffer

    def posterior(self, tau, nu, dtype) -> _Posterior:
        """R&W section 3.6 with diag(Sigma) = (1 - diag(B^-1)) / tau; float64 outputs."""
        K = self.K
        work = self.buffer(dtype)
        sqrt_tau = torch.sqrt(tau)
        root = sqrt_tau.to(dtype)
        work.copy_(K)
        work.mul_(root[:, None]).mul_(root[None, :])
        work.diagonal().add_(1.0)
        inverse, half_log_det = inverse_factor_of(work)
        one_minus_binv = 1.0 - column_square_sums(inverse)  # 1 - diag(B^-1)
        variance = one_minus_binv / torch.where(tau > 0, tau, 1.0)
        exact = (one_minus_binv < _CANCELLATION_GUARD[dtype]).nonzero().flatten()
        if exact.numel():
            v = lower_triangular_times(inverse, root[:, None] * K[:, exact].to(dtype))
            variance[exact] = K.diagonal()[exact] - (v.double() ** 2).sum(dim=0)
        inner = inverse.T @ (inverse @ (root * (K @ nu).to(dtype)))  # B^-1 S^1/2 K nu
        alpha = nu - sqrt_tau * inner.double()
        return _Posterior(half_log_det, inverse, sqrt_tau, alpha, K @ alpha, variance)


def ep_posterior(prior: torch.Tensor, tau: torch.Tensor, nu: torch.Tensor) -> _Posterior:
    """q(f) at sites (tau, nu) under ``prior``, computed as a float64 sweep computes it (bit for bit)."""
    return _Workspace(prior).posterior(tau, nu, torch.float64)


def _latent_predictive(post: _Posterior, cross: torch.Tensor, prior_var: torch.Tensor):
    """Mean and variance of the latent at points with prior covariances ``cross`` (m, n) (R&W Alg. 3.6)."""
    inverse = post.inverse_factor
    scaled = post.sqrt_tau.to(inverse.dtype)[:, None] * cross.to(inverse.dtype)  # S^1/2 K_*
    v = lower_triangular_times(inverse, scaled)  # L^-1 S^1/2 K_*
    return cross.T @ post.alpha, prior_var - (v.double() ** 2).sum(dim=0)


def _cavity(mean, variance, tau, nu):
    """Cavity natural parameters (R&W eq. 3.56): tau_-i = 1/Sigma_ii - tau_i, nu_-i likewise."""
    cav_tau = 1.0 / variance - tau
    cav_nu = mean / variance - nu
    return cav_tau, cav_nu


def _tilted(y, cav_tau, cav_nu):
    """Heaviside tilted moments: (ln Z_i, proposed site tau, proposed site nu)."""
    cav_mean, cav_sd = cav_nu / cav_tau, torch.rsqrt(cav_tau)
    z = y * cav_mean / cav_sd
    ratio = mills_ratio(z)
    log_z = log_ndtr(z)
    hat_mean = cav_mean + y * cav_sd * ratio
    shrink = 1.0 - ratio * (z + ratio)  # hat s^2 / s^2, in (0, 1)
    hat_tau = cav_tau / shrink
    site_tau = torch.clamp(hat_tau - cav_tau, min=0.0)
    site_nu = hat_mean * (cav_tau + site_tau) - cav_nu
    return log_z, site_tau, site_nu


def _prior_sites(K, y):
    """Sites from the prior marginals (the cavity of all-zero sites is the prior), undamped."""
    _, tau, nu = _tilted(y, 1.0 / K.diagonal(), torch.zeros_like(y))
    return tau, nu


def _log_z(y, half_log_det, mean, variance, tau, nu):
    """ln Z_EP at the current sites (GPML infEP, zero prior mean; R&W eq. 3.65, 3.73-3.74).

    ``half_log_det`` is ln|I + K S|/2 (= sum ln diag L for B = L L^T); mean and variance are the
    posterior marginals of the site variables. Any Gaussian prior with scalar sites on linear
    functionals of the latent has this form (used by the multi-class EP as well).
    """
    cav_tau, cav_nu = _cavity(mean, variance, tau, nu)
    log_zi, _, _ = _tilted(y, cav_tau, cav_nu)
    ratio = tau / cav_tau
    value = (
        log_zi.sum()
        - half_log_det
        + 0.5 * (nu @ mean)
        - 0.5 * (variance @ (nu * nu))
        + 0.5 * (cav_nu @ ((ratio * cav_nu - 2.0 * nu) * variance))
        + 0.5 * torch.log1p(ratio).sum()
    )
    return float(value)


def parallel_update(y):
    """The damped parallel site update: every site moves a fraction ``step`` towards its tilted match."""

    def update(tau, nu, post, step):
        cav_tau, cav_nu = _cavity(post.mean, post.variance, tau, nu)
        _, new_tau, new_nu = _tilted(y, cav_tau, cav_nu)
        return tau + step * (new_tau - tau), nu + step * (new_nu - nu)

    return update


def _sequential_update(K, y):
    """One pass of R&W Algorithm 3.5 over the sites from the current Sigma (rank-1 updates)."""

    def update(tau, nu, post, step):
        v = post.inverse_factor @ (post.sqrt_tau[:, None] * K)  # L^-1 S^1/2 K
        sigma, mean, tau, nu = K - v.T @ v, post.mean.clone(), tau.clone(), nu.clone()
        for i in range(K.shape[0]):
            var_i = sigma[i, i]
            cav_tau = 1.0 / var_i - tau[i]
            cav_nu = mean[i] / var_i - nu[i]
            _, new_tau, new_nu = _tilted(y[i : i + 1], cav_tau.reshape(1), cav_nu.reshape(1))
            delta = new_tau[0] - tau[i]
            tau[i] = new_tau[0]
            nu[i] = new_nu[0]
            column = sigma[:, i].clone()
            sigma.sub_((delta / (1.0 + delta * var_i)) * torch.outer(column, column))
            torch.mv(sigma, nu, out=mean)
        return tau, nu

    return update


@dataclass
class Sweeps:
    """What an EP loop ended with: ln Z per sweep, convergence, the last change and step, sites, posterior."""

    history: list
    converged: bool
    change: float
    step: float
    tau: torch.Tensor
    nu: torch.Tensor
    posterior: Any  # what the loop's ``posterior`` returned (binary: _Posterior)
    single_sweeps: int


def _usable_in_single(post, tau, nu) -> bool:
    cav_tau, _ = _cavity(post.mean, post.variance, tau, nu)
    return bool(torch.isfinite(post.variance).all()) and bool((post.variance > 0).all()) and bool((cav_tau > 0).all())


def run_sweeps(
    posterior: Callable,
    update: Callable,
    y,
    tau,
    nu,
    *,
    tol,
    max_sweeps,
    damping,
    precision="double",
    what="EP",
    bar=None,
) -> Sweeps:
    """The EP loop shared by the binary and multi-class estimators.

    ``posterior(tau, nu, dtype)`` gives an object with ``half_log_det``, ``mean`` and ``variance``
    (float64) of the site variables; ``update(tau, nu, posterior, step)`` the next sites.
    ``precision``: "double" (float64 sweeps), "single" (float32 sweeps, converged in float32: for a
    start only) or "mixed" (float32 until the relative change is <= SINGLE_TOL or stops shrinking,
    then float64 until it is <= tol; the change is only measured between two sweeps of the same
    precision).
    ``damping`` "adaptive": start at 0.8, halve when |change of ln Z| grows (never below 0.05: a collapsed
    step stops ln Z moving, which would pass for convergence), else grow by 1.25 to 0.8.
    A non-finite or positive ln Z (P(S) <= 1, so ln Z_EP > 0 means the sites ran away) raises ConvergenceError:
    the relative change of a diverging ln Z shrinks as it grows, which would otherwise pass for convergence.
    """
    step = _ADAPTIVE_START if damping == "adaptive" else float(damping)
    dtype = torch.float64 if precision == "double" else torch.float32
    history: list[float] = []
    change, converged, fresh, single_sweeps = math.inf, False, False, 0
    for sweep in range(1, max_sweeps + 1):
        try:
            post = posterior(tau, nu, dtype)
            log_z = _log_z(y, post.half_log_det, post.mean, post.variance, tau, nu)
            if dtype == torch.float32 and not (_usable_in_single(post, tau, nu) and log_z <= 0.0):  # NaN too
                raise SinglePrecisionLoss("non-positive variance or cavity, or ln Z not <= 0")
        except SinglePrecisionLoss:
            dtype, fresh = torch.float64, bool(history)
            post = posterior(tau, nu, dtype)
            log_z = _log_z(y, post.half_log_det, post.mean, post.variance, tau, nu)
        if not math.isfinite(log_z):
            raise ConvergenceError(
                f"{what}: ln Z became {log_z} at sweep {sweep}; the kernel may be too ill-conditioned; "
                "declare a fixed jitter"
            )
        if log_z > 0.0:  # ln P(S) <= 0: the sites have run away (a relative change would still shrink)
            raise ConvergenceError(
                f"{what} diverged: ln Z became {log_z:.4g} > 0 at sweep {sweep}, impossible for the log of a "
                "probability; the kernel is too close to singular for these labels; declare a fixed jitter"
            )
        grew = False
        if history and not fresh:
            previous_change, change = change, abs(log_z - history[-1])
            grew = change >= previous_change
            if damping == "adaptive":
                step = max(_ADAPTIVE_MIN, 0.5 * step) if grew else min(_ADAPTIVE_MAX, _ADAPTIVE_GROWTH * step)
        fresh = False
        history.append(log_z)
        single_sweeps += dtype == torch.float32
        if bar is not None:
            bar.update(1)
            bar.set_postfix(lnZ=f"{log_z:.6f}", change=f"{change:.2e}", precision=str(dtype)[-7:])
        relative = change / max(1.0, abs(log_z))
        if precision == "mixed" and dtype == torch.float32 and (relative <= SINGLE_TOL or grew):
            # float32 is done once it is near its rounding floor or stops contracting (rounding noise
            # or an oscillation float64 damps better): float64 from here, with a fresh step size
            dtype, fresh, change = torch.float64, True, math.inf
            step = _ADAPTIVE_START if damping == "adaptive" else step
        elif relative <= tol:
            converged = True
            break
        if sweep == max_sweeps:
            break
        tau, nu = update(tau, nu, post, step)
    return Sweeps(history, converged, change, step, tau, nu, post, single_sweeps)


def _nested_start(K, y, damping):
    """Starting sites: EP on every other point (recursively, float32, to NESTED_TOL), and for the
    remaining points the moment-matched sites of that EP's predictive at them (their cavity)."""
    m = K.shape[0]
    if m < 2 * NESTED_FLOOR:
        return _prior_sites(K, y)
    inner = torch.arange(0, m, 2, device=K.device)
    outer = torch.arange(1, m, 2, device=K.device)
    K_in, y_in = K[inner[:, None], inner[None, :]], y[inner]
    try:
        level = run_sweeps(
            _Workspace(K_in).posterior,
            parallel_update(y_in),
            y_in,
            *_nested_start(K_in, y_in, damping),
            tol=NESTED_TOL,
            max_sweeps=NESTED_SWEEPS,
            damping=damping,
            precision="single",
        )
    except ConvergenceError:
        return _prior_sites(K, y)
    del K_in
    mean, variance = _latent_predictive(level.posterior, K[inner[:, None], outer[None, :]], K.diagonal()[outer])
    _, tau_out, nu_out = _tilted(y[outer], 1.0 / variance, mean / variance)
    tau, nu = torch.empty_like(y), torch.empty_like(y)
    tau[inner], nu[inner], tau[outer], nu[outer] = level.tau, level.nu, tau_out, nu_out
    return tau, nu


def checked_convergence(what, history, change, converged, allow_unconverged, max_sweeps, tol) -> float:
    """The last relative change of ln Z; ConvergenceError if EP did not converge and that is not allowed."""
    relative_change = change / max(1.0, abs(history[-1]))
    if not converged and not allow_unconverged:
        raise ConvergenceError(
            f"{what} did not converge in {max_sweeps} sweeps (last relative change of ln Z "
            f"{relative_change:.2e} > tol {tol:g}); raise max_sweeps or use damping=0.5 / a smaller damping"
        )
    return relative_change


def resolved_start_and_precision(m: int, schedule: str, start: str, precision: str) -> tuple:
    """What "auto" means for m points: the nested start from NESTED_AUTO, float32 sweeps from MIXED_AUTO
    (parallel schedule only; the sequential schedule is float64 throughout)."""
    if start == "auto":
        start = "nested" if m >= NESTED_AUTO else "prior"
    if precision == "auto":
        precision = "mixed" if m >= MIXED_AUTO and schedule == "parallel" else "double"
    if schedule == "sequential" and precision == "mixed":
        raise InputError("precision='mixed' needs schedule='parallel'; the sequential schedule runs in float64")
    return start, precision


def ep_log_evidence(
    K,
    y,
    *,
    jitter=0.0,
    tol=DEFAULT_TOL,
    max_sweeps=200,
    damping="adaptive",
    schedule="parallel",
    start="auto",
    precision="auto",
    device=None,
    quiet=True,
    allow_unconverged=False,
    check_definite=True,
) -> EPResult:
    """Estimate ln P(S) = ln Pr[y_i f_i > 0 for all i], f ~ N(0, K + jitter I), by converged EP.

    K: m x m kernel (numpy or torch, float64); y: labels in {-1, +1} (or {0, 1}, mapped).
    ``jitter``: fixed absolute epsilon added to the prior covariance (part of the prior).
    ``tol``: stop when |ln Z_k - ln Z_k-1| <= tol * max(1, |ln Z_k|) (two float64 sweeps).
    ``damping``: fraction of each parallel site update taken (1 = undamped), or "adaptive": start
    at 0.8, halve when |change of ln Z| grows (not below 0.05), else grow by 1.25 up to 0.8.
    ``schedule``: "parallel" (BLAS-3, GPU-friendly) or "sequential" (R&W Alg. 3.5, O(m^3) per
    sweep in rank-1 updates; fewer sweeps, only sensible for small m).
    ``start``: "nested", "prior" or "auto" (nested from m = NESTED_AUTO); ``precision``: "mixed",
    "double" or "auto" (mixed from m = MIXED_AUTO); see the module docstring.
    Raises ConvergenceError after ``max_sweeps`` without convergence unless
    ``allow_unconverged`` (then ``converged`` is False).
    ``check_definite`` False skips the Cholesky that proves K + jitter I positive definite (5.2 s of 73 s
    at m = 10,000), for a caller whose next step on the same prior proves it (the certified
    sandwich: :func:`pacbayes.evidence.certified_log_evidence`); when EP then fails, the check runs
    first, so an indefinite kernel still gets its InputError.
    """
    _check_options(tol, max_sweeps, damping, schedule, start, precision)
    begin = time.perf_counter()
    K, y, jitter = validate_inputs(K, y, jitter, device, definite=check_definite)
    m = K.shape[0]
    start, precision = resolved_start_and_precision(m, schedule, start, precision)
    try:
        tau, nu = _nested_start(K, y, damping) if start == "nested" else _prior_sites(K, y)
        update = parallel_update(y) if schedule == "parallel" else _sequential_update(K, y)
        bar = progress(total=max_sweeps, desc=f"EP ({schedule}, m={m})", quiet=quiet, unit="sweep")
        run = run_sweeps(
            _Workspace(K).posterior,
            update,
            y,
            tau,
            nu,
            tol=tol,
            max_sweeps=max_sweeps,
            damping=damping if schedule == "parallel" else 1.0,
            precision=precision,
            bar=bar,
        )
        bar.close()
        relative_change = checked_convergence(
            "EP", run.history, run.change, run.converged, allow_unconverged, max_sweeps, tol
        )
    except ConvergenceError:
        if not check_definite:  # an indefinite prior is the input's fault, not EP's: say so
            require_positive_definite(K, jitter)
        raise
    post = run.posterior
    return EPResult(
        log_evidence=run.history[-1],
        converged=run.converged,
        sweeps=len(run.history),
        final_change=relative_change,
        seconds=time.perf_counter() - begin,
        schedule=schedule,
        damping=run.step if schedule == "parallel" else 1.0,
        tol=tol,
        jitter=jitter,
        site_precision=run.tau.cpu().numpy(),
        site_natural_mean=run.nu.cpu().numpy(),
        posterior_mean=post.mean.cpu().numpy(),
        posterior_variance=post.variance.cpu().numpy(),
        history=run.history,
        start=start,
        precision=precision,
        single_sweeps=run.single_sweeps,
        inverse_factor=post.inverse_factor,
        alpha=post.alpha,
    )


def ep_predict(result: EPResult, K_cross, k_test_diag):
    """Mean and variance of the latent f at test points under the EP posterior (R&W Alg. 3.6).

    K_cross: (m, n) prior covariances between the m training and n test points; k_test_diag: (n,)
    prior variances of the test points. The jitter is independent noise on every latent value, so
    the test prior variance is k_test_diag + jitter and the cross covariances are unchanged.
    Returns float64 numpy arrays (mean, variance), each of shape (n,).
    """
    if result.alpha is None or result.inverse_factor is None:
        raise InputError("ep_predict needs the EPResult ep_log_evidence returned (with its factor); rerun EP")
    device = result.alpha.device
    cross, prior_var = validate_test_kernels(K_cross, k_test_diag, result.m, device)
    sqrt_tau = torch.sqrt(torch.as_tensor(result.site_precision, device=device))
    post = _Posterior(0.0, result.inverse_factor, sqrt_tau, result.alpha, None, None)
    mean, variance = _latent_predictive(post, cross, prior_var + result.jitter)
    return mean.cpu().numpy(), torch.clamp(variance, min=0.0).cpu().numpy()
