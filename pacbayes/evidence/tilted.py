"""Minimax tilting for P(S) (Botev 2017): the deterministic upper bound psi* and a tilted sampler.

P(S) = Pr[g > 0] for g = Y f ~ N(0, Sigma), Sigma = Y (K + jitter I) Y. Botev, "The normal law
under linear restrictions: simulation and estimation via minimax tilting", JRSS-B 79 (2017):

1. Reorder the variables greedily (most constrained first, given the expected values of those
   already placed) while computing the Cholesky factor Sigma_perm = L L^T (his Section 4.1,
   'cholperm'); here blocked, so the trailing update is one BLAS-3 call per block.
2. With a_k(x) = -(sum_j<k L_kj x_j) / L_kk the GHK lower limits, the tilted proposal draws
   z_k ~ N(mu_k, 1) truncated to [a_k(z), inf) and the log weight is
   psi(z; mu) = sum_k ln Phi(mu_k - a_k(z)) + mu_k^2 / 2 - z_k mu_k   (his eq. 7-8),
   whose expectation is P(S): the estimator is unbiased.
3. mu solves the saddle point grad psi(x, mu) = 0 (his Section 3). Writing t_k = mu_k - a_k(x),
   r = phi(t)/Phi(t) and C = D^-1 Sigma_perm D^-1 (D = diag L), the saddle conditions reduce to
   t = (C - I) r(t), the maximiser in r of the strictly concave
   Omega = sum_k [t_k r_k - ln Phi(t_k)] - r^T (C - I) r / 2. Newton on it needs one Cholesky of
   the SPD matrix C + Delta^-1 - I (Delta = diag r (t + r) in (0, 1)) per step instead of an LU of
   the 2m x 2m Jacobian; a backtracking line search on Omega makes it globally convergent.
4. Since every weight is at most exp(max_x psi(x; mu)), that maximum psi* is a deterministic upper
   bound on ln P(S) (his Theorem 3.1 / eq. 13); psi is concave in x, and x is re-maximised at the
   solved mu. psi at any other x is *below* psi* and may be below ln P(S) itself, so psi is
   reported as the upper bound only if the maximiser stopped with |grad_x psi| <= PSI_GRAD_TOL
   and psi is not below the largest log weight drawn (hence not below ln Z_hat); otherwise
   ``upper`` is None and ``upper_reason`` says why (see :func:`certified_upper`).
The certified sandwich that uses these parts is :mod:`pacbayes.evidence.certified`.
"""

import torch

from pacbayes.errors import ConvergenceError, InputError
from pacbayes.evidence._gauss import log_ndtr, mills_ratio
from pacbayes.evidence.sequential import Steps, sequential_log_weights, swap_symmetric
from pacbayes.progress import progress

_ORDER_BLOCK = 64
_GRAM_BLOCK = 512  # rows of L L^T a block (a product of 512 rows runs at the GEMM rate)
_NEWTON_TOL = 1e-10  # target max |t - (C - I) r(t)|
_NEWTON_ACCEPT = 1e-6  # accepted if the line search stalls (rounding) above the target
_NEWTON_MAX = 100
# psi(x; mu) is reported as psi* = max_x psi only at an x with |grad_x psi|_2 <= PSI_GRAD_TOL. psi is
# concave, so the gap to the maximum is then second order, about |grad|^2 / (2 lambda_min(-Hessian)):
# ~5e-11 nats for a Hessian eigenvalue as small as 1e-6.
PSI_GRAD_TOL = 1e-8


def pivoted_cholesky_order(sigma: torch.Tensor, *, quiet: bool = True, overwrite: bool = False):
    """Botev's variable ordering for Pr[g > 0], g ~ N(0, sigma), with the Cholesky factor.

    At step k the next variable is the one with the smallest conditional probability of being
    positive, Phi(c_j / s_j), given the truncated-normal means of the variables already placed
    (c_j their contribution to variable j, s_j its conditional standard deviation). Returns
    (perm, L) with sigma[perm][:, perm] = L L^T. Right-looking, blocked: the trailing Schur
    complement is updated once per ``_ORDER_BLOCK`` columns. ``overwrite``: factorise in sigma's own
    memory (sigma is destroyed; L is returned in it).
    """
    m = sigma.shape[0]
    work = sigma if overwrite else sigma.clone()
    perm = torch.arange(m, device=sigma.device)
    var = work.diagonal().clone()
    shift = torch.zeros_like(var)
    block = 0
    for k in progress(range(m), desc="variable ordering", quiet=quiet, unit="var"):
        score = log_ndtr(shift[k:] / torch.sqrt(torch.clamp(var[k:], min=1e-300)))
        j = k + int(torch.argmin(score))
        if j != k:
            swap_symmetric(work, k, j, var, shift, perm)
        column = work[k:, k] - work[k:, block:k] @ work[k, block:k]
        if not float(column[0]) > 0.0:
            raise InputError(
                "the tilted estimator needs K + jitter I positive definite, but a pivot "
                f"of its Cholesky factor is {float(column[0]):.3g}; declare a larger fixed jitter"
            )
        column /= torch.sqrt(column[0])
        work[k:, k] = column
        mean_k = mills_ratio(shift[k] / column[0])
        var[k + 1 :] -= column[1:] ** 2
        shift[k + 1 :] += column[1:] * mean_k
        if k + 1 - block == _ORDER_BLOCK or k == m - 1:
            panel = work[k + 1 :, block : k + 1]
            work[k + 1 :, k + 1 :].addmm_(panel, panel.T, alpha=-1.0)
            block = k + 1
    return perm, work.tril_()


