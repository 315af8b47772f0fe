"""The sequential (GHK-type) sampling loop shared by the importance samplers of P(S), and the
in-place symmetric permutations their variable orderings need.

Both samplers of :mod:`pacbayes.evidence.tilted` and :mod:`pacbayes.evidence.ep_cavity` draw a
Gaussian vector one coordinate at a time: coordinate k of every draw depends on the earlier ones
only through the linear form (L z)_k restricted to j < k, for a lower-triangular L. Draws are
stored one coordinate per row (m x samples) so each step reads and writes contiguous memory, and
the contribution of earlier blocks of coordinates is one GEMM per block of ``SAMPLE_BLOCK``.
"""

import torch

from pacbayes.progress import progress

SAMPLE_BLOCK = 256


def sequential_log_weights(L: torch.Tensor, samples: int, step, *, desc: str, quiet: bool = True) -> torch.Tensor:
    """Run ``step`` for k = 0..m-1 over ``samples`` draws; returns the summed log weights.

    ``step(k, linear)`` receives linear = sum_{j<k} L_kj z_j (one entry per draw) and returns
    (z_k, log weight increment), both of shape (samples,); z_k is stored for the later rows.
    """
    m = L.shape[0]
    Z = torch.empty(m, samples, dtype=L.dtype, device=L.device)
    log_w = torch.zeros(samples, dtype=L.dtype, device=L.device)
    for start in progress(range(0, m, SAMPLE_BLOCK), desc=desc, quiet=quiet, unit="block"):
        stop = min(start + SAMPLE_BLOCK, m)
        carried = L[start:stop, :start] @ Z[:start]
        for k in range(start, stop):
            Z[k], increment = step(k, carried[k - start] + L[k, start:k] @ Z[start:k])
            log_w += increment
    return log_w


def swap_symmetric(matrix: torch.Tensor, k: int, j: int, *vectors: torch.Tensor) -> None:
    """Swap variables k and j in place: rows and columns of the symmetric ``matrix``, entries of ``vectors``.

    Plain row copies: index_put on two rows costs ~1000x more.
    """
    for vector in (matrix, matrix.T, *vectors):
        kept = vector[k].clone()
        vector[k] = vector[j]
        vector[j] = kept


def permute_symmetric(matrix: torch.Tensor, order: torch.Tensor, *vectors: torch.Tensor) -> None:
    """matrix <- matrix[order][:, order] and v <- v[order] for each of ``vectors``, in place (m swaps)."""
    order = order.tolist()
    position = list(range(len(order)))  # position[i]: where original variable i is now
    held = list(range(len(order)))  # held[p]: the original variable now at p
    for k, wanted in enumerate(order):
        j = position[wanted]
        if j != k:
            swap_symmetric(matrix, k, j, *vectors)
            position[held[k]], position[wanted] = j, k
            held[k], held[j] = wanted, held[k]


__all__ = ["SAMPLE_BLOCK", "permute_symmetric", "sequential_log_weights", "swap_symmetric"]
