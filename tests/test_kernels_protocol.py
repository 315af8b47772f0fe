"""Every kernel object implements pacbayes.kernels.NNGPKernel (matrix, diagonal, describe, diagnostics)."""

import torch

from pacbayes.kernels import ConvolutionalNNGP, FullyConnectedNNGP, MonteCarloNNGP, NNGPKernel


def test_every_kernel_implements_the_kernel_protocol():
    x = torch.rand(3, 1, 4, 4)
    kernels = [
        FullyConnectedNNGP(1),
        ConvolutionalNNGP([(None, 3, 1, 1)]),
        MonteCarloNNGP(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 1)), samples=8),
    ]
    for kernel in kernels:
        assert isinstance(kernel, NNGPKernel)
        K = kernel.matrix(x)
        assert torch.allclose(kernel.diagonal(x, block_size=2, quiet=True), K.diagonal())
        assert isinstance(kernel.diagnostics, dict) and "kind" in kernel.describe()