def triangular_gram(L: torch.Tensor, block: int = _GRAM_BLOCK) -> torch.Tensor:
    """L L^T for a lower-triangular L (zero above the diagonal), in m^3 / 3 flops instead of a product's
    2 m^3: block (i, j <= i) is L[rows i, :end j] L[rows j, :end j]^T, mirrored above the diagonal."""
    m = L.shape[0]
    out = torch.empty_like(L)
    for start in range(0, m, block):
        rows = slice(start, min(start + block, m))
        for first in range(0, start + 1, block):
            end = min(first + block, m)
            torch.matmul(L[rows, :end], L[first:end, :end].T, out=out[rows, first:end])
            if first < start:
                out[first:end, rows] = out[rows, first:end].T
    return out


def _omega(t, scaled):
    """Newton objective (concave in r = phi(t)/Phi(t)); ``scaled`` is C - I."""
    r = mills_ratio(t)
    return float((t * r - log_ndtr(t)).sum() - 0.5 * (r @ (scaled @ r)))


def solve_tilting(L: torch.Tensor):
    """Saddle point of psi: returns (mu, x, t, newton_steps), t = (C - I) r(t) to 1e-10 (1e-6 at worst)."""
    m = L.shape[0]
    d = L.diagonal()
    scaled = triangular_gram(L).div_(d[:, None]).div_(d[None, :])  # C
    scaled.diagonal().sub_(1.0)  # C - I
    system = torch.empty_like(scaled)  # the Newton matrix, factorised in place each step
    info = torch.empty((), dtype=torch.int32, device=L.device)
    t = torch.zeros(m, dtype=L.dtype, device=L.device)
    for step in range(_NEWTON_MAX + 1):
        r = mills_ratio(t)
        residual = t - scaled @ r
        size = float(residual.abs().max())
        if size <= _NEWTON_TOL * max(1.0, float(t.abs().max())):
            break
        if step == _NEWTON_MAX:
            raise ConvergenceError(
                f"minimax tilting: Newton did not converge in {_NEWTON_MAX} steps "
                f"(residual {float(residual.abs().max()):.2e}); declare a larger jitter"
            )
        slope = torch.clamp(r * (t + r), min=1e-200, max=1.0 - 1e-16)  # Delta = -r'(t)
        system.copy_(scaled)
        system.diagonal().add_(1.0 / slope)
        chol, info = torch.linalg.cholesky_ex(system, out=(system, info))
        if int(info) != 0:
            raise ConvergenceError(
                "minimax tilting: Newton system not positive definite; declare a larger fixed jitter"
            )
        solved = torch.cholesky_solve(residual[:, None], chol)[:, 0]
        direction = -solved / slope
        current, gain = _omega(t, scaled), float(residual @ solved)
        length = 1.0
        while length > 1e-10:  # Armijo on Omega, or (near the root, below its rounding) |residual| drop
            trial = t + length * direction
            if (
                _omega(trial, scaled) >= current + 1e-4 * length * gain
                or float((trial - scaled @ mills_ratio(trial)).abs().max()) <= 0.5 * size
            ):
                break
            length *= 0.5
        if length <= 1e-10:
            if size <= _NEWTON_ACCEPT:
                break  # no further progress representable in float64
            raise ConvergenceError(
                f"minimax tilting: line search failed (residual {size:.2e}); declare a larger fixed jitter"
            )
        t = trial
    del system
    r = mills_ratio(t)
    mu = L.T @ (r / d) - r  # L~^T r with L~ = D^-1 L - I
    return mu, mu + r, t, step


def psi(x: torch.Tensor, mu: torch.Tensor, strict: torch.Tensor) -> float:
    """Botev's psi(x; mu) = sum_k ln Phi(mu_k + (L~ x)_k) + mu_k^2/2 - x_k mu_k (L~ = D^-1 L - I)."""
    return float((log_ndtr(mu + strict @ x) + 0.5 * mu * mu - x * mu).sum())


