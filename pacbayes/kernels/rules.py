"""NNGP layer rules: each layer's finite forward beside its infinite-width kernel transform.

As in neural-tangents' ``stax`` (Novak et al. 2020), every layer is one object with ``forward`` (what the
finite network computes, used to check a compiled graph against the model) and ``kernel`` (what it does
to the covariance of its input in the limit of infinitely many units or channels). Weights are
N(0, sigma_w^2 / fan_in), biases N(0, sigma_b^2), all independent.

Kernel tensors: a covariance has leading batch axes (two, (a, b), for a tile of K(x1, x2); one, (n,),
for the pairs (x_i, x_i) of a diagonal) then the spatial axes of the layer's output. In the
"diagonal" layout only positions p = p' are kept (d spatial axes); in the "full" layout every pair of
positions is (2 d spatial axes, p then p'). Convolutions, activations, additions and scalings map each
layout to itself (a convolution reads K_{p+o, p'+o}, the same offset o on both sides), Flatten + Dense
needs only the diagonal, average pooling and global means need the full layout (Novak et al. 2019,
"Bayesian deep convolutional networks with many channels are Gaussian processes", eqs. 6-7, 16-17;
Garriga-Alonso, Rasmussen & Aitchison 2019).

Every rule has the interface :class:`~pacbayes.kernels.protocol.Rule`: ``forward``, ``kernel(*inputs)`` on
:class:`~pacbayes.kernels.protocol.Covariance` objects, the flags ``needs_full_spatial`` and ``uses_variances``,
and ``describe``. A new rule is one class here and one line in :data:`pacbayes.kernels.compiler.OP_RULES`.

Rules: :class:`Dense` (sigma_b^2 + sigma_w^2 K), :class:`Conv` (sigma_b^2 + sigma_w^2 times the mean
of K over the window, zero padding included), :class:`Activation` (E[phi(u) phi(v)], see
:mod:`pacbayes.kernels.duals`), :class:`Flatten` (mean over positions), :class:`AvgPool` and
:class:`GlobalMean` (the same average applied to p and to p'), :class:`Add` (K_a + K_b, valid when the
branches are uncorrelated: the compiler checks it), :class:`Scale` (c^2 K), :class:`Identity` (Dropout
and Identity in eval mode).
"""

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from pacbayes.kernels.duals import Dual
from pacbayes.kernels.protocol import Covariance


def _fmt(value: float) -> str:
    return f"{value:.3g}"


class _Layer:
    """The defaults of :class:`~pacbayes.kernels.protocol.Rule`: layout-preserving, no variances read."""

    needs_full_spatial: ClassVar[bool] = False
    uses_variances: ClassVar[bool] = False


def _pads(padding: tuple) -> list:
    """F.pad's argument (last axis first) for per-axis (low, high) zero padding."""
    return [p for low_high in reversed(padding) for p in low_high]


@dataclass(frozen=True)
class Dense(_Layer):
    """nn.Linear: z = W h + b, W (fan_out x fan_in). Kernel: sigma_b^2 + sigma_w^2 K (Lee et al. 2018, eq. 4);
    on the raw input: sigma_b^2 + sigma_w^2 x.x' / fan_in."""

    sigma_w: float
    sigma_b: float
    fan_in: int | None = None
    fan_out: int | None = None

    def forward(self, x, weight, bias=None):
        return F.linear(x, weight, bias)

    def kernel(self, *inputs: Covariance) -> Covariance:
        (cov,) = inputs
        return cov.with_tensor(cov.tensor.mul_(self.sigma_w**2).add_(self.sigma_b**2))

    def features(self, x: torch.Tensor, full: bool) -> torch.Tensor:
        """What the kernel needs of each raw input, computed once for all tiles: x flattened."""
        return x.reshape(x.shape[0], -1)

    def from_features(self, f1: torch.Tensor, f2: torch.Tensor | None, full: bool) -> torch.Tensor:
        """(a, b) kernel of the rows of f1 against f2, or (n,) of each row with itself (f2 None)."""
        gram = (f1 * f1).sum(dim=1) if f2 is None else torch.mm(f1, f2.T)
        return gram.mul_(self.sigma_w**2 / f1.shape[1]).add_(self.sigma_b**2)

    def describe(self) -> str:
        shape = "" if self.fan_in is None else f"{self.fan_in}->{self.fan_out}, "
        return f"linear({shape}sw={_fmt(self.sigma_w)}, sb={_fmt(self.sigma_b)})"


