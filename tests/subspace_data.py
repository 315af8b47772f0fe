"""Small synthetic classification data and a small net shared by the subspace tests."""

import torch
from scripts import load_script
from torch import nn


def data(n=600, seed=0, classes=3):
    """n Gaussian points in 8 dimensions labelled by the argmax of a random linear map."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    w = torch.randn(8, classes, generator=g)
    return x, (x @ w).argmax(1)


def net(outputs=3):
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, outputs))


def small_cnn(outputs: int) -> nn.Module:
    """The CNN of examples/subspace_mnist.py (28 x 28 inputs), taken from the example itself."""
    return load_script("examples/subspace_mnist.py").small_cnn(outputs)
