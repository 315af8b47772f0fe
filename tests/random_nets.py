"""Helpers shared by tests that compare analytic kernels with real random networks."""

import math

from torch import nn


def gaussian_init(sigma_w, sigma_b):
    """init_fn drawing Linear/Conv2d weights N(0, sigma_w^2 / fan_in) and biases N(0, sigma_b^2)."""

    def init(module):
        for layer in module.modules():
            if isinstance(layer, (nn.Linear, nn.Conv2d)):
                nn.init.normal_(layer.weight, std=sigma_w / math.sqrt(layer.weight[0].numel()))
                nn.init.normal_(layer.bias, std=sigma_b)

    return init
