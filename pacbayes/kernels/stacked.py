"""B initialisations of one network evaluated as one wider network (the Monte Carlo NNGP's fast path).

The activations of B initialisations are laid side by side along the channel (or feature) axis: an
activation of shape (n, C, ...) per initialisation becomes (n, B C, ...), initialisation-major. In that
layout

- a convolution of the B initialisations is one grouped convolution (weights stacked to (B O, I/g, ...),
  groups B g); when its input is still the shared data (n, I, ...), one convolution with B O outputs;
- a ``torch.nn.Linear`` on (n, B F) is a batched matrix product per initialisation; on the shared data
  (n, F), one product with B O outputs;
- BatchNorm in eval mode (running statistics: a fixed affine map per channel, x -> (x - mu) w / sqrt(v +
  eps) + b) is one batch_norm call over B C channels with the stacked statistics and affine parameters;
- every parameter-free layer that acts on each channel alone (activations, max and average pooling, dropout
  in eval mode, Identity) runs unchanged (a 2 x 2 max-pool as elementwise maxima: the same values, faster),
  and flattening (n, B C, ...) to (n, B C ...) keeps each initialisation's features contiguous and in the
  order of its own flattening.

Two rewrites leave the outputs as they are and save memory traffic: within a Sequential, a monotone
non-decreasing activation directly before a max-pool runs after it (it then touches the pool's smaller
output), and an activation whose input is a fresh intermediate output overwrites it in place.

:func:`stack_module` builds such a copy of a module (or says why it cannot); the caller checks it against
the module's own forward pass on a probe before trusting it, since a ``forward`` may mix channels in ways
no layer type shows (a concatenation along the channel axis, a reshape to a fixed channel count).
"""

import copy

import torch
from torch.nn import functional

from pacbayes.models import ExportedModel

CHANNELWISE = (
    torch.nn.ReLU,
    torch.nn.ReLU6,
    torch.nn.LeakyReLU,
    torch.nn.ELU,
    torch.nn.GELU,
    torch.nn.SiLU,
    torch.nn.Tanh,
    torch.nn.Sigmoid,
    torch.nn.Softplus,
    torch.nn.Hardtanh,
    torch.nn.Identity,
    torch.nn.Dropout,
    torch.nn.Dropout1d,
    torch.nn.Dropout2d,
    torch.nn.MaxPool1d,
    torch.nn.MaxPool2d,
    torch.nn.AvgPool1d,
    torch.nn.AvgPool2d,
    torch.nn.AdaptiveAvgPool1d,
    torch.nn.AdaptiveAvgPool2d,
    torch.nn.AdaptiveMaxPool1d,
    torch.nn.AdaptiveMaxPool2d,
)
"""Parameter-free layers that act on each channel alone (dropout as in eval mode): unchanged when stacked."""


class _Stacked(torch.nn.Module):
    """A layer holding B initialisations' parameters, stacked along a new first axis."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name
        self.tensors: dict = {}
        self.copies = 1

    def load(self, tensors: dict, copies: int) -> None:
        """Take this layer's entries of ``tensors`` (qualified name -> (B, ...) tensor)."""
        prefix = self.name + "."
        self.tensors = {key[len(prefix) :]: value for key, value in tensors.items() if key.startswith(prefix)}
        self.copies = copies

    def _flat(self, key: str):
        value = self.tensors.get(key)
        return None if value is None else value.reshape(-1, *value.shape[2:])

    def _tiled(self, x: torch.Tensor, channels: int) -> tuple:
        """(x in the stacked layout, whether it was the shared input)."""
        if x.shape[1] == channels * self.copies:
            return x, False
        if x.shape[1] == channels:
            return x, True
        raise ValueError(f"{self.name}: {x.shape[1]} channels, expected {channels} or {channels * self.copies}")


class _Conv(_Stacked):
    def __init__(self, name: str, layer: torch.nn.Module):
        super().__init__(name)
        self.__dict__["layer"] = layer  # its hyperparameters only: not a child module
        self.op = {1: functional.conv1d, 2: functional.conv2d, 3: functional.conv3d}[len(layer.kernel_size)]
        self.norm: _BatchNorm | None = None  # a BatchNorm applied right after, folded into the weights

    def load(self, tensors: dict, copies: int) -> None:
        super().load(tensors, copies)
        if self.norm is not None:
            self.norm.load(tensors, copies)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layer = self.layer
        x, shared = self._tiled(x, layer.in_channels)
        if shared and layer.groups > 1:  # grouped weights need each copy's own input channels
            x, shared = x.repeat(1, self.copies, *([1] * (x.dim() - 2))), False
        groups = layer.groups * (1 if shared else self.copies)
        weight, bias = self._flat("weight"), self._flat("bias")
        if self.norm is not None:
            weight, bias = self.norm.fold(weight, bias)
        return self.op(x, weight, bias, layer.stride, layer.padding, layer.dilation, groups)


