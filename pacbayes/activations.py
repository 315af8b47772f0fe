"""The activations pacbayes knows, listed once (torch-free).

:data:`ACTIVATIONS` is the table; every other list of activation names is derived from it:

- :data:`CLOSED_FORMS`: E[phi(u) phi(v)] for jointly Gaussian (u, v) has a closed form
  (:mod:`pacbayes.kernels.activations`); the others are integrated by Gauss-Hermite quadrature
  (:mod:`pacbayes.kernels.quadrature`) when the NNGP compiler meets them in a traced model;
- :data:`ODD`: phi(-u) = -phi(u), so E[phi(u)] = 0 and a layer's output stays zero-mean;
- :data:`ANALYTIC_ACTIVATIONS`: the choices of the FullyConnectedNNGP / ConvolutionalNNGP builders and of
  ``pacbayes kernel --activation`` (closed forms without a parameter);
- :data:`LAYER_ACTIVATIONS`: torch.nn layer class name -> activation, for the elementwise activation
  layers that :mod:`pacbayes.layers` rebuilds from TorchScript and torch.export programs. The identity
  ("linear") is the Identity layer, which :mod:`pacbayes.layers` lists with the structural layers.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Activation:
    """One activation phi: ``name`` (the ATen operation's name, "linear" for the identity), whether its
    dual has a ``closed_form``, whether it is ``odd``, the torch.nn ``layer`` class pacbayes recognises for
    it (None: only as a function call in a traced model), and whether the analytic kernel ``builders``
    offer it."""

    name: str
    closed_form: bool
    odd: bool = False
    layer: str | None = None
    builders: bool = False


LINEAR = "linear"
"""The identity activation's name."""

ACTIVATIONS = {
    a.name: a
    for a in (
        Activation("relu", closed_form=True, layer="ReLU", builders=True),
        Activation("leaky_relu", closed_form=True),
        Activation("erf", closed_form=True, odd=True, builders=True),
        Activation(LINEAR, closed_form=True, odd=True, builders=True),
        Activation("tanh", closed_form=False, odd=True, layer="Tanh"),
        Activation("sigmoid", closed_form=False, layer="Sigmoid"),
        Activation("silu", closed_form=False),
        Activation("gelu", closed_form=False),
        Activation("elu", closed_form=False),
        Activation("softplus", closed_form=False),
    )
}
"""Activation name -> :class:`Activation`, for every activation the NNGP compiler has a rule for."""

CLOSED_FORMS = tuple(name for name, a in ACTIVATIONS.items() if a.closed_form)
"""Activations whose dual E[phi(u) phi(v)] has a closed form (relu, leaky_relu, erf, linear)."""
ODD = tuple(name for name, a in ACTIVATIONS.items() if a.odd)
"""Odd activations: phi(-u) = -phi(u) (erf, linear, tanh)."""
ANALYTIC_ACTIVATIONS = tuple(name for name, a in ACTIVATIONS.items() if a.builders)
"""The analytic kernel builders' activations (relu, erf, linear). "erf" has no torch.nn layer, so it is
available to the analytic kernels only, never recognised in a model."""
LAYER_ACTIVATIONS = {a.layer: name for name, a in ACTIVATIONS.items() if a.layer is not None}
"""torch.nn elementwise activation layer class name -> activation (ReLU, Tanh, Sigmoid)."""

__all__ = ["ACTIVATIONS", "ANALYTIC_ACTIVATIONS", "Activation", "CLOSED_FORMS", "LAYER_ACTIVATIONS", "LINEAR", "ODD"]
