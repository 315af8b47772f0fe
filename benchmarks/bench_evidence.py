"""Benchmark ln P(S) on MNIST ReLU-NNGP kernels: EP seconds per sweep vs one Cholesky; certified time.

    python benchmarks/bench_evidence.py [--m 1000 3000 10000] [--certified-m 3000] [--device cpu]
    python benchmarks/bench_evidence.py --synthetic 30000 --device cuda   # random inputs, GPU

For each m: one float64 Cholesky of the m x m prior (the baseline, timed in the same run), then EP
(parallel, adaptive damping, tol 1e-6): total seconds, sweeps, seconds per sweep (total / sweeps,
input validation included) and its ratio to the Cholesky. Then the certified sandwich at
--certified-m. Targets (issue 4, 2-core CPU): EP at m = 10,000 <= 300 s, seconds per sweep
<= 4 Choleskys, certified at m = 3,000 <= 60 s.
"""

import argparse
import pathlib
import time

import numpy as np
import torch

import pacbayes.data
from pacbayes.data import read_idx
from pacbayes.device import resolve_device
from pacbayes.evidence import certified_log_evidence, ep_log_evidence
from pacbayes.kernels.fc import FullyConnectedNNGP

MNIST = pathlib.Path(pacbayes.data.__file__).parent / "mnist"  # the 10,000 MNIST test images the package ships


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def inputs(n, synthetic, mnist_dir):
    if synthetic:
        generator = torch.Generator().manual_seed(0)
        x = torch.rand(n, 784, dtype=torch.float64, generator=generator)
        y = torch.where(x[:, :392].sum(1) > x[:, 392:].sum(1), 1.0, -1.0)
        return x, y
    images = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")[:n].reshape(n, -1) / 255.0
    digits = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")[:n]
    return torch.as_tensor(images, dtype=torch.float64), torch.as_tensor(np.where(digits >= 5, 1.0, -1.0))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, nargs="*", default=[1000, 3000, 10000])
    parser.add_argument("--certified-m", type=int, nargs="*", default=[3000])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument(
        "--max-sweeps", type=int, default=200, help="cap EP sweeps (a capped run is reported as not converged)"
    )
    parser.add_argument("--synthetic", type=int, default=0, help="use this many random inputs instead of MNIST")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--mnist", type=pathlib.Path, default=MNIST)
    args = parser.parse_args()
    device = resolve_device(args.device)
    sizes = [args.synthetic] if args.synthetic else args.m
    n = max(sizes + args.certified_m)
    x, y = inputs(n, args.synthetic, args.mnist)
    start = time.perf_counter()
    K = FullyConnectedNNGP(depth=2, activation="relu").matrix(x, device=device)
    _sync(device)
    print(
        f"kernel: {n} x {n} ReLU NNGP depth 2 on {'synthetic' if args.synthetic else 'MNIST test'} "
        f"inputs, {time.perf_counter() - start:.1f} s, device {device}, torch threads {torch.get_num_threads()}"
    )
    y = y.to(device)
    for m in sizes:
        block = K[:m, :m].contiguous()
        _sync(device)
        start = time.perf_counter()
        torch.linalg.cholesky(block)
        _sync(device)
        chol = time.perf_counter() - start
        result = ep_log_evidence(
            block, y[:m], device=device, quiet=True, max_sweeps=args.max_sweeps, allow_unconverged=True
        )
        per_sweep = result.seconds / result.sweeps
        print(
            f"EP m={m:6d}: ln P(S) = {result.log_evidence:.4f}  {result.seconds:8.2f} s  "
            f"{result.sweeps} sweeps  {per_sweep:7.3f} s/sweep  cholesky {chol:7.3f} s  "
            f"ratio {per_sweep / chol:5.2f}  (final relative change {result.final_change:.1e}"
            f"{'' if result.converged else ', NOT CONVERGED: capped'})"
        )
    for m in args.certified_m:
        cert = certified_log_evidence(
            K[:m, :m], y[:m], delta_prime=0.01, seed=0, samples=args.samples, device=device, quiet=True
        )
        print(
            f"certified m={m:6d}: lower {cert.lower:.4f}  ln Z_hat {cert.log_estimate:.4f}  "
            f"upper {cert.upper:.4f}  {cert.seconds:.2f} s  ({cert.samples} samples, "
            f"relative std {cert.relative_std:.2f}, |grad| {cert.grad_norm:.1e})"
        )


if __name__ == "__main__":
    main()
