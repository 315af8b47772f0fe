"""pacbayes.activations: the one table of activations, and every list the package derives from it."""

import torch
from torch import nn

from pacbayes import activations
from pacbayes.kernels import activations as closed_forms
from pacbayes.kernels import duals
from pacbayes.layers import ELEMENTWISE, LAYERS, activation_name


def test_derived_lists():
    assert activations.CLOSED_FORMS == ("relu", "leaky_relu", "erf", "linear")
    assert set(activations.ODD) == {"erf", "tanh", "linear"}
    assert activations.ANALYTIC_ACTIVATIONS == ("relu", "erf", "linear") == closed_forms.ACTIVATIONS
    assert activations.LAYER_ACTIVATIONS == {"ReLU": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid"}


def test_the_layer_table_reads_the_activation_table():
    assert ELEMENTWISE == tuple(activations.LAYER_ACTIVATIONS)
    for layer, name in activations.LAYER_ACTIVATIONS.items():
        assert LAYERS[layer].role == "activation" and activation_name(getattr(nn, layer)()) == name
    assert activation_name(nn.Identity()) == activations.LINEAR


def test_the_compiler_has_a_forward_and_a_dual_for_each_activation_and_no_other():
    assert set(duals._FORWARD) == set(activations.ACTIVATIONS)
    u = torch.linspace(-2.0, 2.0, 9, dtype=torch.float64)
    for name, activation in activations.ACTIVATIONS.items():
        phi = duals.Dual(name).phi
        if activation.odd:
            assert torch.allclose(phi(-u), -phi(u)), name
        if activation.closed_form:  # the closed form's diagonal: E[phi(u)^2] at variance 1 against quadrature
            exact = closed_forms.expected_square(torch.ones(1, dtype=torch.float64), name)
            integrated = duals.quadrature_square(phi, torch.ones(1, dtype=torch.float64), 200)
            assert torch.allclose(exact, integrated, rtol=1e-3), name
