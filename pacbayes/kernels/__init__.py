"""NNGP kernels, the prior of the marginal-likelihood bound (docs/kernels.md).

Analytic: a compiler from any traced model to a graph of layer rules (:func:`analytic_kernel_or_reason`,
:func:`nngp_for_module`, :class:`CompiledNNGP`), and the two classic families built directly,
:class:`FullyConnectedNNGP` and :class:`ConvolutionalNNGP`; empirical: :class:`MonteCarloNNGP` for any
model.

Every kernel object implements :class:`~pacbayes.kernels.protocol.NNGPKernel`: ``matrix``,
``diagonal``, ``describe`` and ``diagnostics``.
"""

from pacbayes.kernels.compiled import CompiledNNGP
from pacbayes.kernels.conv import ConvolutionalNNGP
from pacbayes.kernels.fc import FullyConnectedNNGP
from pacbayes.kernels.monte_carlo import MonteCarloNNGP
from pacbayes.kernels.protocol import NNGPKernel
from pacbayes.kernels.recognise import analytic_kernel_or_reason, nngp_for_module

__all__ = [
    "CompiledNNGP",
    "ConvolutionalNNGP",
    "FullyConnectedNNGP",
    "MonteCarloNNGP",
    "NNGPKernel",
    "analytic_kernel_or_reason",
    "nngp_for_module",
]
