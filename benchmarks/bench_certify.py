"""Benchmark `certify` end to end at m = 1,000: a recognised MLP and a 2-conv CNN (marginal family).

    python benchmarks/bench_certify.py [--m 1000] [--which mlp cnn]

Each model (a user class with its own forward, saved as a state_dict + class would be; here the
module itself) is trained to zero error on m binarised mnist-embedded images, then certified with
the marginal family against 5,000 test images (Q*'s baseline on its default 1,000-point subset).
Printed: the seconds of certify and of its parts (kernel, EP, certified sandwich) next to the
targets of 60 s (MLP) and 180 s (CNN) on a 2-core CPU, and one float64 Cholesky of an m x m
matrix timed in the same run as the baseline.
"""

import argparse
import time

import torch
from torch import nn

from pacbayes.certification import CertifyOptions, certify
from pacbayes.data import binarise, load_dataset, take
from pacbayes.demo import train_to_zero_error

TARGETS = {"mlp": 60.0, "cnn": 180.0}


class MLP(nn.Module):
    def __init__(self, width: int = 512):
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(784, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU())
        self.out = nn.Linear(width, 1)

    def forward(self, x):
        return self.out(self.hidden(x.flatten(1)))


class CNN(nn.Module):
    def __init__(self, channels: int = 32):
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 5, stride=2, padding=2)
        self.conv2 = nn.Conv2d(channels, channels, 5, stride=2, padding=2)
        self.read_out = nn.Linear(channels * 7 * 7, 1)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.read_out(x.flatten(1))


def cholesky_seconds(m: int) -> float:
    a = torch.randn(m, m, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    spd = a @ a.T + m * torch.eye(m, dtype=torch.float64)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        torch.linalg.cholesky(spd)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=1000)
    parser.add_argument("--which", nargs="+", choices=tuple(TARGETS), default=list(TARGETS))
    args = parser.parse_args()
    train = take(binarise(load_dataset("mnist-embedded", split="train")), args.m, seed=0)
    test = load_dataset("mnist-embedded", split="test")
    print(f"baseline: one float64 Cholesky at m = {args.m:,}: {cholesky_seconds(args.m):.3f} s")
    for which in args.which:
        torch.manual_seed(0)
        model = MLP() if which == "mlp" else CNN()
        train_to_zero_error(model, train, seed=0, quiet=True)
        start = time.perf_counter()
        report = certify(model, train, test, CertifyOptions(bounds=("marginal",), quiet=True))
        seconds = time.perf_counter() - start
        marginal = report.diagnostics["marginal"]
        print(
            f"{which}: certify {seconds:.1f} s (target <= {TARGETS[which]:.0f} s): kernel "
            f"{marginal['kernel_seconds']:.1f} s, EP {marginal['ep']['seconds']:.1f} s, certified "
            f"{marginal['certified']['seconds']:.1f} s; kernel {marginal['kernel']['kind']}; "
            f"marginal-certified {report.bound('marginal-certified').value:.4f}, test error {report.test_error:.4f}"
        )


if __name__ == "__main__":
    main()
