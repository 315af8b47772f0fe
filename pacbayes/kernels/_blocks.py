"""Shared plumbing for every kernel: input checks, parameter checks, and blocked filling.

A kernel matrix is filled tile by tile so that memory stays at the n1 x n2 result plus one
tile's temporaries. For the symmetric train kernel only tiles on or above the diagonal are
computed; each is mirrored, so the result is exactly symmetric.
"""

import math
from collections.abc import Callable, Sequence
from numbers import Real

import numpy as np
import torch

from pacbayes import checks
from pacbayes.device import resolve_device
from pacbayes.errors import InputError
from pacbayes.progress import progress


def as_inputs(x, device: torch.device, name: str = "inputs") -> torch.Tensor:
    """Check an (n, ...) array of inputs and return it as a float64 tensor on ``device``."""
    if isinstance(x, torch.Tensor):
        tensor = x.detach()
    else:
        try:
            array = np.asarray(x)
            if array.dtype == object or not np.issubdtype(array.dtype, np.number):
                raise TypeError
            tensor = torch.from_numpy(np.ascontiguousarray(array))
        except (TypeError, ValueError) as err:
            raise InputError(f"{name} must be a numeric array or tensor, got {type(x).__name__}") from err
    if tensor.is_complex():
        raise InputError(f"{name} must be real-valued, got dtype {tensor.dtype}")
    if tensor.dim() < 2:
        raise InputError(
            f"{name} must have shape (n, ...) with one row per input, got shape "
            f"{tuple(tensor.shape)}; reshape a single input to (1, ...)"
        )
    if tensor.shape[0] == 0 or tensor[0].numel() == 0:
        raise InputError(f"{name} is empty (shape {tuple(tensor.shape)}); pass at least one input")
    tensor = tensor.to(device=device, dtype=torch.float64)
    if not bool(torch.isfinite(tensor).all()):
        raise InputError(f"{name} contain NaN or infinite values; clean or impute them first")
    return tensor


def check_depth(depth) -> int:
    return checks.integer_at_least(depth, "depth (the number of hidden layers)", 1)


def check_activation(activation: str, allowed: Sequence[str]) -> str:
    if activation not in allowed:
        raise InputError(f"activation must be one of {', '.join(allowed)}, got {activation!r}")
    return activation


def check_sigma_w(sigma_w) -> float:
    if isinstance(sigma_w, bool) or not isinstance(sigma_w, Real) or not math.isfinite(sigma_w) or sigma_w <= 0:
        raise InputError(
            f"sigma_w must be a finite number > 0 (weight standard deviation times sqrt(fan_in)), got {sigma_w!r}"
        )
    return float(sigma_w)


def check_sigma_b(sigma_b, layers: int) -> tuple:
    """One bias standard deviation per linear layer (a scalar is repeated ``layers`` times)."""
    if isinstance(sigma_b, Real):
        values = [sigma_b] * layers
    elif isinstance(sigma_b, (Sequence, np.ndarray)) and not isinstance(sigma_b, str):
        values = list(sigma_b)
    else:
        raise InputError(f"sigma_b must be a number >= 0 or a sequence of {layers} numbers, got {sigma_b!r}")
    if len(values) != layers:
        raise InputError(
            f"sigma_b has {len(values)} entries but the network has {layers} linear "
            f"layers; give one bias standard deviation per layer, first layer first"
        )
    for value in values:
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value < 0:
            raise InputError(f"sigma_b must be finite and >= 0 (bias standard deviation), got {value!r}")
    return tuple(float(value) for value in values)


def describe_sigma_b(sigma_b: tuple):
    """A scalar when every layer has the same bias standard deviation, else the list."""
    return sigma_b[0] if len(set(sigma_b)) == 1 else list(sigma_b)


def builder_description(kernel) -> dict:
    """The keys every kernel builder's ``describe()`` starts with: kind, depth, activation, sigma_w, sigma_b."""
    return {
        "kind": kernel.kind,
        "depth": kernel.depth,
        "activation": kernel.activation,
        "sigma_w": kernel.sigma_w,
        "sigma_b": describe_sigma_b(kernel.sigma_b),
    }


def check_block_size(block_size, default: int) -> int:
    if block_size is None:
        return default
    return checks.integer_at_least(block_size, "block_size", 1)


def fill_kernel(
    n1: int,
    n2: int,
    tile: Callable[[slice, slice], torch.Tensor],
    *,
    symmetric: bool,
    block_size: int,
    device,
    quiet: bool,
    desc: str,
    diagonal: torch.Tensor | None = None,
) -> torch.Tensor:
    """Assemble an (n1, n2) float64 matrix on ``device`` from ``tile(rows, cols)`` blocks.

    ``symmetric``: n1 == n2 and the matrix is K(x, x); tiles below the diagonal are mirrored
    and ``diagonal`` (if given) is written on the diagonal so that it matches ``.diagonal``.
    """
    device = resolve_device(device)
    out = torch.empty((n1, n2), dtype=torch.float64, device=device)
    starts1 = range(0, n1, block_size)
    starts2 = range(0, n2, block_size)
    pairs = [(i, j) for i in starts1 for j in starts2 if not symmetric or j >= i]
    for i, j in progress(pairs, desc=desc, quiet=quiet, unit="tile"):
        rows, cols = slice(i, min(i + block_size, n1)), slice(j, min(j + block_size, n2))
        block = tile(rows, cols)
        if symmetric and i == j:
            block = block.triu()
            block += block.triu(1).T
            if diagonal is not None:
                block.diagonal().copy_(diagonal[rows])
        out[rows, cols] = block
        if symmetric and i != j:
            out[cols, rows] = block.T
    return out


def mirror_lower(matrix: torch.Tensor, rows: int = 256) -> None:
    """Make ``matrix`` exactly symmetric from its lower triangle (diagonal included), in place: the strict upper
    triangle becomes the transpose of the lower one, a block of ``rows`` rows at a time (no m x m temporary)."""
    m = matrix.shape[0]
    for start in range(0, m, rows):
        end = min(m, start + rows)
        block = matrix[start:end, start:end]
        block.copy_(block.tril() + block.tril(-1).T)
        matrix[start:end, end:] = matrix[end:, start:end].T