class _Linear(_Stacked):
    def __init__(self, name: str, layer: torch.nn.Linear):
        super().__init__(name)
        self.__dict__["layer"] = layer  # its hyperparameters only: not a child module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2:
            raise ValueError(f"{self.name}: stacked linear layers take (n, features) inputs, got {tuple(x.shape)}")
        x, shared = self._tiled(x, self.layer.in_features)
        weight, bias = self.tensors["weight"], self.tensors.get("bias")  # (B, O, F), (B, O)
        if shared:
            out = x @ weight.reshape(-1, weight.shape[2]).T
        else:
            out = torch.bmm(x.reshape(x.shape[0], self.copies, -1).transpose(0, 1), weight.transpose(1, 2))
            out = out.transpose(0, 1).reshape(x.shape[0], -1)
        return out if bias is None else out + bias.reshape(-1)


class _BatchNorm(_Stacked):
    def __init__(self, name: str, layer: torch.nn.modules.batchnorm._BatchNorm):
        super().__init__(name)
        self.__dict__["layer"] = layer  # its hyperparameters only: not a child module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, shared = self._tiled(x, self.layer.num_features)
        if shared and self.copies > 1:
            x = x.repeat(1, self.copies, *([1] * (x.dim() - 2)))
        mean, variance = self._flat("running_mean"), self._flat("running_var")
        return functional.batch_norm(
            x, mean, variance, self._flat("weight"), self._flat("bias"), False, 0.0, self.layer.eps
        )

    def fold(self, weight: torch.Tensor, bias) -> tuple:
        """The weight (B C, ...) and bias of a convolution followed by this normalisation, as one convolution:
        w s and (b - mu) s + beta with s = gamma / sqrt(v + eps) per channel."""
        scale = (self._flat("running_var") + self.layer.eps).rsqrt()
        gamma, beta = self._flat("weight"), self._flat("bias")
        scale = scale if gamma is None else scale * gamma
        shift = -self._flat("running_mean") if bias is None else bias - self._flat("running_mean")
        shift = shift * scale if beta is None else shift * scale + beta
        return weight * scale.reshape(-1, *([1] * (weight.dim() - 1))), shift


