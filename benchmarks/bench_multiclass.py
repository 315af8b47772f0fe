"""Benchmark the 10-class ln P(S) on MNIST ReLU-NNGP kernels: EP seconds per sweep vs one Cholesky; certified time.

    python benchmarks/bench_multiclass.py [--m 1000 5000] [--certified-m 1000] [--test-points 500] [--device cpu]
        [--certified-methods dense structured]

Data: mnist-embedded "train" split (first m images, digit labels 0..9), FC ReLU NNGP depth 2, the
prior K + jitter I shared by the C = 10 logits. For each m: one float64 Cholesky of the m x m kernel
(the baseline, timed in the same run), then multi-class EP (method auto: structured above
(C-1)m = 3000; parallel, adaptive damping, tol 1e-6) once per --precisions entry (``double`` is
the previous float64-only EP): total seconds, sweeps, seconds per sweep and its ratio to the
Cholesky, and the process's peak resident memory so far. With --test-points, Q*'s
EP-predictive Gibbs test error on that many "test"-split images. Then the certified bound at
--certified-m for each of --certified-methods: "dense", the sandwich on the (C-1)m orthant for each
of --proposals; "structured", the point-by-point sampler of pacbayes.evidence.multiclass_sampler
(EP-cavity conditionals given the prior conditional means, one shared factor of K; lower bound only,
no (C-1)m matrix); both given the EP of the same run when --m includes that
size, else running their own inside the timed call. Targets (2-core CPU): EP at m = 1,000 <= 120 s,
at m = 5,000 <= 1,200 s with peak memory <= 8 GB; certified at m = 1,000 <= 60 s, at m = 5,000
within 20 min and 12 GB (structured).
"""

import argparse
import time

import numpy as np
import torch
from _measure import peak_gib, sync

from pacbayes.data.embedded import load_mnist_embedded
from pacbayes.device import resolve_device
from pacbayes.evidence import multiclass_certified_log_evidence, multiclass_ep_log_evidence, multiclass_ep_predict
from pacbayes.evidence.certified import PROPOSALS
from pacbayes.evidence.multiclass_sampler import structured_certified_log_evidence
from pacbayes.kernels.fc import FullyConnectedNNGP

CLASSES = 10


def _flat(dataset, n):
    return dataset.x[:n].reshape(min(n, len(dataset)), -1).to(torch.float64), dataset.labels[:n].numpy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, nargs="*", default=[1000])
    parser.add_argument("--certified-m", type=int, nargs="*", default=[1000])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--test-points", type=int, default=0)
    parser.add_argument("--jitter", type=float, default=0.0)
    parser.add_argument("--method", default="auto", choices=["auto", "dense", "structured"])
    parser.add_argument("--max-sweeps", type=int, default=200)
    parser.add_argument(
        "--precisions",
        nargs="+",
        default=["auto"],
        choices=["auto", "mixed", "double"],
        help="EP precisions to run, each in the same run (double: the previous float64-only EP)",
    )
    parser.add_argument(
        "--proposals",
        nargs="+",
        default=list(PROPOSALS),
        choices=PROPOSALS,
        help="importance samplers of the certified bound, each in the same run (tilted: the previous one)",
    )
    parser.add_argument(
        "--certified-methods",
        nargs="+",
        default=["dense"],
        choices=["dense", "structured"],
        help="certified samplers, each in the same run (structured: point by point, no (C-1)m matrix)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-upper", action="store_true", help="dense: skip psi* (the lower bound is the same)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    n = max(args.m + args.certified_m)
    x, y = _flat(load_mnist_embedded("train"), n)
    kernel = FullyConnectedNNGP(depth=2, activation="relu")
    start = time.perf_counter()
    K = kernel.matrix(x, device=device)
    sync(device)
    print(
        f"kernel: {n} x {n} ReLU NNGP depth 2 on mnist-embedded train, {time.perf_counter() - start:.1f} s, "
        f"device {device}, torch threads {torch.get_num_threads()}, C = {CLASSES}, jitter {args.jitter:g}"
    )
    results = {}
    for m in args.m:
        block = K[:m, :m].contiguous()
        sync(device)
        start = time.perf_counter()
        torch.linalg.cholesky(block)
        sync(device)
        chol = time.perf_counter() - start
        for precision in args.precisions:
            result = multiclass_ep_log_evidence(
                block,
                y[:m],
                CLASSES,
                jitter=args.jitter,
                device=device,
                method=args.method,
                precision=precision,
                max_sweeps=args.max_sweeps,
                allow_unconverged=True,
            )
            per_sweep = result.seconds / result.sweeps
            print(
                f"EP m={m:5d} ({result.method}, precision {precision}): ln P(S) = {result.log_evidence:.4f}  "
                f"{result.seconds:8.1f} s  {result.sweeps} sweeps  {per_sweep:7.2f} s/sweep  cholesky {chol:6.3f} s  "
                f"ratio {per_sweep / chol:6.1f}  peak memory {peak_gib(device):.2f} GB  (final relative change "
                f"{result.final_change:.1e}{'' if result.converged else ', NOT CONVERGED: capped'})",
                flush=True,
            )
        if args.test_points:
            x_test, y_test = _flat(load_mnist_embedded("test"), args.test_points)
            start = time.perf_counter()
            cross = kernel.matrix(x[:m], x_test, device=device)
            probs = multiclass_ep_predict(result, cross, kernel.diagonal(x_test, device=device))
            gibbs = float(np.mean(1.0 - probs[np.arange(len(y_test)), y_test]))
            print(
                f"   Q* EP-predictive Gibbs test error on {len(y_test)} test images: {gibbs:.4f} "
                f"(error of the most probable class {float(np.mean(probs.argmax(1) != y_test)):.4f}), "
                f"{time.perf_counter() - start:.1f} s"
            )
        results[m] = result
    for m in args.certified_m:
        if "structured" in args.certified_methods:
            cert = structured_certified_log_evidence(
                K[:m, :m], y[:m], CLASSES, delta_prime=0.01, seed=0, samples=args.samples, jitter=args.jitter,
                device=device, ep=results.get(m),
            )  # fmt: skip
            _print_certified(m, "structured (point by point)", cert, results.get(m), device)
        if "dense" not in args.certified_methods:
            continue
        for proposal in args.proposals:  # ep-cavity is given the EP of the same run where there is one
            cert = multiclass_certified_log_evidence(
                K[:m, :m],
                y[:m],
                CLASSES,
                delta_prime=0.01,
                seed=0,
                samples=args.samples,
                jitter=args.jitter,
                device=device,
                proposal=proposal,
                ep=results.get(m),
                upper=not args.no_upper,
            )
            what = f"dense {(CLASSES - 1) * m} orthant, {proposal}" + (", no psi*" if args.no_upper else "")
            _print_certified(m, what, cert, results.get(m), device)


def _print_certified(m, what, cert, ep, device):
    upper = "None" if cert.upper is None else f"{cert.upper:.4f}"
    gap = "" if ep is None else f"  gap to EP {ep.log_evidence - cert.lower:.2f} nats"
    print(
        f"certified m={m:5d} ({what}): lower {cert.lower:.4f}  ln Z_hat {cert.log_estimate:.4f}  upper {upper}  "
        f"{cert.seconds:.1f} s  ({cert.samples} samples, effective {cert.effective_samples:.1f}, relative std "
        f"{cert.relative_std:.2f}, peak memory {peak_gib(device):.2f} GB){gap}",
        flush=True,
    )


if __name__ == "__main__":
    main()
