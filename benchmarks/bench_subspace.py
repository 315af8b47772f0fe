"""Speed of the Kronecker projection against a dense Gaussian projection (the baseline).

For each (D, d) it times P z plus the backward pass d loss/dz (one subspace training step's
projection work) with the Kronecker projection and with a dense D x d matrix, in the same run,
and prints both times, the speed-up ratio and the memory each needs (both use the same number
of torch threads, ``--threads``). Also times the pure-Python
arithmetic coder on d symbols.

    python benchmarks/bench_subspace.py            # D up to 200,000
    python benchmarks/bench_subspace.py --quick
"""

import argparse
import time

import numpy as np
import torch

from pacbayes.subspace.coding import decode_message, encode_message
from pacbayes.subspace.projection import KroneckerProjection


def seconds_per_call(step, repeats: int) -> float:
    step()
    started = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - started) / repeats


def projection_step(project, dim: int):
    z = torch.randn(dim, requires_grad=True)

    def step():
        project(z).square().sum().backward()
        z.grad = None

    return step


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads for both projections (1: small matmuls are not "
        "swamped by thread hand-off on a loaded machine)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    sizes = [(20_000, 500)] if args.quick else [(20_000, 500), (100_000, 1000), (200_000, 1000)]
    repeats = 5 if args.quick else 20
    print(f"torch threads: {torch.get_num_threads()}")
    for n_params, dim in sizes:
        kron = KroneckerProjection(n_params, dim, seed=0)
        dense = torch.randn(n_params, dim) / n_params**0.5
        t_kron = seconds_per_call(projection_step(kron, dim), repeats)
        t_dense = seconds_per_call(projection_step(lambda z: dense @ z, dim), repeats)
        kron_mb = 4 * (kron.left.numel() + kron.right.numel()) / 2**20
        print(
            f"D = {n_params:>7}, d = {dim:>4}: kronecker {1e3 * t_kron:8.3f} ms, "
            f"dense {1e3 * t_dense:8.3f} ms "
            f"per P z + backward; speed-up x{t_dense / t_kron:.1f}; memory {kron_mb:.2f} MiB vs "
            f"{4 * dense.numel() / 2**20:.0f} MiB"
        )
    rng = np.random.default_rng(0)
    for dim in (1000,) if args.quick else (1000, 10_000):
        symbols = rng.choice(16, size=dim, p=rng.dirichlet(np.ones(16))).tolist()
        started = time.perf_counter()
        data, bits = encode_message(symbols, list(range(16)), dim)
        encoded = time.perf_counter() - started
        started = time.perf_counter()
        decode_message(data, bits, dim, 16)
        decoded = time.perf_counter() - started
        print(
            f"arithmetic coder, d = {dim}: encode {1e3 * encoded:.1f} ms, decode {1e3 * decoded:.1f} ms ({bits} bits)"
        )


if __name__ == "__main__":
    main()
