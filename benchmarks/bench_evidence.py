"""Benchmark ln P(S) on MNIST ReLU-NNGP kernels: EP time in Choleskys of the same m; certified time and gap.

    python benchmarks/bench_evidence.py [--m 1000 3000 10000] [--certified-m 3000] [--device cpu]
    python benchmarks/bench_evidence.py --m 10000 --certified-m 10000 --baseline   # issue 18, items 1 and 3
    python benchmarks/bench_evidence.py --m --certified-m 1000 3000 10000   # both proposals, same run
    python benchmarks/bench_evidence.py --synthetic 20000 --certified-m 20000 --samples 1000   # item 2: memory
    python benchmarks/bench_evidence.py --synthetic 20000 --m --certified-m 20000 --no-gap   # certified only
    python benchmarks/bench_evidence.py --synthetic 30000 --device cuda   # random inputs, GPU

For each m: one float64 Cholesky of the m x m prior (the baseline, timed in the same run), then EP
(parallel, adaptive damping, tol 1e-6, nested start and mixed precision by default): total seconds
(input validation included), sweeps (of which float32), total and per sweep in Choleskys.
``--baseline`` also runs the previous EP (prior-marginal start, float64 sweeps) in the same run.
Then the certified sandwich at --certified-m for each of --proposals (default: ep-cavity, given
the EP result of the same run, and the previous tilted proposal as the baseline), with its gap to
EP (EP - lower) against ln(1/delta') + 5 and its seconds (EP's own time not included). Each
line ends with the process's peak resident memory so far (monotone: read it in order). Targets
(issue 18, 2-core CPU): EP at m = 10,000 in <= 15 Choleskys; EP and the certified sandwich at
m = 20,000 in 24 GB; certified at m = 10,000 within ln(1/delta') + 5 nats of EP in <= 5 min.
"""

import argparse
import math
import pathlib
import time

import numpy as np
import torch
from _measure import peak_gib, sync

import pacbayes.data
from pacbayes.data import read_idx
from pacbayes.device import resolve_device
from pacbayes.evidence import certified_log_evidence, ep_log_evidence
from pacbayes.evidence.certified import PROPOSALS
from pacbayes.kernels.fc import FullyConnectedNNGP

MNIST = pathlib.Path(pacbayes.data.__file__).parent / "mnist"  # the 10,000 MNIST test images the package ships


def _ep_line(label, result, chol, device):
    return (
        f"{label}: ln P(S) = {result.log_evidence:.4f}  {result.seconds:8.2f} s = {result.seconds / chol:5.1f} "
        f"Choleskys  {result.sweeps} sweeps ({result.single_sweeps} float32, start {result.start})  "
        f"{result.seconds / result.sweeps / chol:5.2f} Choleskys/sweep  (final relative change "
        f"{result.final_change:.1e}{'' if result.converged else ', NOT CONVERGED: capped'})  "
        f"peak {peak_gib(device):.1f} GiB"
    )


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
    parser.add_argument(
        "--m", type=int, nargs="*", default=None, help="EP sizes (default 1000 3000 10000, or the --synthetic size)"
    )
    parser.add_argument("--certified-m", type=int, nargs="*", default=[3000])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--delta-prime", type=float, default=0.01)
    parser.add_argument("--proposals", nargs="+", default=list(PROPOSALS), choices=PROPOSALS)
    parser.add_argument("--baseline", action="store_true", help="also run the previous EP (prior start, float64)")
    parser.add_argument("--no-gap", action="store_true", help="certified only: skip the EP run for the gap")
    parser.add_argument(
        "--max-sweeps", type=int, default=200, help="cap EP sweeps (a capped run is reported as not converged)"
    )
    parser.add_argument("--synthetic", type=int, default=0, help="use this many random inputs instead of MNIST")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--mnist", type=pathlib.Path, default=MNIST)
    args = parser.parse_args()
    device = resolve_device(args.device)
    sizes = args.m if args.m is not None else ([args.synthetic] if args.synthetic else [1000, 3000, 10000])
    n = args.synthetic or max(sizes + args.certified_m)
    x, y = inputs(n, args.synthetic, args.mnist)
    start = time.perf_counter()
    K = FullyConnectedNNGP(depth=2, activation="relu").matrix(x, device=device)
    sync(device)
    print(
        f"kernel: {n} x {n} ReLU NNGP depth 2 on {'synthetic' if args.synthetic else 'MNIST test'} "
        f"inputs, {time.perf_counter() - start:.1f} s, device {device}, torch threads {torch.get_num_threads()}"
    )
    y = y.to(device)
    print(f"after the kernel: peak {peak_gib(device):.1f} GiB")
    ep_values = {}
    for m in sizes:
        block = K[:m, :m].contiguous()
        sync(device)
        start = time.perf_counter()
        torch.linalg.cholesky(block)
        sync(device)
        chol = time.perf_counter() - start
        print(f"cholesky m={m}: {chol:.3f} s")
        runs = [("EP", {})] + (
            [("EP previous (prior start, float64)", {"start": "prior", "precision": "double"})] if args.baseline else []
        )
        for label, options in runs:
            result = ep_log_evidence(
                block, y[:m], device=device, quiet=True, max_sweeps=args.max_sweeps, allow_unconverged=True, **options
            )
            print(_ep_line(f"{label} m={m}", result, chol, device), flush=True)
            ep_values.setdefault(m, result)
    for m in args.certified_m:
        block = K[:m, :m].contiguous()
        if m not in ep_values and not args.no_gap:
            ep_values[m] = ep_log_evidence(block, y[:m], device=device, quiet=True)
            print(f"EP m={m}: {ep_values[m].log_evidence:.4f} in {ep_values[m].seconds:.1f} s", flush=True)
        ep = ep_values.get(m)
        estimate = math.nan if ep is None else ep.log_evidence
        for proposal in args.proposals:
            cert = certified_log_evidence(
                block,
                y[:m],
                delta_prime=args.delta_prime,
                seed=0,
                samples=args.samples,
                device=device,
                quiet=True,
                proposal=proposal,
                ep=ep,
            )
            allowed = math.log(1 / args.delta_prime) + 5
            upper = "n/a" if cert.upper is None else f"{cert.upper:.4f}"
            print(
                f"certified m={m:6d} {proposal:9s}: lower {cert.lower:.4f}  ln Z_hat {cert.log_estimate:.4f}  "
                f"upper {upper}  EP {estimate:.4f}  gap EP - lower {estimate - cert.lower:.2f} nats "
                f"(target <= ln(1/delta') + 5 = {allowed:.2f})  {cert.seconds:.2f} s  ({cert.samples} samples, "
                f"effective {cert.effective_samples:.1f}, relative std {cert.relative_std:.2f}, "
                f"|grad| {cert.grad_norm:.1e})  peak {peak_gib(device):.1f} GiB",
                flush=True,
            )


if __name__ == "__main__":
    main()
