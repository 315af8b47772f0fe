"""The elementwise activations the NNGP compiler understands, each with its forward and its dual.

A :class:`Dual` pairs phi (the forward) with E[phi(u) phi(v)] for jointly Gaussian (u, v): in closed
form for relu, leaky_relu, erf and the identity (:mod:`pacbayes.kernels.activations`), by Gauss-Hermite
quadrature for the rest (:mod:`pacbayes.kernels.quadrature`). :func:`dual_for_op` maps the ATen
operation of a traced model to its Dual.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pacbayes.activations import CLOSED_FORMS, ODD
from pacbayes.kernels.activations import expected_product, expected_square
from pacbayes.kernels.quadrature import DEFAULT_NODES, quadrature_product, quadrature_square


@dataclass(frozen=True)
class Dual:
    """An activation: ``name``, its parameter (leaky_relu's slope, elu's alpha, gelu's 1.0 for the tanh
    approximation; else None) and the quadrature ``nodes`` used when it has no closed form."""

    name: str
    parameter: float | None = None
    nodes: int = DEFAULT_NODES

    @property
    def closed_form(self) -> bool:
        return self.name in CLOSED_FORMS

    @property
    def odd(self) -> bool:
        return self.name in ODD

    def phi(self, x: torch.Tensor) -> torch.Tensor:
        """The activation itself (the finite network's forward)."""
        return _FORWARD[self.name](x, self.parameter)

    def product(self, cov: torch.Tensor, var1: torch.Tensor, var2: torch.Tensor) -> torch.Tensor:
        """E[phi(u) phi(v)] (may consume ``cov``)."""
        if self.closed_form:
            return expected_product(cov, var1, var2, self.name, slope=self._slope)
        return quadrature_product(self.phi, cov, var1, var2, self.nodes)

    def square(self, var: torch.Tensor) -> torch.Tensor:
        """E[phi(u)^2] for u ~ N(0, var) (new tensor)."""
        if self.closed_form:
            return expected_square(var, self.name, slope=self._slope)
        return quadrature_square(self.phi, var, self.nodes)

    @property
    def _slope(self) -> float:
        return 0.01 if self.parameter is None else float(self.parameter)

    def describe(self) -> str:
        if self.name == "linear":
            return "identity"
        argument = "" if self.parameter is None else f"({self.parameter:g})"
        how = "" if self.closed_form else f" [Gauss-Hermite, {self.nodes}x{self.nodes} nodes]"
        return f"{self.name}{argument}{how}"


_FORWARD: dict = {
    "relu": lambda x, a: F.relu(x),
    "leaky_relu": lambda x, a: F.leaky_relu(x, 0.01 if a is None else a),
    "erf": lambda x, a: torch.erf(x),
    "linear": lambda x, a: x,
    "tanh": lambda x, a: torch.tanh(x),
    "sigmoid": lambda x, a: torch.sigmoid(x),
    "silu": lambda x, a: F.silu(x),
    "gelu": lambda x, a: F.gelu(x, approximate="tanh" if a else "none"),
    "elu": lambda x, a: F.elu(x, 1.0 if a is None else a),
    "softplus": lambda x, a: F.softplus(x),
}

_aten = torch.ops.aten
_OPS: dict = {
    _aten.relu.default: lambda args: Dual("relu"),
    _aten.leaky_relu.default: lambda args: Dual("leaky_relu", float(args[0]) if args else 0.01),
    _aten.erf.default: lambda args: Dual("erf"),
    _aten.tanh.default: lambda args: Dual("tanh"),
    _aten.sigmoid.default: lambda args: Dual("sigmoid"),
    _aten.silu.default: lambda args: Dual("silu"),
    _aten.gelu.default: lambda args: Dual("gelu", 1.0 if args and args[0] == "tanh" else None),
    _aten.elu.default: lambda args: (
        None if tuple(args[1:3]) not in ((), (1,), (1, 1)) else Dual("elu", float(args[0]) if args else 1.0)
    ),
    _aten.softplus.default: lambda args: None if args and args[0] != 1 else Dual("softplus"),
}


ACTIVATION_OPS = tuple(_OPS)
"""The elementwise ATen operations with a Dual (for some or all of their arguments)."""


def dual_for_op(target, extra_args: tuple, kwargs: dict) -> Dual | None:
    """The Dual of an elementwise ATen call ``target(x, *extra_args, **kwargs)``, None if not one.

    gelu's ``approximate`` keyword and leaky_relu's slope are read from the call."""
    make: Callable | None = _OPS.get(target)
    if make is None:
        return None
    if target is _aten.gelu.default and "approximate" in kwargs:
        extra_args = (kwargs["approximate"],)
    if target is _aten.leaky_relu.default and "negative_slope" in kwargs:
        extra_args = (kwargs["negative_slope"],)
    return make(tuple(extra_args))
