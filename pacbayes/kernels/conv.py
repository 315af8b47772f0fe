"""Analytic NNGP kernel of a convolutional network (Garriga-Alonso, Rasmussen & Aitchison 2019;
Novak et al. 2019), read out by a dense layer on the flattened features or by global average
pooling followed by a dense layer.

Network: ``depth`` = len(layers) blocks of Conv2d -> activation (zero padding, any stride, no
dilation or groups), then the single-logit read-out. Weights are N(0, sigma_w^2 / fan_in) with
fan_in = in_channels * kh * kw (in_features for the read-out), biases N(0, sigma_b(l)^2).
In the limit of many channels, with K(l)_{p,p'}(x, x') the covariance of pre-activations at
spatial positions p of x and p' of x' (Novak et al. 2019, eqs. 6-7, 16-17):

    K(0)_{p,p'} = sigma_b(0)^2 + sigma_w^2 / (c kh kw) sum_{o, c} x_{c, p+o} x'_{c, p'+o}
    K(l+1)_{p,p'} = sigma_b(l+1)^2 + sigma_w^2 / (kh kw) sum_o E[phi(u_{p+o}) phi(u'_{p'+o})]

(o runs over the window offsets; positions in the zero padding contribute 0; u ~ GP(0, K(l))).
Read-out by flatten + dense: K = sigma_b^2 + sigma_w^2 mean_p E[phi(u_p) phi(u'_p)], which needs
only the p = p' entries at every layer (cost O(n^2 P) per layer). Read-out by global average
pooling: K = sigma_b^2 + sigma_w^2 mean_{p,p'} E[phi(u_p) phi(u'_{p'})], which needs every pair
of positions (cost O(n^2 P^2) per layer): practical for small images or strided nets only.
With one conv layer a finite net with Gaussian weights already has exactly this covariance.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral

from pacbayes.errors import InputError
from pacbayes.kernels._blocks import builder_description, check_activation, check_sigma_b, check_sigma_w
from pacbayes.kernels.activations import ACTIVATIONS
from pacbayes.kernels.compiled import CompiledNNGP, Graph, Node
from pacbayes.kernels.duals import Dual
from pacbayes.kernels.rules import Activation, Conv, Dense, Flatten, GlobalMean

POOLINGS = ("flatten", "gap")


def _pair(value, name: str, minimum: int) -> tuple:
    values = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(values) != 2 or any(isinstance(v, bool) or not isinstance(v, Integral) or v < minimum for v in values):
        raise InputError(f"conv layer {name} must be an integer >= {minimum} or a pair of them, got {value!r}")
    return tuple(int(v) for v in values)


@dataclass(frozen=True)
class ConvLayer:
    """One Conv2d: output channels (only recorded, may be None: the NNGP is the many-channel
    limit), kernel size, stride and zero padding, each as (height, width)."""

    channels: int | None
    kernel_size: tuple
    stride: tuple
    padding: tuple

    @classmethod
    def parse(cls, spec) -> "ConvLayer":
        if isinstance(spec, ConvLayer):
            return spec
        if not isinstance(spec, (tuple, list)) or len(spec) != 4:
            raise InputError(f"each conv layer must be (channels, kernel_size, stride, padding), got {spec!r}")
        channels = spec[0]
        if channels is not None and (isinstance(channels, bool) or not isinstance(channels, Integral) or channels < 1):
            raise InputError(f"conv layer channels must be an integer >= 1 or None, got {channels!r}")
        return cls(
            None if channels is None else int(channels),
            _pair(spec[1], "kernel_size", 1),
            _pair(spec[2], "stride", 1),
            _pair(spec[3], "padding", 0),
        )

    def output_size(self, size: tuple) -> tuple:
        out = tuple(
            (n + 2 * p - k) // s + 1
            for n, k, s, p in zip(size, self.kernel_size, self.stride, self.padding, strict=False)
        )
        if min(out) < 1:
            raise InputError(
                f"a {self.kernel_size} convolution with padding {self.padding} does not "
                f"fit a {size[0]}x{size[1]} image; use larger inputs or fewer layers"
            )
        return out


class ConvolutionalNNGP(CompiledNNGP):
    """NNGP kernel of a CNN: ``layers`` of (channels, kernel_size, stride, padding), each a Conv2d
    followed by ``activation``, then a single-logit dense read-out of the flattened features
    (``pooling="flatten"``) or of their global average (``pooling="gap"``).

    ``sigma_b``: one value, or len(layers) + 1 values (one per conv layer, then the read-out).
    ``input_shape``: (channels, height, width) of one input; if given, inputs are checked against
    it and may also be passed flattened as (n, c*h*w).
    """

    kind = "nngp-cnn"

    def __init__(
        self,
        layers: Sequence,
        activation: str = "relu",
        sigma_w: float = 1.0,
        sigma_b: float | Sequence[float] = 0.0,
        pooling: str = "flatten",
        input_shape: Sequence[int] | None = None,
    ):
        if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence) or len(layers) < 1:
            raise InputError(
                "layers must be a non-empty sequence of (channels, kernel_size, stride, "
                "padding); depth < 1 has no hidden layer"
            )
        self.layers = tuple(ConvLayer.parse(spec) for spec in layers)
        self.depth = len(self.layers)
        self.activation = check_activation(activation, ACTIVATIONS)
        self.sigma_w = check_sigma_w(sigma_w)
        self.sigma_b = check_sigma_b(sigma_b, self.depth + 1)
        if pooling not in POOLINGS:
            raise InputError(f"pooling must be flatten or gap, got {pooling!r}")
        self.pooling = pooling
        self.input_shape = None
        if input_shape is not None:
            shape = tuple(input_shape)
            if len(shape) != 3 or any(isinstance(v, bool) or not isinstance(v, Integral) or v < 1 for v in shape):
                raise InputError(f"input_shape must be (channels, height, width), got {input_shape!r}")
            self.input_shape = tuple(int(v) for v in shape)
            self.spatial_sizes(self.input_shape[1:])
        nodes = [Node("x", None, (), 2, raw=True)]
        for index, (layer, bias) in enumerate(zip(self.layers, self.sigma_b, strict=False)):
            padding = tuple((p, p) for p in layer.padding)
            channels = (None, layer.channels)
            conv = Conv(self.sigma_w, bias, layer.kernel_size, layer.stride, padding, (1, 1), channels)
            nodes.append(Node(f"conv{index}", conv, (nodes[-1].name,), 2))
            nodes.append(Node(f"phi{index}", Activation(Dual(self.activation)), (nodes[-1].name,), 2))
        if pooling == "gap":
            nodes.append(Node("gap", GlobalMean(2, keep=True), (nodes[-1].name,), 2))
        nodes.append(Node("flatten", Flatten(), (nodes[-1].name,), 0))
        nodes.append(Node("readout", Dense(self.sigma_w, self.sigma_b[-1]), (nodes[-1].name,), 0))
        super().__init__(Graph(nodes, "readout", input_shape=self.input_shape))

    def describe(self) -> dict:
        return {
            **builder_description(self),
            "pooling": self.pooling,
            "conv_layers": [
                [layer.channels, list(layer.kernel_size), list(layer.stride), list(layer.padding)]
                for layer in self.layers
            ],
            **{k: v for k, v in super().describe().items() if k != "kind"},
            "input_shape": None if self.input_shape is None else list(self.input_shape),
        }

    def spatial_sizes(self, size: tuple) -> list:
        """(height, width) of the input and of each conv layer's output, for an input of ``size``."""
        sizes = [tuple(size)]
        for layer in self.layers:
            sizes.append(layer.output_size(sizes[-1]))
        return sizes

    def _inputs(self, x, device, name):
        x = super()._inputs(x, device, name)
        self.spatial_sizes(x.shape[2:])
        return x
