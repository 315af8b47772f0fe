"""The torch.nn layer types pacbayes understands, listed once.

Every place that has to know which layers it can handle reads :data:`LAYERS`:

- :mod:`pacbayes.models.programs` rebuilds TorchScript Sequentials and ``torch.export`` programs
  of these layers as plain modules (it reads back each layer's constructor ``arguments``, and maps
  the ATen operation of each elementwise activation to its layer);
- :mod:`pacbayes.kernels.recognise` matches the layer chains that have an analytic NNGP kernel
  (it asks which activation a layer applies);
- :mod:`pacbayes.kernels.activations` implements the activations named by
  :data:`ANALYTIC_ACTIVATIONS`.

Roles:

- ``"container"``: Sequential (its children are the layers).
- ``"weighted"``: Linear, Conv2d, the layers with parameters.
- ``"activation"``: the elementwise nonlinearities ReLU, Tanh, Sigmoid (:data:`ELEMENTWISE`).
- ``"pooling"``: AdaptiveAvgPool2d, AvgPool2d.
- ``"structural"``: Flatten, Dropout, Identity (:data:`STRUCTURAL`): no parameters; they change
  only the shape, or nothing at all in eval mode. Identity also counts as the "linear" activation.
"""

from dataclasses import dataclass
from typing import Optional

from torch import nn

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
    activation: Optional[str] = None

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
        LayerType(nn.ReLU, "activation", activation="relu"),
        LayerType(nn.Tanh, "activation", activation="tanh"),
        LayerType(nn.Sigmoid, "activation", activation="sigmoid"),
        LayerType(nn.AdaptiveAvgPool2d, "pooling", ("output_size",)),
        LayerType(
            nn.AvgPool2d,
            "pooling",
            ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
        ),
        LayerType(nn.Flatten, "structural", ("start_dim", "end_dim")),
        LayerType(nn.Dropout, "structural", ("p",)),
        LayerType(nn.Identity, "structural", activation="linear"),
    )
}
"""torch.nn class name -> :class:`LayerType`, for every layer type pacbayes understands."""

ELEMENTWISE = tuple(name for name, layer in LAYERS.items() if layer.role == "activation")
"""The elementwise activation layers (ReLU, Tanh, Sigmoid)."""

STRUCTURAL = tuple(name for name, layer in LAYERS.items() if layer.role == "structural")
"""The parameter-free layers that change only the shape, or nothing (Flatten, Dropout, Identity)."""

ANALYTIC_ACTIVATIONS = ("relu", "erf", "linear")
"""Activations whose NNGP layer map E[phi(u) phi(v)] has a closed form (pacbayes.kernels.activations).

"relu" is the ReLU layer and "linear" the Identity layer (or no layer); "erf" has no torch.nn layer,
so it is available to the analytic kernels only, never recognised in a model.
"""


def layer_type(module) -> Optional[LayerType]:
    """The :data:`LAYERS` entry that ``module`` is an instance of, or None (any other module,
    TorchScript modules included)."""
    for layer in LAYERS.values():
        if isinstance(module, layer.cls):
            return layer
    return None


def activation_name(module) -> Optional[str]:
    """The activation ``module`` applies ("relu", "tanh", "sigmoid", "linear" for Identity), else None."""
    layer = layer_type(module)
    return None if layer is None else layer.activation