class _PairMax2d(torch.nn.MaxPool2d):
    """``MaxPool2d(2)`` (stride 2, no padding or dilation, rounding down) as two elementwise maxima of strided
    views: the same values (a maximum is exact; NaN propagates as in the pool). On the channels-last activations
    of stacked initialisations (2 cores, 128 inputs) it took 6.2 ms against ``max_pool2d``'s 21.9 ms on 512
    channels of 16 x 16, and about the same (47 against 50 ms, memory-bound) on 256 channels of 32 x 32."""

    def __init__(self):
        super().__init__(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows, columns = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
        pairs = torch.maximum(x[..., 0:rows:2, :columns], x[..., 1:rows:2, :columns])
        return torch.maximum(pairs[..., 0::2], pairs[..., 1::2])


def _pairwise_max_pool(layer: torch.nn.Module) -> bool:
    """Whether ``layer`` is a MaxPool2d that :class:`_PairMax2d` computes: 2 x 2 windows, stride 2, no padding,
    dilation 1, rounding down, no indices."""

    def pair(value) -> bool:
        return value in (2, (2, 2))

    return (
        type(layer) is torch.nn.MaxPool2d
        and pair(layer.kernel_size)
        and pair(layer.stride)
        and layer.padding in (0, (0, 0))
        and layer.dilation in (1, (1, 1))
        and not layer.ceil_mode
        and not layer.return_indices
    )


def _stacked_layer(name: str, layer: torch.nn.Module):
    """The stacked form of one leaf layer (a faster equivalent for a 2 x 2 max-pool), None for a channel-wise
    layer kept as it is, or a reason (str)."""
    if _pairwise_max_pool(layer):
        return _PairMax2d()
    if isinstance(layer, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)):
        if layer.padding_mode != "zeros":
            return f"{name}: padding_mode {layer.padding_mode!r}"
        return _Conv(name, layer)
    if type(layer) is torch.nn.Linear:
        return _Linear(name, layer)
    if isinstance(layer, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
        if not layer.track_running_stats:
            return f"{name}: BatchNorm without running statistics normalises by the batch"
        return _BatchNorm(name, layer)
    if isinstance(layer, torch.nn.Flatten):
        flat = (layer.start_dim, layer.end_dim)
        return None if flat == (1, -1) else f"{name}: Flatten{flat}"
    if isinstance(layer, CHANNELWISE):
        return None
    return f"{name}: {type(layer).__name__} has no stacked form"


def _fold_norms(module: torch.nn.Module) -> None:
    """Fold each stacked BatchNorm that directly follows a stacked convolution in a Sequential into it."""
    for container, first, second in _neighbours(module):
        conv, norm = container._modules[first], container._modules[second]
        if isinstance(conv, _Conv) and isinstance(norm, _BatchNorm) and conv.norm is None:
            conv.norm = norm
            container._modules[second] = torch.nn.Identity()


def _neighbours(module: torch.nn.Module):
    """(Sequential, name, next name) for each pair of neighbouring layers of every Sequential in ``module``, the
    layers looked up by the caller as it goes (so a swap it makes is seen by the next pair)."""
    for container in module.modules():
        if isinstance(container, torch.nn.Sequential):
            names = list(container._modules)
            yield from ((container, first, second) for first, second in zip(names, names[1:], strict=False))


MONOTONE = (torch.nn.ReLU, torch.nn.Hardtanh, torch.nn.LeakyReLU)
"""Activations that are monotone non-decreasing as computed in floating point (clamps, and x or a x with a >= 0
by sign): each commutes exactly with a max-pool. Smooth activations are left out, since a vectorised exp or
tanh need not be monotone in its last bit."""

MAX_POOLS = (torch.nn.MaxPool1d, torch.nn.MaxPool2d, torch.nn.AdaptiveMaxPool1d, torch.nn.AdaptiveMaxPool2d)

FRESH = (_Stacked, torch.nn.MaxPool1d, torch.nn.MaxPool2d, torch.nn.AvgPool1d, torch.nn.AvgPool2d)
"""Layers whose output is a new tensor that no other code holds: an activation right after one may run in place."""


def _monotone(layer: torch.nn.Module) -> bool:
    """Whether ``layer`` is an activation in MONOTONE (a LeakyReLU only with a slope >= 0)."""
    return isinstance(layer, MONOTONE) and getattr(layer, "negative_slope", 0.0) >= 0.0


def _pool_first(module: torch.nn.Module) -> None:
    """In each Sequential, run a monotone activation that directly precedes a max-pool after the pool instead:
    max(f(a), f(b)) = f(max(a, b)) for monotone non-decreasing f, so the outputs are the same and the activation
    touches the pool's (smaller) output. A pool that also returns its indices keeps its place."""
    for container, first, second in _neighbours(module):
        activation, pool = container._modules[first], container._modules[second]
        if _monotone(activation) and isinstance(pool, MAX_POOLS) and not pool.return_indices:
            container._modules[first], container._modules[second] = pool, activation


def _in_place(module: torch.nn.Module) -> None:
    """Let each activation with an ``inplace`` switch whose input, within its Sequential, is the fresh output of a
    FRESH layer (Identity placeholders skipped) overwrite that input instead of allocating its own output."""
    for container in module.modules():
        if not isinstance(container, torch.nn.Sequential):
            continue
        before = None
        for layer in container._modules.values():
            if isinstance(layer, torch.nn.Identity):
                continue
            if isinstance(before, FRESH) and isinstance(getattr(layer, "inplace", None), bool):
                layer.inplace = True
            before = layer


def stack_module(module: torch.nn.Module) -> tuple:
    """(a copy of ``module`` in eval mode with every leaf layer stacked, its stacked layers) or (None, reason).

    Load B initialisations with ``load(stacked_module_layers, tensors, B)``; the copy maps (n, ...) inputs to
    outputs (n, B C) (initialisation-major)."""
    if isinstance(module, (torch.jit.ScriptModule, ExportedModel)):
        return None, "a traced or scripted program"
    copied = copy.deepcopy(module).eval()
    layers = []
    for name, layer in list(copied.named_modules()):
        if not name or any(True for _ in layer.children()):
            if any(True for _ in layer.parameters(recurse=False)) or any(True for _ in layer.buffers(recurse=False)):
                return None, f"{name or 'the module'} holds parameters outside its layers"
            continue
        stacked = _stacked_layer(name, layer)
        if isinstance(stacked, str):
            return None, stacked
        if stacked is not None:
            parent, _, attribute = name.rpartition(".")
            setattr(copied.get_submodule(parent) if parent else copied, attribute, stacked)
            if isinstance(stacked, _Stacked):
                layers.append(stacked)
    _fold_norms(copied)
    _pool_first(copied)
    _in_place(copied)
    return copied, layers


def load(layers: list, tensors: dict, copies: int) -> None:
    """Give every stacked layer its entries of ``tensors`` (qualified name -> (B, ...) tensor)."""
    for layer in layers:
        layer.load(tensors, copies)