def _newton_step(strict, weights, grad, rows=256):
    """(L~^T diag(weights) L~ + ridge)^-1 grad: the curvature summed a block of rows at a time and
    factorised in place (one m x m matrix); LU if the Cholesky fails."""

    def curvature(out):
        for i in range(0, strict.shape[0], rows):
            block = strict[i : i + rows]
            out.addmm_(block.T, weights[i : i + rows, None] * block)
        out.diagonal().add_(1e-12 * max(1.0, float(out.diagonal().max())))  # ridge
        return out

    matrix = curvature(torch.zeros(strict.shape, dtype=strict.dtype, device=strict.device))
    info = torch.empty((), dtype=torch.int32, device=strict.device)
    _, info = torch.linalg.cholesky_ex(matrix, out=(matrix, info))
    if int(info) == 0:
        return torch.cholesky_solve(grad[:, None], matrix)[:, 0]
    return torch.linalg.solve(curvature(matrix.zero_()), grad)


def maximise_psi(
    x: torch.Tensor, mu: torch.Tensor, strict: torch.Tensor, tol: float = PSI_GRAD_TOL, max_steps: int = 50
):
    """max_x psi(x; mu) (concave in x) by damped Newton from x; returns (psi, x, gradient norm).

    The maximum is over all x, so it is at least the maximum over the samples' support {L x >= 0}
    and exp of it bounds every weight (Botev 2017, Theorem 3.1). It is finite at the saddle-point mu
    (x* is stationary there); for an arbitrary mu it may be +inf. After ``max_steps`` steps or a
    stalled line search the returned psi is that of the last iterate, *below* the maximum: the
    gradient norm says whether it is the maximum (:func:`certified_upper` decides).
    """
    value = psi(x, mu, strict)
    for _ in range(max_steps):
        t = mu + strict @ x
        r = mills_ratio(t)
        grad = strict.T @ r - mu
        grad_norm = float(torch.linalg.vector_norm(grad))
        if grad_norm <= tol:
            return value, x, grad_norm
        step = _newton_step(strict, torch.clamp(r * (t + r), min=0.0), grad)
        length = 1.0
        while length > 1e-12:
            candidate = psi(x + length * step, mu, strict)
            if candidate >= value:
                break
            length *= 0.5
        if length <= 1e-12:
            break
        x, value = x + length * step, candidate
    t = mu + strict @ x
    grad_norm = float(torch.linalg.vector_norm(strict.T @ mills_ratio(t) - mu))
    return value, x, grad_norm


def certified_upper(value: float, grad_norm: float, max_log_weight: float):
    """(upper, reason): psi* as a deterministic upper bound on ln P(S), or (None, why not).

    Botev 2017 (Theorem 3.1 / eq. 13): every tilted weight is at most exp(max_x psi(x; mu)), so
    psi* >= ln P(S) -- for the *maximum*. psi at an iterate where the maximiser stopped early is
    smaller and proves nothing, so the value is accepted only if |grad_x psi| <= PSI_GRAD_TOL and
    it is not below ``max_log_weight``, the largest tilted log weight drawn (at most psi*; a psi
    below it shows that x is not the maximiser).
    """
    if not grad_norm <= PSI_GRAD_TOL:
        return None, (
            f"the maximiser of psi stopped with gradient norm {grad_norm:.1e} > "
            f"{PSI_GRAD_TOL:.0e}, so its psi is not known to be the maximum psi*"
        )
    if not value >= max_log_weight:
        return None, (
            f"psi at the maximiser's iterate is {max_log_weight - value:.3g} nats below the largest "
            "tilted log weight drawn, so it is not the maximum psi*"
        )
    return value, None


def tilted_steps(L: torch.Tensor, mu: torch.Tensor) -> Steps:
    """The tilted sampler's steps (:class:`pacbayes.evidence.sequential.Steps`): with
    a_k(z) = -(sum_{j<k} L_kj z_j) / L_kk the GHK lower limit of z_k, z_k = mu_k + x for x a standard
    normal draw conditioned on x >= a_k(z) - mu_k, and the weight's factor
    Phi(mu_k - a_k) exp(mu_k^2 / 2 - z_k mu_k) (module docstring, item 2)."""
    zero = torch.zeros_like(mu)
    return Steps(
        offset=zero,
        lower_base=-mu,
        lower_slope=-1.0 / L.diagonal(),
        z_base=mu,
        z_slope=zero,
        z_scale=torch.ones_like(mu),
        weight_base=-0.5 * mu * mu,
        weight_slope=zero,
        weight_curve=zero,
        weight_draw=-mu,
    )


def tilted_log_weights(L, mu, samples, generator, *, quiet=True):
    """ln of the tilted GHK weights psi(z; mu) for ``samples`` seeded draws (float64 tensor)."""
    return sequential_log_weights(L, tilted_steps(L, mu), samples, generator, desc="tilted sampling", quiet=quiet)


__all__ = [
    "PSI_GRAD_TOL",
    "certified_upper",
    "maximise_psi",
    "pivoted_cholesky_order",
    "psi",
    "solve_tilting",
    "tilted_log_weights",
    "tilted_steps",
    "triangular_gram",
]
