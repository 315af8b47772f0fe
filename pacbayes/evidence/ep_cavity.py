"""Unbiased importance sampling of P(S) from the EP Gaussian's cavity conditionals.

P(S) = Pr[g > 0] for g ~ N(0, Sigma). Gaussian sites t_k(g_k) = exp(-tau_k g_k^2 / 2 + nu_k g_k),
tau_k >= 0 (those of EP, Minka 2001, in the sign-flipped variables g = Y f) define the Gaussian

    Q(g) = N(g; 0, Sigma) prod_k t_k(g_k) / Z_g = N(g; m_Q, Sigma_Q),
    Sigma_Q = (Sigma^-1 + T)^-1,  m_Q = Sigma_Q nu,  ln Z_g = -ln|B| / 2 + nu^T m_Q / 2,
    B = I + T^1/2 Sigma T^1/2 (T = diag tau),

so that P(S) = Z_g E_Q[prod_k 1[g_k > 0] / t_k(g_k)]. Sampling in a fixed order with
Sigma_Q = L L^T, Q(g_k | g_<k) = N(c_k, s_k^2) where c_k = m_Q,k + sum_{j<k} L_kj e_j, s_k = L_kk and
e_j = (g_j - c_j) / s_j. The proposal draws g_k from the *cavity* conditional Q(g_k | g_<k) / t_k(g_k)
(the EP Gaussian with the site of g_k removed: the prior and the later sites, given the earlier
draws) truncated to g_k > 0:

    q_k(g_k) = N(g_k; a_k, v_k) 1[g_k > 0] / Phi(a_k / sqrt(v_k)),
    1 / v_k = 1 / s_k^2 - tau_k,  a_k = v_k (c_k / s_k^2 - nu_k).

1 / v_k is the conditional precision of the proper Gaussian N(0, Sigma) prod_{j>k} t_j, hence
positive. Completing the square, the weight N(g; 0, Sigma) 1[g > 0] / q(g) is

    ln w = ln Z_g + sum_k [ ln(sqrt(v_k) / s_k) + a_k^2 / (2 v_k) - c_k^2 / (2 s_k^2) + ln Phi(a_k / sqrt(v_k)) ],

and E_q[w] = P(S) exactly for *any* sites with tau >= 0: how well EP fits only sets the variance
(so Markov's inequality on the mean of the weights certifies a lower bound whatever EP did). With
tau = nu = 0 it is the GHK simulator (Geweke 1991; Hajivassiliou, McFadden & Ruud 1996; Genz
1992), whose variance grows quickly with m; Botev's minimax tilting (:mod:`pacbayes.evidence.tilted`)
shifts each coordinate by a constant, the cavity conditional moves with the earlier draws and
carries what the later constraints imply through the EP sites. On MNIST ReLU-NNGP kernels the
standard deviation of ln w is measured in docs/evidence.md (Certified lower bound).

Order: most constrained first, by the EP marginal z-score m_Q,k / sqrt(Sigma_Q,kk) (any order is
unbiased; this one gave the smallest variance of those measured).

Sigma_Q comes from B = I + T^1/2 Sigma T^1/2 as T^-1/2 (I - B^-1) T^-1/2 (:func:`ep_covariance`). EP's last
float64 sweep has already factorised and inverted B (its L^-1, :class:`pacbayes.evidence.ep.EPResult`'s
``inverse_factor``); given it, the proposal needs only B^-1 = L^-T L^-1 and the Cholesky of Sigma_Q. The factor
is used only after a seeded probe shows it is B's for *this* Sigma and these sites
(:func:`matches_inverse_factor`): the weights are those of P(S) only if Sigma_Q is (Sigma^-1 + T)^-1, so a
factor of another kernel, other sites or float32 is not trusted, and B is factorised here instead.
"""

import torch

from pacbayes.errors import ConvergenceError
from pacbayes.evidence.ep import cholesky_in_place, column_square_sums, inverse_factor_of, lower_triangular_times
from pacbayes.evidence.sequential import Steps, permute_symmetric, sequential_log_weights
from pacbayes.kernels._blocks import mirror_lower

EXACT_COLUMN_GUARD = 1e-4  # 1 - (B^-1)_kk below this: column k of Sigma_Q from Sigma directly (ep_covariance)
FACTOR_CHECK_TOL = 1e-10  # |B x - u| / |u| for x = L^-T L^-1 u: a float64 factor of B passes, another fails
_PRODUCT_BLOCK = 512  # columns of a block of the triangular product


