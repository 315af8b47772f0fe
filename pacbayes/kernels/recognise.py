"""Recognising a torch module whose initialisation prior has an analytic NNGP kernel.

:func:`nngp_for_module` accepts an ``nn.Sequential`` (nested Sequentials are expanded) of exactly
one of these forms (a TorchScript Sequential of torch.nn layers is first rebuilt as a plain one
with pacbayes.models.as_plain_sequential), and returns None for anything else (the caller then uses MonteCarloNNGP):

- fully connected: [Flatten] Linear (A Linear)*, ending in Linear(..., 1), where every A
  between two Linear layers is the same kind: a single ReLU (-> "relu"), or nothing / Identity
  layers only (-> "linear"), activations as named by :func:`pacbayes.layers.activation_name`;
  at least one A (depth >= 1). Input of any shape (flattened).
- convolutional: (Conv2d ReLU)+ then either Flatten Linear(..., 1) (pooling "flatten") or
  AdaptiveAvgPool2d(1) Flatten Linear(..., 1) (pooling "gap"); a Conv2d is accepted with
  zero padding (integers, "valid" or "same" with odd kernels), dilation 1 and groups 1.
  Input of shape (channels, height, width).

Flatten must be Flatten(start_dim=1, end_dim=-1); layer sizes must chain. When sigma_w /
sigma_b are not given they are those of PyTorch's default init (torch.nn.Linear and Conv2d
reset_parameters): weights kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
variance 1/(3 fan_in), i.e. sigma_w^2 = 1/3; biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)), i.e.
sigma_b^2 = 1/(3 fan_in) per layer (0 for a layer without bias). The returned kernel is the
infinite-width limit of that initialisation; a finite net matches it up to O(1/width) and, since
PyTorch's weights are uniform rather than Gaussian, up to the central-limit error of the first
layer's fan-in (exactly for linear nets, whose covariance depends on second moments only).
"""

import math
from numbers import Real

from torch import nn

from pacbayes.kernels.conv import ConvolutionalNNGP
from pacbayes.kernels.fc import FullyConnectedNNGP
from pacbayes.layers import activation_name
from pacbayes.models import as_plain_sequential

_DEFAULT_SIGMA_W = math.sqrt(1.0 / 3.0)


def _expand(module: nn.Module) -> list:
    layers = []
    for child in module:
        layers.extend(_expand(child) if isinstance(child, nn.Sequential) else [child])
    return layers


def _is_flatten(layer) -> bool:
    return isinstance(layer, nn.Flatten) and layer.start_dim == 1 and layer.end_dim == -1


def _default_sigma_b(layer) -> float:
    return 0.0 if layer.bias is None else math.sqrt(1.0 / (3.0 * layer.weight[0].numel()))


def _sigma_b(linear_layers: list, sigma_b):
    if sigma_b is None:
        return [_default_sigma_b(layer) for layer in linear_layers]
    if isinstance(sigma_b, Real):
        return [0.0 if layer.bias is None else float(sigma_b) for layer in linear_layers]
    return sigma_b


def _fully_connected(layers: list, input_shape, sigma_w, sigma_b):
    layers = layers[1:] if layers and _is_flatten(layers[0]) else layers
    if not layers or not isinstance(layers[0], nn.Linear) or not isinstance(layers[-1], nn.Linear):
        return None
    linears, kinds, between = [layers[0]], set(), []
    for layer in layers[1:]:
        if not isinstance(layer, nn.Linear):
            between.append(layer)
            continue
        applied = [activation_name(b) for b in between]
        if applied == ["relu"]:
            kinds.add("relu")
        elif all(name == "linear" for name in applied):
            kinds.add("linear")
        else:
            return None
        if layer.in_features != linears[-1].out_features:
            return None
        linears.append(layer)
        between = []
    if between or len(kinds) != 1 or linears[-1].out_features != 1 or linears[0].in_features != math.prod(input_shape):
        return None
    return FullyConnectedNNGP(
        len(linears) - 1, kinds.pop(), _DEFAULT_SIGMA_W if sigma_w is None else sigma_w, _sigma_b(linears, sigma_b)
    )


def _conv_padding(conv: nn.Conv2d):
    if conv.padding == "valid":
        return (0, 0)
    if conv.padding == "same":
        if any(k % 2 == 0 for k in conv.kernel_size) or conv.stride != (1, 1):
            return None
        return tuple((k - 1) // 2 for k in conv.kernel_size)
    return tuple(conv.padding)


def _convolutional(layers: list, input_shape, sigma_w, sigma_b):
    if len(input_shape) != 3:
        return None
    specs, convs, channels, index = [], [], input_shape[0], 0
    while index + 1 < len(layers) and isinstance(layers[index], nn.Conv2d):
        conv, activation = layers[index], layers[index + 1]
        padding = _conv_padding(conv)
        if (
            activation_name(activation) != "relu"
            or padding is None
            or conv.dilation != (1, 1)
            or conv.groups != 1
            or conv.padding_mode != "zeros"
            or conv.in_channels != channels
        ):
            return None
        specs.append((conv.out_channels, conv.kernel_size, conv.stride, padding))
        convs.append(conv)
        channels, index = conv.out_channels, index + 2
    head = layers[index:]
    pooling = "gap" if head and isinstance(head[0], nn.AdaptiveAvgPool2d) else "flatten"
    if pooling == "gap":
        size = head[0].output_size
        if (size if isinstance(size, tuple) else (size, size)) != (1, 1):
            return None
        head = head[1:]
    if (
        not specs
        or len(head) != 2
        or not _is_flatten(head[0])
        or not isinstance(head[1], nn.Linear)
        or head[1].out_features != 1
    ):
        return None
    kernel = ConvolutionalNNGP(
        specs,
        "relu",
        _DEFAULT_SIGMA_W if sigma_w is None else sigma_w,
        _sigma_b(convs + [head[1]], sigma_b),
        pooling,
        input_shape,
    )
    height, width = kernel.spatial_sizes(input_shape[1:])[-1]
    features = channels * (height * width if pooling == "flatten" else 1)
    return kernel if head[1].in_features == features else None


def nngp_for_module(module: nn.Module, input_shape, sigma_w=None, sigma_b=None):
    """The analytic NNGP kernel of ``module``'s initialisation prior, or None if not recognised.

    ``input_shape``: the shape of one input, without the batch dimension. See the module
    docstring for exactly which architectures are recognised and how sigma_w / sigma_b default.
    """
    module = as_plain_sequential(module)  # TorchScript Sequentials of torch.nn layers
    if not isinstance(module, nn.Sequential):
        return None
    layers = _expand(module)
    shape = tuple(int(v) for v in input_shape)
    if any(isinstance(layer, nn.Conv2d) for layer in layers):
        return _convolutional(layers, shape, sigma_w, sigma_b)
    return _fully_connected(layers, shape, sigma_w, sigma_b)
