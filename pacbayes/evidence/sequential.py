"""The sequential (GHK-type) sampling loop shared by the importance samplers of P(S), and the
in-place symmetric permutations their variable orderings need.

Both samplers of :mod:`pacbayes.evidence.tilted` and :mod:`pacbayes.evidence.ep_cavity` draw a
Gaussian vector one coordinate at a time: coordinate k of every draw depends on the earlier ones
only through the linear form (L z)_k restricted to j < k, for a lower-triangular L, and each takes
the same kind of step (:class:`Steps`): a standard normal draw truncated below at a limit affine in
that form, a stored value affine in both, a log weight quadratic in the form. Draws are stored one
coordinate per row (m x samples); the contribution of earlier blocks of coordinates is one GEMM per
block of ``SAMPLE_BLOCK``, the rest of the block is advanced by the fused compiled kernel of
:mod:`pacbayes.evidence._sampler_kernel` on the CPU (one uniform per coordinate and draw from the
seeded generator, drawn block by block, so a seed gives the same draws whatever the number of
threads they are split over), or coordinate by coordinate with torch operations on other devices.
"""

import math
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import NamedTuple

import torch

from pacbayes.evidence._gauss import truncated_normal_above
from pacbayes.progress import progress

_PERMUTE_ROWS = 256  # rows of a block whose columns are permuted by one gather
SAMPLE_BLOCK = 128  # the GEMM of the earlier blocks runs at full rate from ~128 rows; the in-block part grows with it


class Steps(NamedTuple):
    """The step of each coordinate k (every field has one entry per coordinate).

    With linear = sum_{j<k} L_kj z_j of a draw and c = offset + linear, a standard normal x is drawn
    conditioned on x >= lower = lower_base + lower_slope c, z_k = z_base + z_slope c + z_scale x is
    stored for the later rows, and the log weight grows by
    ln Pr[x >= lower] + weight_base + weight_slope c + weight_curve c^2 + weight_draw x.
    """

    offset: torch.Tensor
    lower_base: torch.Tensor
    lower_slope: torch.Tensor
    z_base: torch.Tensor
    z_slope: torch.Tensor
    z_scale: torch.Tensor
    weight_base: torch.Tensor
    weight_slope: torch.Tensor
    weight_curve: torch.Tensor
    weight_draw: torch.Tensor


def uses_compiled_kernel(L: torch.Tensor) -> bool:
    """Whether :func:`sequential_log_weights` runs the compiled kernel (float64 on the CPU) for ``L``."""
    return L.device.type == "cpu" and L.dtype == torch.float64


def sequential_log_weights(
    L: torch.Tensor, steps: Steps, samples: int, generator: torch.Generator, *, desc: str, quiet: bool = True
) -> torch.Tensor:
    """The summed log weights of ``samples`` seeded draws, coordinates k = 0..m-1 advanced by ``steps``.

    Reads only the strict lower triangle of ``L`` (m x m). Peak memory: m x samples floats (the
    draws) and two SAMPLE_BLOCK x samples blocks.
    """
    m = L.shape[0]
    Z = torch.empty(m, samples, dtype=L.dtype, device=L.device)
    log_w = torch.zeros(samples, dtype=L.dtype, device=L.device)
    table = torch.stack(steps, 1)  # m x 10, one row per coordinate
    with _block_advance(L, Z, log_w, table, generator) as advance:
        for start in progress(range(0, m, SAMPLE_BLOCK), desc=desc, quiet=quiet, unit="block"):
            advance(start, L[start : start + SAMPLE_BLOCK, :start] @ Z[:start])
    return log_w