def matches_inverse_factor(sigma, root, inverse, signs, tol=FACTOR_CHECK_TOL) -> bool:
    """Whether ``inverse`` (float64, lower triangular) is L^-1 for B = I + T^1/2 Sigma_s T^1/2 = L L^T, where
    Sigma_s = S sigma S, S = diag(signs) and T^1/2 = diag(root): one seeded random probe u, x = L^-T L^-1 u
    (in the signed variables), accepted when |B x - u|_2 <= tol |u|_2 (m^2 work)."""
    m = sigma.shape[0]
    if inverse is None or inverse.shape != (m, m) or inverse.dtype != torch.float64 or inverse.device != sigma.device:
        return False
    generator = torch.Generator(device=sigma.device).manual_seed(0)
    u = torch.randn(m, dtype=sigma.dtype, device=sigma.device, generator=generator)
    x = signs * (inverse.T @ (inverse @ (signs * u)))  # B_s^-1 = S B^-1 S, B the signed variables' matrix
    residual = x + root * (sigma @ (root * x)) - u
    return bool(torch.linalg.vector_norm(residual) <= tol * torch.linalg.vector_norm(u))


def _factor_inverse(sigma, signed_root, root, signs, inverse_factor) -> tuple:
    """(L^-1 written lower triangular over a new m x m buffer, ln|B| / 2) for B = I + T^1/2 Sigma_f T^1/2 = L L^T,
    Sigma_f = S sigma S the f variables' covariance: EP's factor copied when it checks out, else B factorised and
    inverted here (:func:`pacbayes.evidence.ep.inverse_factor`)."""
    if matches_inverse_factor(sigma, root, inverse_factor, signs):
        return inverse_factor.clone(), -float(torch.log(inverse_factor.diagonal()).sum())
    work = sigma * signed_root[:, None]
    work.mul_(signed_root[None, :]).diagonal().add_(1.0)
    return inverse_factor_of(work, "B = I + T^1/2 Sigma T^1/2")


def _inverse_from_factor(inverse: torch.Tensor) -> torch.Tensor:
    """B^-1 = L^-T L^-1 over the lower triangle of the lower-triangular L^-1 (zeros above, kept), in place.

    Row block I of the lower triangle is sum_{K >= I} (L^-1)_KI^T (L^-1)_KJ for J <= I: one product of the rows
    from block I down, m^3 / 3 flops in all at the GEMM rate (LAPACK's lauum ran at half the Cholesky's rate
    here). Blocks go top down: block I reads rows >= I only, and rows above it are already written."""
    m = inverse.shape[0]
    for begin in range(0, m, _PRODUCT_BLOCK):
        end = min(begin + _PRODUCT_BLOCK, m)
        below = inverse[begin:]
        inverse[begin:end, :end] = below[:, begin:end].T @ below[:, :end]
    return inverse


def ep_covariance(sigma, tau, signs, inverse_factor=None) -> tuple:
    """(Sigma_Q = (sigma^-1 + T)^-1 as a new symmetric m x m tensor, ln|B| / 2) for the signed covariance ``sigma``
    = S Sigma_f S and site precisions ``tau`` >= 0 (T = diag tau, S = diag ``signs``).

    With B = I + T^1/2 Sigma_f T^1/2, Sigma_Q = S T^-1/2 (I - B^-1) T^-1/2 S (Woodbury), from B^-1 = L^-T L^-1:
    about m^3 / 3 flops past B's inverse factor, where Sigma - Sigma T^1/2 B^-1 T^1/2 Sigma costs 2 m^3.
    Where 1 - (B^-1)_kk < EXACT_COLUMN_GUARD (a weak site, tau_k = 0 included) that form loses digits to
    cancellation, so column and row k are Sigma e_k - Sigma T^1/2 S B^-1 S T^1/2 Sigma e_k instead (4 m^2 flops
    each), as EP does for its marginal variances."""
    root = torch.sqrt(tau)
    signed_root = root * signs
    inverse, half_log_det = _factor_inverse(sigma, signed_root, root, signs, inverse_factor)
    weak = ((1.0 - column_square_sums(inverse)) < EXACT_COLUMN_GUARD).nonzero().flatten()
    exact = None
    if weak.numel():
        solved = lower_triangular_times(inverse, signed_root[:, None] * sigma[:, weak])  # L^-1 S T^1/2 Sigma e_k
        exact = sigma[:, weak] - sigma @ (signed_root[:, None] * (inverse.T @ solved))
        del solved
    covariance = _inverse_from_factor(inverse)
    scale = signs / torch.where(root > 0.0, root, 1.0)
    scale[weak] = 0.0  # their rows and columns are written below
    covariance.neg_().diagonal().add_(1.0)
    covariance.mul_(scale[:, None]).mul_(scale[None, :])
    mirror_lower(covariance, _PRODUCT_BLOCK)
    if exact is not None:
        block = exact[weak]  # Sigma_Q between weak sites, from both of their columns: one symmetric value each
        exact[weak] = (block + block.T) * 0.5
        covariance[:, weak] = exact
        covariance[weak, :] = exact.T
    return covariance, half_log_det


