"""Three single-logit image classifiers as researchers write them, to certify on CIFAR-10 or Fashion-MNIST.

Each class takes the image shape (``channels``, ``size``) and its widths as keyword arguments, so a trained
``state_dict`` can be certified with ``--architecture examples/image_models.py:Class --kwargs '{...}'``:

- :class:`ConvBnMaxPool`: (conv 3x3 - BatchNorm - ReLU - max-pool 2) x 2, then a linear read-out. Max-pooling
  has no NNGP rule, so ``certify`` estimates its kernel by Monte Carlo, integrating the read-out analytically.
- :class:`ResidualAvgPool`: an average-pooled input, a conv stem, residual blocks x + conv(relu(conv(x))), global
  average pooling and a linear read-out; every operation has a rule, so the kernel is analytic.
- :class:`Mlp`: flatten, two ReLU layers and a read-out (the analytic fully connected kernel).

    pacbayes certify weights.pt --architecture examples/image_models.py:ConvBnMaxPool \\
        --kwargs '{"channels": 3, "size": 32}' --train DIR/cifar-10-batches-py:train \\
        --test DIR/cifar-10-batches-py:test --m 1000

(binary: CIFAR-10 classes 0-4 against 5-9 by default, ``--negative-classes`` to choose; the model must be
trained on exactly the m points, see ``pacbayes.certified_subset``).
"""

import torch
from torch import nn


class ConvBnMaxPool(nn.Module):
    """(conv 3x3 - BatchNorm - ReLU - max-pool 2) x 2 and a linear read-out to one logit."""

    def __init__(self, channels: int = 3, size: int = 32, width: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            *_conv_bn_pool(channels, width),
            *_conv_bn_pool(width, 2 * width),
            nn.Flatten(),
        )
        self.readout = nn.Linear(2 * width * (size // 4) ** 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.features(x))


def _conv_bn_pool(inputs: int, outputs: int) -> list:
    return [nn.Conv2d(inputs, outputs, 3, padding=1), nn.BatchNorm2d(outputs), nn.ReLU(), nn.MaxPool2d(2)]


class ResidualBlock(nn.Module):
    """x + conv(relu(conv(relu(x)))): the skip branch does not depend on the last conv's weights."""

    def __init__(self, width: int):
        super().__init__()
        self.first = nn.Conv2d(width, width, 3, padding=1)
        self.second = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.second(torch.relu(self.first(torch.relu(x))))


class ResidualAvgPool(nn.Module):
    """Average-pool the input by ``pool``, a conv stem, ``blocks`` residual blocks, global average pooling and a
    linear read-out to one logit."""

    def __init__(self, channels: int = 3, size: int = 32, width: int = 16, blocks: int = 1, pool: int = 4):
        super().__init__()
        if size % pool:
            raise ValueError(f"pool {pool} must divide the image size {size}")
        self.pool = nn.AvgPool2d(pool)
        self.stem = nn.Conv2d(channels, width, 3, padding=1)
        self.blocks = nn.Sequential(*(ResidualBlock(width) for _ in range(blocks)))
        self.head = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(self.pool(x))))


class Mlp(nn.Sequential):
    """Flatten, two ReLU layers of ``width`` and a read-out to one logit."""

    def __init__(self, channels: int = 1, size: int = 28, width: int = 256):
        super().__init__(
            nn.Flatten(),
            nn.Linear(channels * size * size, width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.ReLU(),
            nn.Linear(width, 1),
        )
