"""The Gaussian EP posterior of C logits with difference sites, using I_C (x) K and m x m algebra only.

Prior f ~ N(0, I_C (x) K) (K here includes the jitter), class-major: f = (f_0, ..., f_{C-1}),
f_c the m values of logit c. Each site is a scalar Gaussian factor exp(-tau_ic g^2/2 + nu_ic g) on
g_ic = f_{y_i}(x_i) - f_c(x_i) (c != y_i). Summed per point the site precision is the C x C "star"
P_i = sum_c tau_ic (e_y - e_c)(e_y - e_c)^T, whose only off-diagonal entries are in row/column y_i,
so W = blockdiag_i(P_i) has diagonal m x m blocks W_cc' in class-major order.

Exact split (the zero-noise limit of the nested-EP site structure of Riihimäki, Jylänki & Vehtari,
JMLR 14, 2013, eq. 11, with its auxiliary variable given precision lambda_i): with T_i = sum_c tau_ic,
pi_i = tau_i + lambda_i e_y (tau_iy = 0) and s_i = lambda_i + T_i,

    P_i = [diag(pi_i) - pi_i pi_i^T / s_i] + v_i v_i^T,   v_i = (T_i e_y - tau_i) / sqrt(s_i),

a Laplace-type block (as in multi-class Laplace, Rasmussen & Williams 2006, Algorithm 3.3) plus a
rank-one term, both positive semi-definite (checked entry by entry in the docs). With D = diag(pi)
(C diagonal m x m blocks D_c), Pi = D R (R = stacked I_m), A = K^-1 + D, A_c^-1 = K - K D_c^1/2
B_c^-1 D_c^1/2 K, B_c = I + D_c^1/2 K D_c^1/2 (one Cholesky per class), two Woodbury steps give

    Sigma_L = (K^-1 + D - Pi S^-1 Pi^T)^-1 = A^-1 + A^-1 Pi M^-1 Pi^T A^-1,  M = S - sum_c D_c A_c^-1 D_c,
    Sigma   = (Sigma_L^-1 + V V^T)^-1 = Sigma_L - U G^-1 U^T,  U = Sigma_L V,  G = I + V^T Sigma_L V,

so with X_c = L_M^-1 D_c A_c^-1 and Y_c = L_G^-1 U_c^T (L_M, L_G the Cholesky factors, m x m),
Sigma_cc' = [c = c'] A_c^-1 + X_c^T X_c' - Y_c^T Y_c'. ln|I + (I_C (x) K) W| = sum_c ln|B_c| + ln|M|
- sum_i ln s_i + ln|G| (matrix determinant lemma, twice). Memory: two stacks of C m x m matrices;
time: about 7 C m^3 flops per posterior, never a (C-1)m x (C-1)m matrix.
"""

from dataclasses import dataclass
from typing import Optional

import torch

from pacbayes.errors import ConvergenceError
from pacbayes.evidence.ep import SinglePrecisionLoss

_GRAM_FLOATS = 10_000_000  # working memory (floats) of one chunk in _point_grams


@dataclass
class StructuredPosterior:
    """q(f) = N(mean, Sigma): ``mean`` (C, m); ``blocks`` (m, C, C) the covariance of f(x_i) at each point;
    ``half_log_det`` = ln|I + (I_C (x) K) W| / 2. ``a_inv``, ``x``, ``y`` ((C, m, m) each) give quadratic
    forms in Sigma (:meth:`column_grams`); kept only when asked for (prediction)."""

    mean: torch.Tensor
    blocks: torch.Tensor
    half_log_det: torch.Tensor
    a_inv: Optional[torch.Tensor] = None
    x: Optional[torch.Tensor] = None
    y: Optional[torch.Tensor] = None

    def column_grams(self, rhs: torch.Tensor) -> torch.Tensor:
        """For rhs of shape (C, m, d, n): the (n, d, d) matrices R_t^T Sigma R_t, R_t = rhs[..., t] as a C m x d
        matrix (class-major rows); needs the kept operators. Uses Sigma = blockdiag(A_c^-1) + X^T X - Y^T Y."""
        classes, m, d, n = rhs.shape
        flat = rhs.reshape(classes, m, d * n)
        out = torch.einsum("cmdt,cmet->tde", rhs, torch.bmm(self.a_inv, flat).reshape(classes, m, d, n))
        for factor, sign in ((self.x, 1.0), (self.y, -1.0)):
            low = _class_sum(factor, flat).reshape(m, d, n)
            out += sign * torch.einsum("kdt,ket->tde", low, low)
        return out


def star_transpose(values: torch.Tensor, labels: torch.Tensor, other: torch.Tensor, classes: int) -> torch.Tensor:
    """A^T w for w on the pairs (m, C-1): per point sum_c w_ic (e_y - e_c), returned class-major (C, m)."""
    out = torch.zeros(values.shape[0], classes, dtype=values.dtype, device=values.device)
    out.scatter_(1, other, -values)
    out.scatter_(1, labels[:, None], values.sum(1, keepdim=True))
    return out.T.contiguous()


def pair_marginals(post: StructuredPosterior, labels: torch.Tensor, other: torch.Tensor):
    """Mean and variance (each (m, C-1)) of g_ic = f_y(x_i) - f_c(x_i) under q."""
    rows = torch.arange(labels.shape[0], device=labels.device)[:, None]
    mean_t = post.mean.T
    own = labels[:, None]
    mean = mean_t.gather(1, own) - mean_t.gather(1, other)
    blocks = post.blocks
    variance = blocks[rows, own, own] + blocks[rows, other, other] - 2.0 * blocks[rows, own, other]
    return mean, variance


