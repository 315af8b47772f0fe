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
- sum_i ln s_i + ln|G| (matrix determinant lemma, twice). Never a (C-1)m x (C-1)m matrix.

Cost per posterior, in units of m^3 flops per class: the Cholesky of B_c 1/3, H_c = L_B^-1 D_c^1/2 K
1, A_c^-1 = K - H_c^T H_c 1.25 (the lower block triangle only, mirrored), X_c 1, U_c 2, Y_c 1:
about 6.6 C m^3. Every triangular solve runs in place on a Fortran view of a row-major buffer, so
no m x m matrix is ever copied or transposed: X_c and Y_c are kept as X_c^T and Y_c^T (row-major),
U_c is written over A_c^-1 and Y_c^T over U_c. Memory: two stacks of C m x m matrices and two
m x m matrices, reused from sweep to sweep (:class:`StructuredBuffers`).
"""

from dataclasses import dataclass

import torch

from pacbayes.evidence.ep import cholesky_in_place

_GRAM_FLOATS = 10_000_000  # working memory (floats) of one chunk in _point_grams
_GRAM_BLOCKS = 4  # K - H^T H by this many block rows (lower triangle only) from _GRAM_BLOCK_MIN rows on
_GRAM_BLOCK_MIN = 1024


@dataclass
class StructuredPosterior:
    """q(f) = N(mean, Sigma): ``mean`` (C, m); ``blocks`` (m, C, C) the covariance of f(x_i) at each point;
    ``half_log_det`` = ln|I + (I_C (x) K) W| / 2. ``a_inv`` (A_c^-1), ``x_t`` (X_c^T) and ``y_t`` (Y_c^T),
    (C, m, m) each, give quadratic forms in Sigma (:meth:`column_grams`); kept only when asked for."""

    mean: torch.Tensor
    blocks: torch.Tensor
    half_log_det: torch.Tensor
    a_inv: torch.Tensor | None = None
    x_t: torch.Tensor | None = None
    y_t: torch.Tensor | None = None

    def operators(self) -> tuple:
        """(A^-1, X^T, Y^T), the kept operators; ValueError for a posterior computed without keep_operators."""
        if self.a_inv is None or self.x_t is None or self.y_t is None:
            raise ValueError("the structured posterior was computed without keep_operators=True")
        return self.a_inv, self.x_t, self.y_t

    def column_grams(self, rhs: torch.Tensor) -> torch.Tensor:
        """For rhs of shape (C, m, d, n): the (n, d, d) matrices R_t^T Sigma R_t, R_t = rhs[..., t] as a C m x d
        matrix (class-major rows); needs the kept operators. Uses Sigma = blockdiag(A_c^-1) + X^T X - Y^T Y."""
        a_inv, x_t, y_t = self.operators()
        classes, m, d, n = rhs.shape
        flat = rhs.reshape(classes, m, d * n)
        out = torch.einsum("cmdt,cmet->tde", rhs, torch.bmm(a_inv, flat).reshape(classes, m, d, n))
        for factor_t, sign in ((x_t, 1.0), (y_t, -1.0)):
            low = _class_sum(factor_t.transpose(1, 2), flat).reshape(m, d, n)
            out += sign * torch.einsum("kdt,ket->tde", low, low)
        return out


class StructuredBuffers:
    """The two C x m x m stacks and two m x m matrices of :func:`structured_posterior`, kept between
    sweeps in one precision (a new precision frees the old buffers before allocating)."""

    def __init__(self):
        self._tensors = None

    def get(self, classes: int, m: int, dtype, device):
        shape = (classes, m, m)
        old = self._tensors
        if old is None or old[0].shape != shape or old[0].dtype != dtype or old[0].device != torch.device(device):
            self._tensors = None
            stacks = [torch.empty(shape, dtype=dtype, device=device) for _ in range(2)]
            self._tensors = (*stacks, *(torch.empty(m, m, dtype=dtype, device=device) for _ in range(2)))
        return self._tensors


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


def _point_grams(stack_t: torch.Tensor) -> torch.Tensor:
    """(m, C, C): for each point i the Gram matrix sum_k S_c[k, i] S_d[k, i] of the operators S_c,
    given as stack_t[c] = S_c^T (row i of stack_t[c] is column i of S_c); chunked bmm."""
    classes, m, cols = stack_t.shape
    out = torch.empty(m, classes, classes, dtype=stack_t.dtype, device=stack_t.device)
    step = max(1, _GRAM_FLOATS // (classes * cols))
    for begin in range(0, m, step):
        rows = stack_t[:, begin : begin + step].transpose(0, 1)  # (n, C, cols)
        out[begin : begin + step] = torch.bmm(rows, rows.transpose(1, 2))
    return out


def gram_complement(K: torch.Tensor, h_t: torch.Tensor, out: torch.Tensor, blocks: int = _GRAM_BLOCKS) -> None:
    """out = K - h_t h_t^T (symmetric K; h_t, out m x m, out not aliasing the inputs). From
    _GRAM_BLOCK_MIN rows on only the lower block triangle is multiplied ((1 + 1/blocks) m^3 flops
    instead of 2 m^3, the saving of a BLAS syrk, which torch lacks) and mirrored."""
    m = K.shape[0]
    if m < _GRAM_BLOCK_MIN:
        torch.addmm(K, h_t, h_t.T, alpha=-1.0, out=out)
        return
    edges = [m * k // blocks for k in range(blocks + 1)]
    for i in range(blocks):
        rows = slice(edges[i], edges[i + 1])
        for j in range(i + 1):
            cols = slice(edges[j], edges[j + 1])
            block = out[rows, cols]
            block.copy_(K[rows, cols])
            block.addmm_(h_t[rows], h_t[cols].T, alpha=-1.0)
            if j < i:
                out[cols, rows] = block.T


def _solve_in_place(chol: torch.Tensor, rhs_t: torch.Tensor) -> None:
    """rhs_t^T <- L^-1 rhs_t^T for lower-triangular L: on the Fortran view of the row-major rhs_t, no copy."""
    view = rhs_t.T
    torch.linalg.solve_triangular(chol, view, upper=False, out=view)


def structured_posterior(
    K, labels, other, tau, nu, *, keep_operators=False, buffers: StructuredBuffers | None = None
) -> StructuredPosterior:
    """q(f) for prior N(0, I_C (x) K) and difference sites (tau, nu), each (m, C-1) in the order of ``other``.

    ``labels`` (m,) and ``other`` (m, C-1) are int64 tensors (the class of each pair, see
    :func:`pacbayes.evidence.multiclass.pair_index`). See the module docstring for the algebra.
    ``buffers``: reuse these working buffers (an EP loop passes the same object every sweep).
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
    a_inv, x_t, work, small = (buffers or StructuredBuffers()).get(classes, m, K.dtype, K.device)

    log_det = -torch.log(s).sum()
    small.zero_()
    small.diagonal().copy_(s)  # becomes the Woodbury matrix M = S - sum_c D_c A_c^-1 D_c
    for c in range(classes):
        root = torch.sqrt(pi[c])
        torch.mul(K, root[:, None], out=work).mul_(root[None, :]).diagonal().add_(1.0)
        chol, half = cholesky_in_place(work, "B_c = I + D^1/2 K D^1/2")
        log_det = log_det + 2.0 * half
        h_t = torch.mul(K, root[None, :], out=x_t[c])  # H_c^T, H_c = L_B^-1 D_c^1/2 K
        _solve_in_place(chol, h_t)
        gram_complement(K, h_t, a_inv[c])  # A_c^-1 = K - H_c^T H_c
        torch.mul(a_inv[c], pi[c][:, None], out=work).mul_(pi[c][None, :])
        small -= work
    chol_m, half = cholesky_in_place(small, "the Woodbury matrix S - Pi^T A^-1 Pi")
    log_det = log_det + 2.0 * half
    for c in range(classes):
        torch.mul(a_inv[c], pi[c][None, :], out=x_t[c])  # (D_c A_c^-1)^T
        _solve_in_place(chol_m, x_t[c])

    x_b = _class_sum(x_t.transpose(1, 2), b[:, :, None])  # sum_c X_c b_c
    mean = torch.bmm(a_inv, b[:, :, None])[:, :, 0] + torch.bmm(x_t, x_b.expand(classes, m, 1))[:, :, 0]
    diag_a = torch.diagonal(a_inv, dim1=1, dim2=2).clone()
    kept_a = a_inv.clone() if keep_operators else None
    xv_t = work.zero_()  # (sum_c X_c diag(v_c))^T
    for c in range(classes):
        xv_t.addcmul_(x_t[c], v[c][:, None])
    u = a_inv  # U_c = A_c^-1 diag(v_c) + X_c^T (sum_c' X_c' diag(v_c')), written over A_c^-1
    for c in range(classes):
        u[c].mul_(v[c][None, :]).addmm_(x_t[c], xv_t.T)
    capacitance = small.zero_()  # I + V^T U = I + sum_c diag(v_c) U_c, over L_M
    for c in range(classes):
        capacitance.addcmul_(u[c], v[c][:, None])
    capacitance.diagonal().add_(1.0)
    chol_g, half = cholesky_in_place(capacitance, "the Woodbury matrix I + V^T Sigma_L V")
    log_det = log_det + 2.0 * half
    u_t_b = _class_sum(u.transpose(1, 2), b[:, :, None])
    correction = torch.cholesky_solve(u_t_b, chol_g)
    mean -= torch.bmm(u, correction.expand(classes, m, 1))[:, :, 0]
    for c in range(classes):
        _solve_in_place(chol_g, u[c])  # Y_c^T over U_c (U_c^T is the Fortran view of u[c])
    y_t = u

    blocks = torch.diag_embed(diag_a.T) + _point_grams(x_t) - _point_grams(y_t)
    if not keep_operators:
        return StructuredPosterior(mean, blocks, 0.5 * log_det)
    if buffers is not None:  # the caller reuses them: the kept operators need their own memory
        x_t, y_t = x_t.clone(), y_t.clone()
    return StructuredPosterior(mean, blocks, 0.5 * log_det, kept_a, x_t, y_t)
