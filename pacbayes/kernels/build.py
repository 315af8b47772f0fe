"""An NNGP kernel named by its hyper-parameters, and its matrix on a set of inputs written to a file.

:func:`analytic_kernel` builds the fully connected or convolutional NNGP that ``pacbayes kernel``
describes with flags; :func:`write_kernel_matrix` computes K(x, x) with any :class:`NNGPKernel`, saves
it as float64 .npy and returns its record (shape, seconds, smallest eigenvalue, the kernel's description).
"""

import time
from typing import Any

from pacbayes.data.arrays import save_npy
from pacbayes.kernels.conv import ConvolutionalNNGP
from pacbayes.kernels.fc import FullyConnectedNNGP
from pacbayes.kernels.spectrum import min_eigenvalue

ARCHITECTURES = ("fc", "cnn")


def analytic_kernel(
    arch: str,
    depth: int,
    activation: str,
    sigma_w: float,
    sigma_b: float | list[float],
    *,
    pooling: str = "flatten",
    kernel_size: int = 3,
    stride: int = 1,
    padding: int | None = None,
) -> FullyConnectedNNGP | ConvolutionalNNGP:
    """The analytic NNGP of a fully connected (``arch`` "fc") or convolutional ("cnn") net of ``depth``
    hidden or conv layers, each followed by ``activation``; a cnn pads (kernel_size - 1) // 2 unless
    ``padding`` is given and reads out by ``pooling``."""
    if arch == "fc":
        return FullyConnectedNNGP(depth, activation, sigma_w, sigma_b)
    pad = (kernel_size - 1) // 2 if padding is None else padding
    return ConvolutionalNNGP([(None, kernel_size, stride, pad)] * depth, activation, sigma_w, sigma_b, pooling)


def write_kernel_matrix(
    kernel: Any,
    x: Any,
    output_path: str,
    *,
    device: str | None = None,
    block_size: int | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Compute ``kernel``'s matrix K(x, x), write it to ``output_path`` (float64 .npy) and return its record:
    shape, seconds, smallest eigenvalue and how it was found, the output path, the kernel's description and
    its diagnostics (if any)."""
    started = time.perf_counter()
    K = kernel.matrix(x, device=device, block_size=block_size, quiet=quiet)
    seconds = time.perf_counter() - started
    smallest, method = (
        (kernel.diagnostics["min_eigenvalue"], "eigvalsh")
        if "min_eigenvalue" in kernel.diagnostics
        else min_eigenvalue(K)
    )
    save_npy(output_path, K.cpu().numpy())
    record = {
        "shape": list(K.shape),
        "seconds": seconds,
        "min_eigenvalue": smallest,
        "min_eigenvalue_method": method,
        "output": output_path,
        "kernel": kernel.describe(),
    }
    if kernel.diagnostics:
        record["diagnostics"] = kernel.diagnostics
    return record