def _class_sum(stack: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """sum_c stack[c] @ rhs[c] by a loop over classes (no C m^2 temporary, unlike a batched contraction)."""
    out = stack[0] @ rhs[0]
    for c in range(1, stack.shape[0]):
        out.addmm_(stack[c], rhs[c])
    return out


def _point_grams(stack: torch.Tensor) -> torch.Tensor:
    """(m, C, C): for each point i the Gram matrix sum_k stack[c, k, i] stack[d, k, i] (chunked bmm)."""
    classes, rows, m = stack.shape
    out = torch.empty(m, classes, classes, dtype=stack.dtype, device=stack.device)
    step = max(1, _GRAM_FLOATS // (classes * rows))
    for begin in range(0, m, step):
        columns = stack[:, :, begin : begin + step].permute(2, 0, 1).contiguous()  # (n, C, rows)
        out[begin : begin + step] = torch.bmm(columns, columns.transpose(1, 2))
    return out


def _cholesky(matrix, what):
    chol, info = torch.linalg.cholesky_ex(matrix)
    if int(info) != 0 and matrix.dtype == torch.float32:
        raise SinglePrecisionLoss(what)
    if int(info) != 0:
        raise ConvergenceError(f"multi-class EP: {what} lost positive definiteness; use a larger fixed jitter")
    return chol


def structured_posterior(K, labels, other, tau, nu, *, keep_operators=False) -> StructuredPosterior:
    """q(f) for prior N(0, I_C (x) K) and difference sites (tau, nu), each (m, C-1) in the order of ``other``.

    ``labels`` (m,) and ``other`` (m, C-1) are int64 tensors (the class of each pair, see
    :func:`pacbayes.evidence.multiclass.pair_index`). See the module docstring for the algebra.
    """
    m, classes = K.shape[0], other.shape[1] + 1
    total = tau.sum(1)
    lam = torch.where(total > 0, total, torch.ones_like(total))  # any lambda_i > 0 is exact
    s = lam + total
    pi = torch.zeros(m, classes, dtype=K.dtype, device=K.device)
    pi.scatter_(1, other, tau)
    pi.scatter_(1, labels[:, None], lam[:, None])
    v = -pi.clone()
    v.scatter_(1, labels[:, None], total[:, None])
    v /= torch.sqrt(s)[:, None]
    pi, v = pi.T.contiguous(), v.T.contiguous()  # class-major (C, m)
    b = star_transpose(nu, labels, other, classes)

    a_inv = torch.empty(classes, m, m, dtype=K.dtype, device=K.device)
    log_det = -torch.log(s).sum()
    schur = torch.diag(s)
    for c in range(classes):
        root = torch.sqrt(pi[c])
        system = K * torch.outer(root, root)
        system.diagonal().add_(1.0)
        chol = _cholesky(system, "B_c = I + D^1/2 K D^1/2")
        log_det = log_det + 2.0 * torch.log(chol.diagonal()).sum()
        half = torch.linalg.solve_triangular(chol, root[:, None] * K, upper=False)
        torch.sub(K, half.T @ half, out=a_inv[c])
        schur -= pi[c][:, None] * a_inv[c] * pi[c][None, :]
    chol_m = _cholesky(0.5 * (schur + schur.T), "the Woodbury matrix S - Pi^T A^-1 Pi")
    log_det = log_det + 2.0 * torch.log(chol_m.diagonal()).sum()
    x = torch.empty_like(a_inv)
    for c in range(classes):
        x[c] = torch.linalg.solve_triangular(chol_m, pi[c][:, None] * a_inv[c], upper=False)

    a_inv_b = torch.bmm(a_inv, b[:, :, None])[:, :, 0]
    x_b = _class_sum(x, b[:, :, None])[:, 0]
    mean = a_inv_b + torch.stack([x[c].T @ x_b for c in range(classes)])
    diag_a = torch.diagonal(a_inv, dim1=1, dim2=2).clone()
    kept_a = a_inv.clone() if keep_operators else None
    xv = torch.zeros_like(K)  # sum_c X_c diag(v_c)
    for c in range(classes):
        xv.addcmul_(x[c], v[c][None, :])
    u = a_inv  # U_c = A_c^-1 diag(v_c) + X_c^T (sum_c' X_c' diag(v_c')), written over A^-1
    u *= v[:, None, :]
    for c in range(classes):
        u[c].addmm_(x[c].T, xv)
    capacitance = torch.zeros_like(K)  # V^T U = sum_c diag(v_c) U_c
    for c in range(classes):
        capacitance.addcmul_(v[c][:, None], u[c])
    capacitance.diagonal().add_(1.0)
    chol_g = _cholesky(0.5 * (capacitance + capacitance.T), "the Woodbury matrix I + V^T Sigma_L V")
    log_det = log_det + 2.0 * torch.log(chol_g.diagonal()).sum()
    u_t_b = _class_sum(u.transpose(1, 2), b[:, :, None])
    correction = torch.cholesky_solve(u_t_b, chol_g)[:, 0]
    for c in range(classes):
        mean[c] -= u[c] @ correction
    y = u  # Y_c = L_G^-1 U_c^T, written over U
    for c in range(classes):
        y[c] = torch.linalg.solve_triangular(chol_g, u[c].T, upper=False)

    blocks = torch.diag_embed(diag_a.T) + _point_grams(x) - _point_grams(y)
    if not keep_operators:
        x = y = None
    return StructuredPosterior(mean, blocks, 0.5 * log_det, kept_a, x, y)