@contextmanager
def _block_advance(L, Z, log_w, table, generator):
    """A context giving advance(start, carried), which advances the block of coordinates from ``start``
    of every draw, in place in Z and log_w, given ``carried`` = the earlier blocks' part of the linear
    form (one row per coordinate of the block)."""
    if not uses_compiled_kernel(L):
        yield lambda start, carried: _torch_block(L, Z, log_w, table, generator, start, carried)
        return
    from pacbayes.evidence import _sampler_kernel  # imports numba: only where a CPU sampler runs

    ranges = _tile_ranges(Z.shape[1], _sampler_kernel.TILE)
    factor, draws, weights = L.contiguous().numpy(), Z.numpy(), log_w.numpy()
    coefficients = table.contiguous().numpy()
    with ThreadPoolExecutor(len(ranges)) as pool:

        def advance(start, carried):
            uniforms = torch.rand(carried.shape, dtype=carried.dtype, generator=generator).numpy()
            block = (factor, draws, carried.numpy(), uniforms, weights, coefficients, start)
            for job in [pool.submit(_sampler_kernel.advance_block, *block, *r) for r in ranges]:
                job.result()

        yield advance


def _tile_ranges(samples: int, tile: int) -> list:
    """The draws split in contiguous ranges of whole tiles, one per thread (at most torch's thread count)."""
    tiles = math.ceil(samples / tile)
    workers = max(1, min(torch.get_num_threads(), tiles))
    edges = [min(samples, tile * (tiles * i // workers)) for i in range(workers + 1)]
    return list(zip(edges[:-1], edges[1:], strict=False))


def _torch_block(L, Z, log_w, table, generator, start, carried):
    """The block of coordinates from ``start``, coordinate by coordinate in torch operations (the steps
    of :class:`Steps`; the truncated normal of :func:`truncated_normal_above`)."""
    for row, linear in enumerate(carried):
        k = start + row
        offset, lower_base, lower_slope, z_base, z_slope, z_scale, base, slope, curve, draw = table[k]
        c = offset + linear + L[k, start:k] @ Z[start:k]
        x, log_mass = truncated_normal_above(lower_base + lower_slope * c, generator)
        Z[k] = z_base + z_slope * c + z_scale * x
        log_w += log_mass + base + c * (slope + curve * c) + draw * x


def _swap_rows(k: int, j: int, *tensors: torch.Tensor) -> None:
    """Swap entries (rows) k and j of every tensor in place, by plain row copies (index_put on two rows
    costs ~1000x more)."""
    for tensor in tensors:
        kept = tensor[k].clone()
        tensor[k] = tensor[j]
        tensor[j] = kept


def swap_symmetric(matrix: torch.Tensor, k: int, j: int, *vectors: torch.Tensor) -> None:
    """Swap variables k and j in place: rows and columns of the symmetric ``matrix``, entries of ``vectors``."""
    _swap_rows(k, j, matrix, matrix.T, *vectors)


def permute_symmetric(matrix: torch.Tensor, order: torch.Tensor, *vectors: torch.Tensor) -> None:
    """matrix <- matrix[order][:, order] and v <- v[order] for each of ``vectors``, in place: the columns a
    block of _PERMUTE_ROWS rows at a time (one gather each: column swaps would copy strided memory m
    times), then the rows and vector entries by at most m swaps of contiguous rows."""
    for begin in range(0, matrix.shape[0], _PERMUTE_ROWS):
        block = matrix[begin : begin + _PERMUTE_ROWS]
        block.copy_(block[:, order])
    wanted_at = order.tolist()
    position = list(range(len(wanted_at)))  # position[i]: where original variable i is now
    held = list(range(len(wanted_at)))  # held[p]: the original variable now at p
    for k, wanted in enumerate(wanted_at):
        j = position[wanted]
        if j != k:
            _swap_rows(k, j, matrix, *vectors)
            position[held[k]], position[wanted] = j, k
            held[k], held[j] = wanted, held[k]


__all__ = [
    "SAMPLE_BLOCK",
    "Steps",
    "permute_symmetric",
    "sequential_log_weights",
    "swap_symmetric",
    "uses_compiled_kernel",
]
