"""The torch.nn layer types pacbayes understands, listed once.

Every place that has to know which layers it can handle reads :data:`LAYERS`:

- :mod:`pacbayes.models.programs` rebuilds TorchScript Sequentials and ``torch.export`` programs
  of these layers as plain modules (it reads back each layer's constructor ``arguments``, and maps
  the ATen operation of each elementwise activation to its layer);
- the elementwise activation layers are those of the activation table,
  :data:`pacbayes.activations.LAYER_ACTIVATIONS` (the one list of activations).

The ATen operations of weighted and normalisation layers (:data:`ATEN_WEIGHTED`,
:data:`ATEN_NORMALISATIONS`) are listed here too: the NNGP compiler (:mod:`pacbayes.kernels.compiler`)
maps them to rules and :func:`pacbayes.models.initialise.reset_by_layer_type` re-draws their parameters.

Roles:

- ``"container"``: Sequential (its children are the layers).
- ``"weighted"``: Linear, Conv2d, the layers with parameters.
- ``"activation"``: the elementwise nonlinearities ReLU, Tanh, Sigmoid (:data:`ELEMENTWISE`).
- ``"pooling"``: AdaptiveAvgPool2d, AvgPool2d.
- ``"structural"``: Flatten, Dropout, Identity (:data:`STRUCTURAL`): no parameters; they change
  only the shape, or nothing at all in eval mode. Identity also counts as the "linear" activation.
"""

from dataclasses import dataclass

import torch
from torch import nn

from pacbayes.activations import LAYER_ACTIVATIONS, LINEAR

ROLES = ("container", "weighted", "activation", "pooling", "structural")


@dataclass(frozen=True)
class LayerType:
    """One supported torch.nn layer type.

    ``arguments``: the constructor arguments, which a scripted module keeps as attributes;
    ``activation``: the name of the elementwise function the layer applies (``"linear"`` for
    Identity), None for layers that are not activations.
    """

    cls: type
    role: str
    arguments: tuple = ()
    activation: str | None = None

    @property
    def name(self) -> str:
        return self.cls.__name__


LAYERS = {
    layer.name: layer
    for layer in (
        LayerType(nn.Sequential, "container"),
        LayerType(nn.Linear, "weighted", ("in_features", "out_features")),
        LayerType(
            nn.Conv2d,
            "weighted",
            ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "padding_mode"),
        ),
        *(LayerType(getattr(nn, layer), "activation", activation=name) for layer, name in LAYER_ACTIVATIONS.items()),
        LayerType(nn.AdaptiveAvgPool2d, "pooling", ("output_size",)),
        LayerType(
            nn.AvgPool2d,
            "pooling",
            ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
        ),
        LayerType(nn.Flatten, "structural", ("start_dim", "end_dim")),
        LayerType(nn.Dropout, "structural", ("p",)),
        LayerType(nn.Identity, "structural", activation=LINEAR),
    )
}
"""torch.nn class name -> :class:`LayerType`, for every layer type pacbayes understands."""

ELEMENTWISE = tuple(name for name, layer in LAYERS.items() if layer.role == "activation")
"""The elementwise activation layers (ReLU, Tanh, Sigmoid)."""

STRUCTURAL = tuple(name for name, layer in LAYERS.items() if layer.role == "structural")
"""The parameter-free layers that change only the shape, or nothing (Flatten, Dropout, Identity)."""


def layer_type(module) -> LayerType | None:
    """The :data:`LAYERS` entry that ``module`` is an instance of, or None (any other module,
    TorchScript modules included)."""
    for layer in LAYERS.values():
        if isinstance(module, layer.cls):
            return layer
    return None


def activation_name(module) -> str | None:
    """The activation ``module`` applies ("relu", "tanh", "sigmoid", "linear" for Identity), else None."""
    layer = layer_type(module)
    return None if layer is None else layer.activation


def _aten(*names: str) -> tuple:
    """ATen overloads by "op.overload" name, e.g. "conv2d.padding" -> torch.ops.aten.conv2d.padding."""
    return tuple(getattr(getattr(torch.ops.aten, name.split(".")[0]), name.split(".")[1]) for name in names)


ATEN_LINEAR = _aten("linear.default")
"""ATen operations of a dense layer: (input, weight, bias=None)."""

ATEN_CONVOLUTIONS = _aten(
    "conv1d.default",
    "conv1d.padding",
    "conv2d.default",
    "conv2d.padding",
    "convolution.default",
    "_convolution.default",
    "_convolution_mode.default",
)
"""ATen operations of a convolution: (input, weight, bias, stride, padding, dilation, ...), as torch.export
writes them for nn.Conv1d / nn.Conv2d (conv1d / conv2d, ``.padding`` for string padding) and as TorchScript
programs converted by torch._export.converter write them (convolution, _convolution_mode)."""

ATEN_WEIGHTED = ATEN_LINEAR + ATEN_CONVOLUTIONS
"""Operations whose second and third arguments are a weight and a bias drawn with PyTorch's default init
(kaiming_uniform_(a=sqrt(5)) weights, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) biases)."""

ATEN_NORMALISATIONS = _aten(
    "batch_norm.default",
    "_native_batch_norm_legit_no_training.default",
    "layer_norm.default",
    "group_norm.default",
    "instance_norm.default",
)
"""Normalisation operations (input, weight, bias, ...): PyTorch initialises their weight to ones and bias to
zeros (and running statistics to mean 0, variance 1)."""
