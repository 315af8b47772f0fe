"""Benchmark: NNGP kernel cost on MNIST test images, against baselines timed in the same run.

1. fc-relu depth-2 kernel of n images (default the whole 10k test split): seconds and the ratio to one
   float64 X @ X.T of the same inputs (the floor: the Gram matrix is the kernel's only O(n^2 d) step;
   target ratio <= 5).
2. The 2-conv CNN NNGP with the flatten read-out at n = 1,000 images (issue 13), for two nets: 5x5 convs
   at stride 1 with 'same' padding, and 5x5 convs at stride 2 with padding 2. The compiled kernel (from a
   user nn.Module through the compiler) is timed against the previous implementation (pacbayes/kernels/
   conv.py at commit BASELINE_COMMIT, read with `git show`; it reuses today's activation functions), and
   the two matrices are compared. neural-tangents is not installed here, so it is not timed.
3. The same CNNs with global average pooling on fewer images (default 100).

    python benchmarks/bench_kernels.py [--n 10000] [--cnn-n 1000] [--gap-n 100] [--device cpu]
"""

import argparse
import os
import subprocess
import time
import types
from functools import partial

import numpy as np
import torch
from torch import nn

import pacbayes.data
from pacbayes.data import read_idx
from pacbayes.kernels import FullyConnectedNNGP, nngp_for_module

MNIST = os.path.join(os.path.dirname(pacbayes.data.__file__), "mnist", "t10k-images-idx3-ubyte.gz")  # shipped
BASELINE_COMMIT = "3d3f2c4c819a2ac9c2221fc66c8d8df8f05050f1"
NETS = {"stride 1 'same'": (1, "same"), "stride 2 pad 2": (2, 2)}


def best_seconds(work, repeats, device):
    """Fastest of ``repeats`` timed runs of ``work()`` (synchronising a GPU before reading), and the result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = work()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times), result


def previous_convolutional_nngp():
    """ConvolutionalNNGP as it was at BASELINE_COMMIT (None if git or the commit is unavailable)."""
    root = os.path.join(os.path.dirname(__file__), "..")
    try:
        source = subprocess.run(
            ["git", "show", f"{BASELINE_COMMIT}:pacbayes/kernels/conv.py"],
            cwd=root,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    module = types.ModuleType("previous_conv")
    exec(compile(source, "previous_conv.py", "exec"), module.__dict__)  # noqa: S102  (our own history)
    return module.ConvolutionalNNGP


class TwoConv(nn.Module):
    """A user's 2-conv CNN (5x5 convs, 32 channels) with a flatten read-out or global average pooling."""

    def __init__(self, stride, padding, pooling, size=28):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5, stride=stride, padding=padding)
        self.conv2 = nn.Conv2d(32, 32, 5, stride=stride, padding=padding)
        self.pooling = pooling
        side = size if stride == 1 else (((size + 4 - 5) // 2 + 1) + 4 - 5) // 2 + 1
        self.head = nn.Linear(32 if pooling == "gap" else 32 * side * side, 1)

    def forward(self, x):
        h = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        h = h.mean(dim=(2, 3)) if self.pooling == "gap" else h.flatten(1)
        return self.head(h)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=MNIST, help="idx file of MNIST images")
    parser.add_argument("--n", type=int, default=10000, help="images for the fc kernel (0 skips it)")
    parser.add_argument("--cnn-n", type=int, default=1000, help="images for the CNN (flatten) kernel")
    parser.add_argument("--gap-n", type=int, default=100, help="images for the CNN (gap) kernel (0 skips it)")
    parser.add_argument("--repeats", type=int, default=1, help="take the fastest of this many runs")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    images = read_idx(args.images).astype(np.float64) / 255.0
    print(f"device {device}, torch threads {torch.get_num_threads()}")

    if args.n > 0:
        flat = torch.from_numpy(images[: args.n].reshape(args.n, -1)).to(device)
        floor, _ = best_seconds(lambda: flat @ flat.T, args.repeats, device)
        fc = FullyConnectedNNGP(depth=2, activation="relu", sigma_w=1.0, sigma_b=0.1)
        seconds, _ = best_seconds(lambda: fc.matrix(flat, device=device), args.repeats, device)
        print(f"floor  X @ X.T float64 n={args.n}: {floor:.3f} s")
        print(f"fc-relu depth 2 NNGP n={args.n}: {seconds:.3f} s  ratio to floor {seconds / floor:.2f} (target <= 5)")

    previous = previous_convolutional_nngp()
    warm = torch.from_numpy(images[:4, None]).to(device)  # first calls of each torch kernel, off the clock
    for pooling in ("flatten", "gap"):
        nngp_for_module(TwoConv(1, "same", pooling), (1, 28, 28)).matrix(warm, device=device)
    for pooling, n in (("flatten", args.cnn_n), ("gap", args.gap_n)):
        if n <= 0:
            continue
        x = torch.from_numpy(images[:n, None]).to(device)
        for name, (stride, padding) in NETS.items():
            torch.manual_seed(0)
            kernel = nngp_for_module(TwoConv(stride, padding, pooling), (1, 28, 28))
            predicted, peak = kernel.estimate(n, device=device)
            seconds, matrix = best_seconds(partial(kernel.matrix, x, device=device), args.repeats, device)
            line = (
                f"cnn 2x conv5x5 {name:15s} {pooling:7s} n={n}: compiled {seconds:7.2f} s "
                f"(estimate {predicted:6.1f} s, {peak / 2**20:.0f} MiB)"
            )
            if previous is not None:
                spec = [(32, 5, stride, 2)] * 2
                sigma_b = kernel.describe()["sigma_b"]
                old = previous(spec, "relu", kernel.describe()["sigma_w"], sigma_b, pooling, (1, 28, 28))
                baseline, expected = best_seconds(partial(old.matrix, x, device=device), args.repeats, device)
                error = float(((matrix - expected).abs() / expected.abs()).max())
                line += f" | previous {baseline:7.2f} s, ratio {seconds / baseline:.2f}, max rel diff {error:.1e}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
