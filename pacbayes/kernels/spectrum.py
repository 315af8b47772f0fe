"""The smallest eigenvalue of a kernel matrix: is it positive definite, and how much jitter?"""

import numpy as np
import torch
from scipy.sparse.linalg import ArpackNoConvergence, eigsh

DENSE_LIMIT = 4096


def min_eigenvalue(matrix: torch.Tensor, *, dense_limit: int = DENSE_LIMIT) -> tuple:
    """(smallest eigenvalue, method) of a symmetric float64 matrix.

    Up to ``dense_limit`` rows: all eigenvalues by ``torch.linalg.eigvalsh`` (method "eigvalsh",
    O(n^3)). Larger: an estimate by Lanczos iteration (ARPACK eigsh, which="SA", method
    "lanczos"; "lanczos, not converged" if ARPACK stopped early, with its best value).
    """
    if matrix.shape[0] <= dense_limit:
        return float(torch.linalg.eigvalsh(matrix)[0]), "eigvalsh"
    array = matrix.detach().cpu().numpy()
    start = np.random.default_rng(0).standard_normal(array.shape[0])
    try:
        return float(eigsh(array, k=1, which="SA", tol=1e-8, v0=start, return_eigenvectors=False)[0]), "lanczos"
    except ArpackNoConvergence as err:
        if len(err.eigenvalues) == 0:
            return float("nan"), "lanczos, not converged"
        return float(np.min(err.eigenvalues)), "lanczos, not converged"
