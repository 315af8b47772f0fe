"""NNGP kernels, the prior of the marginal-likelihood bound (docs/kernels.md).

Analytic: :class:`FullyConnectedNNGP`, :class:`ConvolutionalNNGP`; empirical:
:class:`MonteCarloNNGP` for any nn.Module; :func:`nngp_for_module` picks the analytic kernel
of a recognised module's initialisation prior (None otherwise).

Every kernel object implements :class:`~pacbayes.kernels.protocol.NNGPKernel`: ``matrix``,
``diagonal``, ``describe`` and ``diagnostics``.
"""

from pacbayes.kernels.conv import ConvolutionalNNGP
from pacbayes.kernels.fc import FullyConnectedNNGP
from pacbayes.kernels.monte_carlo import MonteCarloNNGP
from pacbayes.kernels.protocol import NNGPKernel
from pacbayes.kernels.recognise import nngp_for_module

__all__ = ["ConvolutionalNNGP", "FullyConnectedNNGP", "MonteCarloNNGP", "NNGPKernel", "nngp_for_module"]
