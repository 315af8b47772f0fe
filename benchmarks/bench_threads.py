"""Benchmark torch's intra-op threads by problem size: the choice behind pacbayes.device.threads_for.

    python benchmarks/bench_threads.py [--sizes 200 400 768 1500 3000] [--repeats 30]

For each size n: an FC ReLU NNGP kernel of n MNIST images followed by its Cholesky, timed
``repeats`` times on 1 thread and on torch's default thread count, in the same run; prints the
median and the worst time of each and the ratio. Below pacbayes.device.SINGLE_THREAD_BELOW the
package uses one thread. The interesting figures come from a loaded machine (other processes
competing for the cores), where multi-threaded small work stalls on thread hand-offs.
"""

import argparse
import statistics
import time

import torch

from pacbayes.data import load_dataset
from pacbayes.device import SINGLE_THREAD_BELOW
from pacbayes.kernels.fc import FullyConnectedNNGP


def one_run(x: torch.Tensor) -> float:
    start = time.perf_counter()
    K = FullyConnectedNNGP(2, "relu", 1.0, 0.1).matrix(x)
    K.diagonal().add_(1e-6)
    torch.linalg.cholesky(K)
    return time.perf_counter() - start


def timed(x: torch.Tensor, threads: int, repeats: int) -> list:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        one_run(x)  # warm-up
        return [one_run(x) for _ in range(repeats)]
    finally:
        torch.set_num_threads(previous)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 400, 768, 1500, 3000])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    images = load_dataset("mnist-embedded", split="train").x.reshape(-1, 784).double()
    default = torch.get_num_threads()
    print(f"torch threads by default: {default}; the package uses 1 below n = {SINGLE_THREAD_BELOW}")
    print(f"{'n':>6} {'1 thread median / worst (ms)':>30} {f'{default} threads median / worst (ms)':>32} {'ratio':>7}")
    for n in args.sizes:
        x = images[:n]
        repeats = max(3, args.repeats * 200 // max(n, 200))
        single, multi = timed(x, 1, repeats), timed(x, default, repeats)
        med1, med2 = statistics.median(single), statistics.median(multi)
        print(
            f"{n:>6} {med1 * 1e3:>14.1f} / {max(single) * 1e3:<14.1f} {med2 * 1e3:>16.1f} / {max(multi) * 1e3:<14.1f}"
            f" {med2 / med1:>7.2f}"
        )


if __name__ == "__main__":
    main()
