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

import math
from dataclasses import dataclass
from numbers import Integral
from typing import Sequence

import torch
import torch.nn.functional as F

from pacbayes.device import resolve_device
from pacbayes.errors import InputError
from pacbayes.kernels._blocks import (
    as_inputs,
    check_activation,
    check_block_size,
    check_sigma_b,
    check_sigma_w,
    describe_sigma_b,
    fill_kernel,
)
from pacbayes.kernels.activations import ACTIVATIONS, expected_product, expected_square

POOLINGS = ("flatten", "gap")
_TILE_ELEMENTS = 2**22  # float64 entries in one tile buffer (32 MiB) when block_size is None


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
        out = tuple((n + 2 * p - k) // s + 1 for n, k, s, p in zip(size, self.kernel_size, self.stride, self.padding))
        if min(out) < 1:
            raise InputError(
                f"a {self.kernel_size} convolution with padding {self.padding} does not "
                f"fit a {size[0]}x{size[1]} image; use larger inputs or fewer layers"
            )
        return out


def _window_mean(t: torch.Tensor, layer: ConvLayer) -> torch.Tensor:
    """Mean of ``t`` (..., h, w) over each conv window, zero padding included (avg_pool2d)."""
    (kh, kw), (ph, pw) = layer.kernel_size, layer.padding
    lead, (h, w) = t.shape[:-2], t.shape[-2:]
    flat = t.reshape(-1, 1, h, w)
    if ph > kh // 2 or pw > kw // 2:  # avg_pool2d pads at most half a window itself
        flat, ph, pw = F.pad(flat, (pw, pw, ph, ph)), 0, 0
    pooled = F.avg_pool2d(flat, layer.kernel_size, layer.stride, (ph, pw), count_include_pad=True)
    return pooled.reshape(*lead, *pooled.shape[-2:])


def _window_mean_pairs(t: torch.Tensor, layer: ConvLayer) -> torch.Tensor:
    """For t (h, w, h, w, ...) indexed by two positions: (1/(kh kw)) sum_o t[s i + o, s i' + o],
    the same window offset o at both positions, with zero padding."""
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
    spatial = t.shape[:2]
    out_h, out_w = layer.output_size(spatial)
    if ph or pw:
        padded = t.new_zeros((spatial[0] + 2 * ph, spatial[1] + 2 * pw) * 2 + t.shape[4:])
        padded[(slice(ph, ph + spatial[0]), slice(pw, pw + spatial[1])) * 2] = t
        t = padded
    total = None
    for a in range(kh):
        for b in range(kw):
            index = (slice(a, a + sh * (out_h - 1) + 1, sh), slice(b, b + sw * (out_w - 1) + 1, sw)) * 2
            total = t[index].clone() if total is None else total.add_(t[index])
    return total.mul_(1.0 / (kh * kw))


class ConvolutionalNNGP:
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

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "depth": self.depth,
            "activation": self.activation,
            "sigma_w": self.sigma_w,
            "sigma_b": describe_sigma_b(self.sigma_b),
            "pooling": self.pooling,
            "layers": [
                [layer.channels, list(layer.kernel_size), list(layer.stride), list(layer.padding)]
                for layer in self.layers
            ],
            "input_shape": None if self.input_shape is None else list(self.input_shape),
        }

    def spatial_sizes(self, size: tuple) -> list:
        """(height, width) of the input and of each conv layer's output, for an input of ``size``."""
        sizes = [tuple(size)]
        for layer in self.layers:
            sizes.append(layer.output_size(sizes[-1]))
        return sizes

    def _images(self, x, device, name) -> torch.Tensor:
        x = as_inputs(x, device, name)
        if self.input_shape is not None and x.dim() == 2 and x.shape[1] == math.prod(self.input_shape):
            x = x.reshape(x.shape[0], *self.input_shape)
        if x.dim() != 4:
            raise InputError(f"{name} must have shape (n, channels, height, width), got {tuple(x.shape)}")
        if self.input_shape is not None and tuple(x.shape[1:]) != self.input_shape:
            raise InputError(
                f"{name} has inputs of shape {tuple(x.shape[1:])} but the kernel was built for {self.input_shape}"
            )
        return x

    def _patches(self, x: torch.Tensor) -> torch.Tensor:
        """First-layer patches scaled so that patch . patch' = sum_{o,c} x x' / fan_in: (n, K, P)."""
        layer = self.layers[0]
        patches = F.unfold(x, layer.kernel_size, padding=layer.padding, stride=layer.stride)
        return patches.mul_(1.0 / math.sqrt(patches.shape[1]))

    def _variances(self, patches: torch.Tensor, sizes: list) -> list:
        """Per-position pre-activation variances K(l)_{p,p}(x, x), each (n, h_l, w_l)."""
        weight = self.sigma_w**2
        var = (patches * patches).sum(dim=1).reshape(-1, *sizes[1])
        variances = [var.mul_(weight).add_(self.sigma_b[0] ** 2)]
        for layer, bias in zip(self.layers[1:], self.sigma_b[1:-1]):
            var = _window_mean(expected_square(variances[-1], self.activation), layer)
            variances.append(var.mul_(weight).add_(bias**2))
        return variances

    def _propagate(self, cov: torch.Tensor, var1: list, var2: list, shape1, shape2) -> torch.Tensor:
        """Run the first-layer covariance ``cov`` through every layer and the read-out; var1 and
        var2 are reshaped with ``shape1(v)`` / ``shape2(v)`` to broadcast against ``cov``, laid out
        as (a, b, h, w) for flatten and (h, w, h, w, ...) for gap."""
        weight = self.sigma_w**2
        pool, positions = (_window_mean, (-2, -1)) if self.pooling == "flatten" else (_window_mean_pairs, (0, 1, 2, 3))
        cov = cov.mul_(weight).add_(self.sigma_b[0] ** 2)
        for depth, (layer, bias) in enumerate(zip(self.layers[1:], self.sigma_b[1:-1])):
            phi = expected_product(cov, shape1(var1[depth]), shape2(var2[depth]), self.activation)
            cov = pool(phi, layer).mul_(weight).add_(bias**2)
        phi = expected_product(cov, shape1(var1[-1]), shape2(var2[-1]), self.activation)
        return phi.mean(dim=positions).mul_(weight).add_(self.sigma_b[-1] ** 2)

    @property
    def diagnostics(self) -> dict:
        """Nothing to report: the analytic kernel is exact (see :class:`~pacbayes.kernels.protocol.NNGPKernel`)."""
        return {}

    def diagonal(self, x, *, device=None, block_size=None, quiet=True) -> torch.Tensor:
        """K(x_i, x_i) for every input: float64, shape (n,) (one pass; no tiles, no progress)."""
        x = self._images(x, resolve_device(device), "x")
        sizes = self.spatial_sizes(x.shape[2:])
        patches = self._patches(x)
        variances = self._variances(patches, sizes)
        weight, bias = self.sigma_w**2, self.sigma_b[-1] ** 2
        if self.pooling == "flatten":
            return expected_square(variances[-1], self.activation).mean(dim=(1, 2)).mul_(weight).add_(bias)
        cov = torch.einsum("nkp,nkq->pqn", patches, patches).reshape(*sizes[1], *sizes[1], -1)
        return self._propagate(
            cov,
            variances,
            variances,
            lambda v: v.permute(1, 2, 0)[:, :, None, None],
            lambda v: v.permute(1, 2, 0)[None, None],
        )

    def matrix(self, x1, x2=None, *, device=None, block_size=None, quiet=True) -> torch.Tensor:
        """The (n1, n2) float64 kernel matrix on ``device``; ``x2=None`` gives K(x1, x1).

        Tiles of ``block_size`` inputs square; by default sized so that one tile buffer holds
        about 4M float64 entries (flatten: block^2 * positions; gap: block^2 * positions^2).
        """
        device = resolve_device(device)
        x1 = self._images(x1, device, "x1")
        x2 = x1 if x2 is None else self._images(x2, device, "x2")
        if x2.shape[1:] != x1.shape[1:]:
            raise InputError(
                f"x1 has inputs of shape {tuple(x1.shape[1:])} but x2 has "
                f"{tuple(x2.shape[1:])}; both must come from the same input space"
            )
        symmetric = x2 is x1
        sizes = self.spatial_sizes(x1.shape[2:])
        positions = [math.prod(sizes[1])] + [
            (h + 2 * layer.padding[0]) * (w + 2 * layer.padding[1]) for (h, w), layer in zip(sizes[1:], self.layers[1:])
        ]
        per_pair = max(positions) ** (1 if self.pooling == "flatten" else 2)
        block_size = check_block_size(block_size, max(1, math.isqrt(_TILE_ELEMENTS // per_pair)))
        patches1 = self._patches(x1)
        patches2 = patches1 if symmetric else self._patches(x2)
        var1 = self._variances(patches1, sizes)
        var2 = var1 if symmetric else self._variances(patches2, sizes)

        if self.pooling == "flatten":

            def tile(rows, cols):
                cov = torch.einsum("akp,bkp->abp", patches1[rows], patches2[cols])
                return self._propagate(
                    cov.reshape(*cov.shape[:2], *sizes[1]),
                    [v[rows] for v in var1],
                    [v[cols] for v in var2],
                    lambda v: v[:, None],
                    lambda v: v[None],
                )
        else:

            def tile(rows, cols):
                cov = torch.einsum("akp,bkq->pqab", patches1[rows], patches2[cols])
                return self._propagate(
                    cov.reshape(*sizes[1], *sizes[1], *cov.shape[2:]),
                    [v[rows] for v in var1],
                    [v[cols] for v in var2],
                    lambda v: v.permute(1, 2, 0)[:, :, None, None, :, None],
                    lambda v: v.permute(1, 2, 0)[None, None, :, :, None, :],
                )

        diagonal = self.diagonal(x1, device=device) if symmetric else None
        return fill_kernel(
            x1.shape[0],
            x2.shape[0],
            tile,
            symmetric=symmetric,
            block_size=block_size,
            device=device,
            quiet=quiet,
            desc=f"cnn-{self.activation}-{self.pooling} NNGP",
            diagonal=diagonal,
        )