def most_constrained_first(mean: torch.Tensor, variance: torch.Tensor) -> torch.Tensor:
    """The order of increasing EP z-score m_Q,k / sd_k (g-scale posterior marginals)."""
    return torch.argsort(mean / torch.sqrt(variance))


class CavityProposal:
    """The EP Gaussian Q of sites (tau, nu) on the orthant of ``sigma``, and its sampler.

    ``sigma`` (m x m) is read, not changed. The variables are sampled most constrained first
    (:func:`most_constrained_first`, ``order``). Peak memory: ``sigma`` and one m x m matrix (B, its inverse
    factor, B^-1, then Sigma_Q and its factor), two off the CPU. Cost: about m^3 flops (B's Cholesky and inverse,
    B^-1 from them, the Cholesky of Sigma_Q), m^3 / 3 fewer given EP's factor.
    ``inverse_factor``: EP's L^-1 of B for the kernel ``signs`` sigma ``signs`` (the f variables of
    g = Y f, ``signs`` = y), used when :func:`matches_inverse_factor` accepts it (module docstring).
    """

    def __init__(self, sigma: torch.Tensor, tau: torch.Tensor, nu: torch.Tensor, inverse_factor=None, signs=None):
        signs = torch.ones_like(tau) if signs is None else signs
        work, half_log_det = ep_covariance(sigma, tau, signs, inverse_factor)
        mean = work @ nu
        self.log_normaliser = -half_log_det + 0.5 * float(nu @ mean)
        self.order = most_constrained_first(mean, work.diagonal())
        tau, nu = tau.clone(), nu.clone()
        permute_symmetric(work, self.order, mean, tau, nu)
        self.factor, _ = cholesky_in_place(work, "the EP covariance Sigma_Q")
        scale = self.factor.diagonal()
        precision = 1.0 / scale**2 - tau
        if not bool((precision > 0.0).all()):
            raise ConvergenceError(
                "the EP cavity proposal has a non-positive conditional precision (rounding); "
                "use the tilted proposal (--proposal tilted)"
            )
        self.mean, self.nu, self.scale = mean, nu, scale
        self.variance = 1.0 / precision
        self.sd = torch.sqrt(self.variance)
        self.half_log_ratio = 0.5 * torch.log(self.variance) - torch.log(scale)

    def steps(self) -> Steps:
        """The sampler's steps in the form of :class:`pacbayes.evidence.sequential.Steps` (module
        docstring, with x the standard normal draw: g_k = a_k + sqrt(v_k) x, lower = -a_k / sqrt(v_k),
        z_k = e_k = (g_k - c_k) / s_k, and the increment of ln w quadratic in c_k)."""
        v, sd, nu, s = self.variance, self.sd, self.nu, self.scale
        s2 = s * s
        excess = v - s2  # >= 0: the cavity removes a site of precision tau_k >= 0
        return Steps(
            offset=self.mean,
            lower_base=sd * nu,
            lower_slope=-sd / s2,
            z_base=-v * nu / s,
            z_slope=excess / (s2 * s),
            z_scale=sd / s,
            weight_base=self.half_log_ratio + 0.5 * v * nu * nu,
            weight_slope=-v * nu / s2,
            weight_curve=0.5 * excess / (s2 * s2),
            weight_draw=torch.zeros_like(v),
        )

    def log_weights(self, samples: int, generator: torch.Generator, *, quiet: bool = True) -> torch.Tensor:
        """ln w of ``samples`` seeded draws (float64); E[w] = P(S) (module docstring)."""
        log_w = sequential_log_weights(
            self.factor, self.steps(), samples, generator, desc="EP-cavity sampling", quiet=quiet
        )
        return log_w.add_(self.log_normaliser)


__all__ = [
    "EXACT_COLUMN_GUARD",
    "FACTOR_CHECK_TOL",
    "CavityProposal",
    "ep_covariance",
    "matches_inverse_factor",
    "most_constrained_first",
]