@dataclass(frozen=True)
class Conv(_Layer):
    """nn.Conv1d / nn.Conv2d with zero padding ``padding`` ((low, high) per axis), ``stride`` and ``dilation``.

    Kernel: K'_{p,p'} = sigma_b^2 + sigma_w^2 / |window| sum_o K_{s p + dil o - low, s p' + dil o - low}
    (Novak et al. 2019, eq. 7), positions in the padding contributing 0; on the raw input K is the
    channel mean of x_{c,q} x'_{c,q'} (computed here from the input patches).
    """

    sigma_w: float
    sigma_b: float
    kernel_size: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    channels: tuple = (None, None)

    @property
    def d(self) -> int:
        return len(self.kernel_size)

    def output_size(self, size: tuple) -> tuple:
        return tuple(
            (n + lo + hi - dil * (k - 1) - 1) // s + 1
            for n, k, s, (lo, hi), dil in zip(
                size, self.kernel_size, self.stride, self.padding, self.dilation, strict=False
            )
        )

    def forward(self, x, weight, bias=None):
        conv = F.conv1d if self.d == 1 else F.conv2d
        return conv(F.pad(x, _pads(self.padding)), weight, bias, self.stride, 0, self.dilation)

    def _window_mean(self, t: torch.Tensor) -> torch.Tensor:
        """Diagonal layout: the mean of t (..., S) over each window, zero padding included."""
        d = self.d
        lead, size = t.shape[:-d], t.shape[-d:]
        flat = t.reshape(-1, 1, *size)
        symmetric = all(lo == hi and lo <= k // 2 for (lo, hi), k in zip(self.padding, self.kernel_size, strict=False))
        if all(v == 1 for v in self.dilation):
            padding = tuple(lo for lo, _ in self.padding) if symmetric else 0
            if not symmetric:
                flat = F.pad(flat, _pads(self.padding))
            pool = F.avg_pool1d if d == 1 else F.avg_pool2d
            pooled = pool(flat, self.kernel_size, self.stride, padding, count_include_pad=True)
        else:
            ones = flat.new_full((1, 1, *self.kernel_size), 1.0 / math.prod(self.kernel_size))
            conv = F.conv1d if d == 1 else F.conv2d
            pooled = conv(F.pad(flat, _pads(self.padding)), ones, None, self.stride, 0, self.dilation)
        return pooled.reshape(*lead, *pooled.shape[2:])

    def _window_mean_pairs(self, t: torch.Tensor) -> torch.Tensor:
        """Full layout: (1/|window|) sum_o t[..., s p + dil o - lo, s p' + dil o - lo], the same offset at both
        positions and 0 in the padding; one pair of spatial axes at a time, the window being a product of
        per-axis offsets (sum_k 3 passes for a 3x3 window instead of 9)."""
        lead = t.dim() - 2 * self.d
        for axis in range(self.d):
            t = self._sum_axis_pair(t, lead + axis, lead + self.d + axis, axis)
        return t.mul_(1.0 / math.prod(self.kernel_size))

    def _sum_axis_pair(self, t: torch.Tensor, first: int, second: int, axis: int) -> torch.Tensor:
        """sum_o t[.., s q + dil o - lo (at ``first``), .., s q' + dil o - lo (at ``second``), ..] over the offsets
        o of ``axis``, positions outside the input contributing 0."""
        size, k, stride, dil = t.shape[first], self.kernel_size[axis], self.stride[axis], self.dilation[axis]
        low, high = self.padding[axis]
        out_size = (size + low + high - dil * (k - 1) - 1) // stride + 1
        shape = list(t.shape)
        shape[first] = shape[second] = out_size
        out = t.new_zeros(shape)
        for offset in range(k):
            shift = dil * offset - low  # output q reads input stride q + shift
            start, stop = max(0, (stride - 1 - shift) // stride), min(out_size - 1, (size - 1 - shift) // stride)
            if stop < start:
                continue
            source, target = [slice(None)] * t.dim(), [slice(None)] * t.dim()
            source[first] = source[second] = slice(stride * start + shift, stride * stop + shift + 1, stride)
            target[first] = target[second] = slice(start, stop + 1)
            out[tuple(target)] += t[tuple(source)]
        return out

    def _affine(self, cov: torch.Tensor, full: bool) -> torch.Tensor:
        pooled = self._window_mean_pairs(cov) if full else self._window_mean(cov)
        return pooled.mul_(self.sigma_w**2).add_(self.sigma_b**2)

    def kernel(self, *inputs: Covariance) -> Covariance:
        (cov,) = inputs
        return cov.with_tensor(self._affine(cov.tensor, cov.full))

    def _patches(self, x: torch.Tensor) -> torch.Tensor:
        """Input patches (n, c * |window|, P) scaled so that patch . patch' is the channel-window mean."""
        image = F.pad(x, _pads(self.padding))
        if self.d == 1:
            image = image[:, :, None]
        kernel = self.kernel_size if self.d == 2 else (1, *self.kernel_size)
        stride = self.stride if self.d == 2 else (1, *self.stride)
        dilation = self.dilation if self.d == 2 else (1, *self.dilation)
        patches = F.unfold(image, kernel, dilation=dilation, stride=stride)
        return patches.mul_(1.0 / math.sqrt(patches.shape[1]))

    def features(self, x: torch.Tensor, full: bool) -> torch.Tensor:
        """What the kernel needs of each raw (n, c, *S) input, once for all tiles: the input itself for the
        diagonal layout, its patches for the full one."""
        if not full:
            return x
        return self._patches(x).reshape(x.shape[0], -1, *self.output_size(x.shape[2:]))  # (n, c |window|, *S')

    def from_features(self, f1: torch.Tensor, f2: torch.Tensor | None, full: bool) -> torch.Tensor:
        """First-layer kernel: (a, b, *S') / (a, b, *S', *S') or, with f2 None, (n, ...) of each input with itself.

        Diagonal layout: the window mean (the same offsets at p and p') of the channel mean of x_{c,q} x'_{c,q},
        i.e. one elementwise product and one pooling pass; full layout: products of the input patches."""
        if not full:
            product = (f1 * f1).mean(dim=1) if f2 is None else torch.einsum("ac...,bc...->ab...", f1, f2)
            if f2 is not None:
                product = product.div_(f1.shape[1])
            return self._affine(product, False)
        out = f1.shape[2:]
        p1 = f1.flatten(2)
        if f2 is None:
            cov = torch.einsum("nkp,nkq->npq", p1, p1).reshape(-1, *out, *out)
        else:
            cov = torch.einsum("akp,bkq->abpq", p1, f2.flatten(2)).reshape(f1.shape[0], f2.shape[0], *out, *out)
        return cov.mul_(self.sigma_w**2).add_(self.sigma_b**2)

    def describe(self) -> str:
        channels = "" if self.channels[0] is None else f"{self.channels[0]}->{self.channels[1]}, "
        k = "x".join(map(str, self.kernel_size))
        s = "x".join(map(str, self.stride))
        p = ",".join(f"{lo}" if lo == hi else f"{lo}/{hi}" for lo, hi in self.padding)
        dil = "" if all(v == 1 for v in self.dilation) else f", dil={'x'.join(map(str, self.dilation))}"
        return f"conv{self.d}d({channels}k={k}, s={s}, p={p}{dil}, sw={_fmt(self.sigma_w)}, sb={_fmt(self.sigma_b)})"


@dataclass(frozen=True)
class Activation(_Layer):
    """An elementwise phi: K' = E[phi(u) phi(v)] with (u, v) ~ N(0, [[K11, K12], [K12, K22]])."""

    uses_variances: ClassVar[bool] = True
    dual: Dual

    def forward(self, x):
        return self.dual.phi(x)

    def kernel(self, *inputs: Covariance) -> Covariance:
        (cov,) = inputs
        if cov.pairs and not cov.full:  # K11 = K12 = K22: E[phi(u)^2]
            return cov.with_tensor(self.dual.square(cov.marginals[0]))
        return cov.with_tensor(self.dual.product(cov.tensor, *cov.broadcast_marginals()))

    def describe(self) -> str:
        return self.dual.describe()


@dataclass(frozen=True)
class Flatten(_Layer):
    """Flattening (channels, *S) features for a dense layer: the kernel becomes the mean over positions
    of K_{p,p} (a dense read-out sums units at matching positions only)."""

    def forward(self, x):
        return x.flatten(1)

    def kernel(self, *inputs: Covariance) -> Covariance:
        (cov,) = inputs
        if cov.d == 0:
            return cov
        cov = cov.diagonal()
        return cov.with_tensor(cov.tensor.mean(dim=tuple(range(-cov.d, 0))), d=0)

    def describe(self) -> str:
        return "flatten"


@dataclass(frozen=True)
class AvgPool(_Layer):
    """nn.AvgPool1d/2d: the pooled covariance is the window average applied to p and to p' (full layout)."""

    needs_full_spatial: ClassVar[bool] = True

    kernel_size: tuple
    stride: tuple
    padding: tuple
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor_override: int | None = None

    @property
    def d(self) -> int:
        return len(self.kernel_size)

    def forward(self, x):
        if self.d == 1:
            return F.avg_pool1d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)
        return F.avg_pool2d(
            x,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
        )

    def _pool_last(self, t: torch.Tensor) -> torch.Tensor:
        d = self.d
        pooled = self.forward(t.reshape(-1, 1, *t.shape[-d:]))
        return pooled.reshape(*t.shape[:-d], *pooled.shape[2:])

    def kernel(self, *inputs: Covariance) -> Covariance:
        (cov,) = inputs
        d = self.d
        lead = cov.tensor.dim() - 2 * d
        second = self._pool_last(cov.tensor)  # over p'
        order = (*range(lead), *range(lead + d, lead + 2 * d), *range(lead, lead + d))
        first = self._pool_last(second.permute(order))  # over p
        return cov.with_tensor(first.permute(order).contiguous())

    def describe(self) -> str:
        k = "x".join(map(str, self.kernel_size))
        s = "x".join(map(str, self.stride))
        return f"avgpool{self.d}d(k={k}, s={s}, p={','.join(map(str, self.padding))})"


@dataclass(frozen=True)
class GlobalMean(_Layer):
    """Global average pooling (AdaptiveAvgPool(1), x.mean over the spatial axes): K' = mean_{p,p'} K_{p,p'}.

    ``keep``: the output keeps d spatial axes of size 1 (AdaptiveAvgPool2d(1), keepdim=True)."""

    needs_full_spatial: ClassVar[bool] = True
    d: int
    keep: bool

    def forward(self, x):
        return x.mean(dim=tuple(range(2, 2 + self.d)), keepdim=self.keep)

    def kernel(self, *inputs: Covariance) -> Covariance:
        (cov,) = inputs
        mean = cov.tensor.mean(dim=tuple(range(-2 * self.d, 0)))
        if not self.keep:
            return cov.with_tensor(mean, d=0)
        return cov.with_tensor(mean.reshape(*mean.shape, *([1] * (2 * self.d))))

    def describe(self) -> str:
        return "global-mean"


@dataclass(frozen=True)
class Add(_Layer):
    """A residual addition a + b of two uncorrelated branches: K' = K_a + K_b."""

    def forward(self, a, b):
        return a + b

    def kernel(self, *inputs: Covariance) -> Covariance:
        a, b = inputs[0].tensor, inputs[1].tensor
        return inputs[0].with_tensor(a.add_(b) if a.shape == torch.broadcast_shapes(a.shape, b.shape) else a + b)

    def describe(self) -> str:
        return "add"


@dataclass(frozen=True)
class Scale(_Layer):
    """Multiplication by a constant c: K' = c^2 K."""

    factor: float

    def forward(self, x):
        return x * self.factor

    def kernel(self, *inputs: Covariance) -> Covariance:
        (cov,) = inputs
        return cov.with_tensor(cov.tensor.mul_(self.factor**2))

    def describe(self) -> str:
        return f"scale({_fmt(self.factor)})"


@dataclass(frozen=True)
class Identity(_Layer):
    """Dropout and Identity in eval mode, and copies (clone, contiguous, detach): K' = K."""

    label: str = "identity"

    def forward(self, x):
        return x

    def kernel(self, *inputs: Covariance) -> Covariance:
        (cov,) = inputs
        return cov

    def describe(self) -> str:
        return self.label
