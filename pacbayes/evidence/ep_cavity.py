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

EP's last float64 sweep has already factorised B (its L^-1, :class:`pacbayes.evidence.ep.EPResult`'s
``inverse_factor``); given it, the proposal skips B's Cholesky and multiplies by L^-1 (a triangular
product at the GEMM rate) instead of solving with L. The factor is used only after a seeded probe
shows it is B's for *this* Sigma and these sites (:func:`matches_inverse_factor`): the weights are
those of P(S) only if Sigma_Q is (Sigma^-1 + T)^-1, so a factor of another kernel, other sites or
float32 is not trusted, and B is factorised here instead.
"""

import torch

from pacbayes.errors import ConvergenceError
from pacbayes.evidence.ep import cholesky_in_place
from pacbayes.evidence.multiclass_posterior import gram_complement
from pacbayes.evidence.sequential import Steps, permute_symmetric, sequential_log_weights

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


def _times_inverse_transpose(matrix, inverse, signs, out) -> None:
    """out = matrix (S L^-1 S)^T for lower-triangular L^-1, only its nonzero blocks multiplied (about m^3 flops,
    half a product's); ``matrix`` has its columns multiplied by ``signs`` in place."""
    m = matrix.shape[0]
    matrix.mul_(signs[None, :])
    for begin in range(0, m, _PRODUCT_BLOCK):
        cols = slice(begin, min(begin + _PRODUCT_BLOCK, m))
        torch.matmul(matrix[:, : cols.stop], inverse[cols, : cols.stop].T, out=out[:, cols])
    out.mul_(signs[None, :])


def most_constrained_first(mean: torch.Tensor, variance: torch.Tensor) -> torch.Tensor:
    """The order of increasing EP z-score m_Q,k / sd_k (g-scale posterior marginals)."""
    return torch.argsort(mean / torch.sqrt(variance))


class CavityProposal:
    """The EP Gaussian Q of sites (tau, nu) on the orthant of ``sigma``, and its sampler.

    ``sigma`` (m x m) is read, not changed. The variables are sampled most constrained first
    (:func:`most_constrained_first`, ``order``). Peak memory: ``sigma`` and two m x m matrices (B,
    then Sigma_Q and its factor; T^1/2 Sigma solved against B's factor). Cost: about 2.6 m^3 flops
    (the Cholesky of B, one triangular solve, the lower triangle of a product, the Cholesky of Sigma_Q).
    ``inverse_factor``: EP's L^-1 of B for the kernel ``signs`` sigma ``signs`` (the f variables of
    g = Y f, ``signs`` = y), used when :func:`matches_inverse_factor` accepts it (module docstring).
    """

    def __init__(self, sigma: torch.Tensor, tau: torch.Tensor, nu: torch.Tensor, inverse_factor=None, signs=None):
        root = torch.sqrt(tau)
        signs = torch.ones_like(tau) if signs is None else signs
        solved_t = sigma * root[None, :]  # (T^1/2 Sigma)^T; becomes (L_B^-1 T^1/2 Sigma)^T below
        if matches_inverse_factor(sigma, root, inverse_factor, signs):
            work = torch.empty_like(sigma)
            _times_inverse_transpose(solved_t, inverse_factor, signs, work)
            solved_t, work = work, solved_t
            half_log_det = -float(torch.log(inverse_factor.diagonal()).sum())
        else:
            work = solved_t * root[:, None]  # B - I = T^1/2 Sigma T^1/2, one new matrix
            work.diagonal().add_(1.0)
            work, half_log_det = cholesky_in_place(work, "B = I + T^1/2 Sigma T^1/2")
            view = solved_t.T
            torch.linalg.solve_triangular(work, view, upper=False, out=view)
            del view
        gram_complement(sigma, solved_t, work)  # Sigma_Q = Sigma - Sigma T^1/2 B^-1 T^1/2 Sigma, over B's factor
        del solved_t
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


__all__ = ["FACTOR_CHECK_TOL", "CavityProposal", "matches_inverse_factor", "most_constrained_first"]
