"""Benchmark: NNGP kernel cost on MNIST test images against the cost of one Gram matrix.

Prints, for the fc-relu depth-2 kernel of n images (default the whole 10k test split), its
seconds and the ratio to one float64 X @ X.T of the same inputs timed in the same run (the
floor: the Gram matrix is the kernel's only O(n^2 d) step; target ratio <= 5). Then the CNN
kernel (flatten read-out, and global average pooling on a smaller set) on fewer images.

    python benchmarks/bench_kernels.py [--n 10000] [--cnn-n 1000] [--gap-n 100] [--device cpu]
"""

import argparse
import os
import time

import numpy as np
import torch

from pacbayes.data import read_idx
from pacbayes.kernels import ConvolutionalNNGP, FullyConnectedNNGP

MNIST = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist", "t10k-images-idx3-ubyte.gz")


def best_seconds(work, repeats, device):
    """Fastest of ``repeats`` timed runs of ``work()`` (synchronising a GPU before reading)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = work()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        del result
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=MNIST, help="idx file of MNIST images")
    parser.add_argument("--n", type=int, default=10000, help="images for the fc kernel")
    parser.add_argument("--cnn-n", type=int, default=1000, help="images for the CNN (flatten) kernel")
    parser.add_argument("--gap-n", type=int, default=100, help="images for the CNN (gap) kernel")
    parser.add_argument("--repeats", type=int, default=2, help="take the fastest of this many runs")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)

    images = read_idx(args.images).astype(np.float64) / 255.0
    flat = torch.from_numpy(images[: args.n].reshape(args.n, -1)).to(device)
    print(f"device {device}, torch threads {torch.get_num_threads()}, fc inputs {tuple(flat.shape)}")

    floor = best_seconds(lambda: flat @ flat.T, args.repeats, device)
    fc = FullyConnectedNNGP(depth=2, activation="relu", sigma_w=1.0, sigma_b=0.1)
    seconds = best_seconds(lambda: fc.matrix(flat, device=device), args.repeats, device)
    print(f"floor  X @ X.T float64 n={args.n}: {floor:.3f} s")
    print(f"fc-relu depth 2 NNGP    n={args.n}: {seconds:.3f} s  ratio to floor {seconds / floor:.2f} (target <= 5)")

    for pooling, n in (("flatten", args.cnn_n), ("gap", args.gap_n)):
        if n <= 0:
            continue
        x = torch.from_numpy(images[:n, None]).to(device)
        cnn = ConvolutionalNNGP(
            [(32, 5, 2, 2), (32, 5, 2, 2)],
            activation="relu",
            sigma_w=1.0,
            sigma_b=0.1,
            pooling=pooling,
            input_shape=(1, 28, 28),
        )
        seconds = best_seconds(lambda: cnn.matrix(x, device=device), 1, device)
        gram = best_seconds(lambda: x.reshape(n, -1) @ x.reshape(n, -1).T, args.repeats, device)
        print(
            f"cnn-relu 2 conv layers (5x5, stride 2, pad 2), {pooling:7s} n={n}: {seconds:.3f} s "
            f"(X @ X.T of the same inputs {gram:.4f} s, ratio {seconds / gram:.0f})"
        )


if __name__ == "__main__":
    main()
