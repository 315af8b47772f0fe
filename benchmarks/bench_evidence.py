"""Benchmark ln P(S) on MNIST ReLU-NNGP kernels: EP time in Choleskys of the same m; certified time and gap.

    python benchmarks/bench_evidence.py [--m 1000 3000 10000] [--certified-m 3000] [--device cpu]
    python benchmarks/bench_evidence.py --m 10000 --certified-m 10000 --baseline   # now and previous, same run
    python benchmarks/bench_evidence.py --m 2000 5000 --certified-m --threads 2 --baseline-tree /tmp/epbase
        # EP as this tree runs it against EP from a git worktree of an older commit, same kernel, same run
    python benchmarks/bench_evidence.py --m 10000 --certified-m 10000 --proposals ep-cavity --sample-tolerance 0.1 \
        --no-upper --baseline   # the lower bound alone, and the sandwich with psi*, same run
    python benchmarks/bench_evidence.py --m --certified-m 2000 5000 --proposals ep-cavity --sample-tolerance 0.1 \
        --baseline
    python benchmarks/bench_evidence.py --m --certified-m 1000 3000 10000   # both proposals, same run
    python benchmarks/bench_evidence.py --synthetic 20000 --certified-m 20000 --samples 1000   # item 2: memory
    python benchmarks/bench_evidence.py --synthetic 20000 --m --certified-m 20000 --no-gap   # certified only
    python benchmarks/bench_evidence.py --synthetic 30000 --device cuda   # random inputs, GPU

For each m: one float64 Cholesky of the m x m prior (the baseline, timed in the same run), then EP
(parallel, adaptive damping, tol 1e-6, nested start and mixed precision by default): total seconds
(input validation included), sweeps (of which float32), total and per sweep in Choleskys.
``--baseline`` also runs the previous EP (prior-marginal start, float64 sweeps) in the same run.
``--baseline-tree DIR`` (``git worktree add DIR COMMIT``) runs EP as the code under DIR runs it, in a
subprocess on the same kernel block (saved to a temporary file) and thread count, before this tree's EP,
and prints both, the ratio of their seconds and the relative difference of their ln P(S).
Then the certified sandwich at --certified-m for each of --proposals (default: ep-cavity, given
the EP result of the same run, and the previous tilted proposal as the baseline), with its gap to
EP (EP - lower) against ln(1/delta') + 2 and its seconds (EP's own time not included, then EP + it), split into
its phases (the EP-cavity proposal's construction, the counted draws and the pilot, the variable
ordering, the tilting's Newton solve and psi's maximisation, the psi check draws).
``--sample-tolerance`` fixes the count of draws from a discarded pilot (pacbayes.evidence.certified);
``--no-upper`` computes the lower bound alone (no psi*: with the ep-cavity proposal no tilting at all).
With ``--baseline`` each certified m also times the sampler alone (``--samples`` EP-cavity draws
given the EP sites) in the compiled CPU kernel and in the previous per-coordinate torch loop, and
reruns the sandwich as the previous code ran it (that loop, a fixed count of ``--samples``, the
tilting's L L^T as a full product), all in the same run. Each line ends with the process's peak
resident memory so far (monotone: read it in order). Targets (2-core CPU): EP at m = 10,000 in
<= 15 Choleskys; EP + certified at m = 10,000 <= 90 s, lower bound within ln(1/delta') + 2 nats of
EP; at m = 20,000 <= 15 min and 16 GiB.
"""

import argparse
import contextlib
import json
import math
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from unittest import mock

import numpy as np
import torch
from _measure import peak_gib, sync

import pacbayes.data
from pacbayes.data import read_idx
from pacbayes.device import resolve_device
from pacbayes.evidence import certified, certified_log_evidence, ep_log_evidence, sequential, tilted
from pacbayes.evidence.certified import PROPOSALS
from pacbayes.evidence.ep_cavity import CavityProposal
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
    parser.add_argument(
        "--sample-tolerance", type=float, default=None, help="nats: a pilot fixes the draws (<= --samples)"
    )
    parser.add_argument(
        "--baseline", action="store_true", help="also run the previous EP (prior start, float64), sampler and sandwich"
    )
    parser.add_argument("--no-gap", action="store_true", help="certified only: skip the EP run for the gap")
    parser.add_argument(
        "--no-upper",
        action="store_true",
        help="the certified lower bound without psi* (upper=False; with --baseline the sandwich with psi* runs too)",
    )
    parser.add_argument(
        "--max-sweeps", type=int, default=200, help="cap EP sweeps (a capped run is reported as not converged)"
    )
    parser.add_argument(
        "--baseline-tree", type=pathlib.Path, default=None, help="also run EP from this git worktree (a subprocess)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--synthetic", type=int, default=0, help="use this many random inputs instead of MNIST")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--mnist", type=pathlib.Path, default=MNIST)
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
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
        # as certify runs it: where the certified sandwich follows, its factorisation proves K positive definite
        runs = [("EP", {"check_definite": m not in args.certified_m})] + (
            [("EP previous (prior start, float64)", {"start": "prior", "precision": "double"})] if args.baseline else []
        )
        old = _tree_ep(args, block, y[:m], chol) if args.baseline_tree else None
        for label, options in runs:
            result = ep_log_evidence(
                block, y[:m], device=device, quiet=True, max_sweeps=args.max_sweeps, allow_unconverged=True, **options
            )
            print(_ep_line(f"{label} m={m}", result, chol, device), flush=True)
            ep_values.setdefault(m, result)
        if old is not None:
            new = ep_values[m]
            print(
                f"EP m={m}: {args.baseline_tree} {old['seconds']:.2f} s / this tree {new.seconds:.2f} s = "
                f"{old['seconds'] / new.seconds:.2f}x faster; ln P(S) relative difference "
                f"{abs(new.log_evidence - old['log_evidence']) / abs(old['log_evidence']):.1e}",
                flush=True,
            )
    for m in args.certified_m:
        block = K[:m, :m].contiguous()
        if m not in ep_values and not args.no_gap:
            ep_values[m] = ep_log_evidence(block, y[:m], device=device, quiet=True)
            print(f"EP m={m}: {ep_values[m].log_evidence:.4f} in {ep_values[m].seconds:.1f} s", flush=True)
        ep = ep_values.get(m)
        if args.baseline and ep is not None:
            print(_sampler_line(block, y[:m], ep, args.samples, device), flush=True)
        runs = [("", {"sample_tolerance": args.sample_tolerance, "upper": not args.no_upper})]
        if args.sample_tolerance is not None:  # the fixed count of --samples beside it, same EP sites
            runs.append((f"fixed {args.samples} draws", {"upper": not args.no_upper}))
        if args.baseline:
            runs += [("with psi*", {"sample_tolerance": args.sample_tolerance})] if args.no_upper else []
            runs.append(("previous", {"previous": True}))
        for proposal in args.proposals:
            for label, options in runs:
                print(_certified_line(block, y[:m], ep, proposal, label, args, device, **options), flush=True)


TREE_EP = """
import json, sys, time, numpy, torch
torch.set_num_threads({threads})
from pacbayes.evidence import ep_log_evidence
K, y = torch.as_tensor(numpy.load({kernel!r})), torch.as_tensor(numpy.load({labels!r}))
result = ep_log_evidence(K, y, quiet=True, max_sweeps={max_sweeps}, allow_unconverged=True)
fields = ("log_evidence", "seconds", "sweeps", "single_sweeps", "start", "final_change", "converged")
values = {{name: getattr(result, name, 0) for name in fields}}
print(json.dumps({{"source": sys.modules["pacbayes"].__file__, **values}}))
"""


def _tree_ep(args, block, labels, chol) -> dict:
    """EP as the code under ``--baseline-tree`` runs it (a subprocess, same kernel block and threads), printed."""
    with tempfile.TemporaryDirectory() as folder:
        kernel, saved_labels = os.path.join(folder, "K.npy"), os.path.join(folder, "y.npy")
        np.save(kernel, block.cpu().numpy())
        np.save(saved_labels, labels.cpu().numpy())
        code = TREE_EP.format(
            threads=torch.get_num_threads(), kernel=kernel, labels=saved_labels, max_sweeps=args.max_sweeps
        )
        environment = {**os.environ, "PYTHONPATH": str(args.baseline_tree)}
        done = subprocess.run(
            [sys.executable, "-c", code], env=environment, capture_output=True, text=True, cwd=args.baseline_tree
        )
    if done.returncode != 0:
        raise SystemExit(f"EP under {args.baseline_tree} failed:\n{done.stderr[-3000:]}")
    old = json.loads(done.stdout.strip().splitlines()[-1])
    if not old["source"].startswith(str(args.baseline_tree.resolve())):
        raise SystemExit(f"the baseline ran {old['source']}, not the code under {args.baseline_tree}")
    print(
        f"EP {args.baseline_tree} m={block.shape[0]}: ln P(S) = {old['log_evidence']:.4f}  {old['seconds']:8.2f} s = "
        f"{old['seconds'] / chol:5.1f} Choleskys  {old['sweeps']} sweeps ({old['single_sweeps']} float32, start "
        f"{old['start']})  {old['seconds'] / old['sweeps'] / chol:5.2f} Choleskys/sweep  (final relative change "
        f"{old['final_change']:.1e}{'' if old['converged'] else ', NOT CONVERGED: capped'})",
        flush=True,
    )
    return old


def _sampler_line(block, labels, ep, samples, device):
    """Seconds of ``samples`` EP-cavity draws (EP's sites given) in the sampler as it runs now and in the
    previous per-coordinate torch loop, on one proposal, in this run."""
    tau = torch.as_tensor(ep.site_precision, device=device)
    nu = torch.as_tensor(ep.site_natural_mean, device=device) * labels
    cavity = CavityProposal(block * labels[:, None] * labels[None, :], tau, nu)
    cavity.log_weights(2, torch.Generator(device=device))  # compiles the kernel (or loads numba's cache)
    seconds, estimates = [], []
    for context in (contextlib.nullcontext(), _previous_sampler()):
        with context:
            sync(device)
            start = time.perf_counter()
            log_w = cavity.log_weights(samples, torch.Generator(device=device).manual_seed(0))
            sync(device)
        seconds.append(time.perf_counter() - start)
        estimates.append(float(torch.logsumexp(log_w, 0)) - math.log(samples))
    m = block.shape[0]
    return (
        f"sampler m={m:6d} ({samples} EP-cavity draws, EP sites given): {seconds[0]:.2f} s "
        f"({m * m * samples / seconds[0] / 1e9:.1f} GFLOP/s at m^2 flops a draw; its block products alone "
        f"{_products_alone(cavity.factor, samples, device):.2f} s); previous per-coordinate torch loop "
        f"{seconds[1]:.2f} s ({seconds[1] / seconds[0]:.1f}x); ln Z_hat {estimates[0]:.4f} and {estimates[1]:.4f}  "
        f"peak {peak_gib(device):.1f} GiB"
    )


def _products_alone(L, samples, device):
    """Seconds of the sampler's products of earlier blocks alone (random draws): the floor the GEMM rate sets."""
    Z = torch.randn(L.shape[0], samples, dtype=L.dtype, device=device)
    sync(device)
    start = time.perf_counter()
    for first in range(0, L.shape[0], sequential.SAMPLE_BLOCK):
        L[first : first + sequential.SAMPLE_BLOCK, :first] @ Z[:first]
    sync(device)
    return time.perf_counter() - start


def _previous_sampler():
    """The samplers as the previous code ran them on every device: the per-coordinate torch loop."""
    return mock.patch.object(sequential, "uses_compiled_kernel", lambda L: False)


@contextlib.contextmanager
def _previous_code():
    """The sandwich as the previous code ran it: the torch loop, and the tilting's C from a full product L L^T."""
    with _previous_sampler(), mock.patch.object(tilted, "triangular_gram", lambda L: L @ L.T):
        yield


PHASES = {  # the steps of certified_log_evidence, by the names it calls them under
    "CavityProposal": "proposal",
    "_counted_draws": "draws",
    "pivoted_cholesky_order": "ordering",
    "solve_tilting": "tilting",
    "maximise_psi": "psi*",
    "tilted_log_weights": "psi check",
}


@contextlib.contextmanager
def _timed_phases():
    """Seconds spent in each of PHASES by certified_log_evidence (outermost calls only; not synchronised)."""
    seconds, depth = dict.fromkeys(PHASES.values(), 0.0), [0]

    def timed(name, function):
        def call(*args, **kwargs):
            depth[0] += 1
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                depth[0] -= 1
                if not depth[0]:
                    seconds[name] += time.perf_counter() - start

        return call

    with contextlib.ExitStack() as stack:
        for attribute, name in PHASES.items():
            stack.enter_context(mock.patch.object(certified, attribute, timed(name, getattr(certified, attribute))))
        yield seconds


def _certified_line(
    block, labels, ep, proposal, label, args, device, *, sample_tolerance=None, previous=False, upper=True
):
    """One certified sandwich (``upper`` False: the lower bound alone): as the code runs now, or (``previous``) as
    the previous code ran it, at a fixed count."""
    with _timed_phases() as phases, _previous_code() if previous else contextlib.nullcontext():
        cert = certified_log_evidence(
            block,
            labels,
            delta_prime=args.delta_prime,
            seed=0,
            samples=args.samples,
            device=device,
            quiet=True,
            proposal=proposal,
            ep=ep,
            sample_tolerance=sample_tolerance,
            upper=upper,
        )
    estimate, ep_seconds = (math.nan, math.nan) if ep is None else (ep.log_evidence, ep.seconds)
    allowed = math.log(1 / args.delta_prime) + 2
    upper = ("n/a" if upper else "not asked") if cert.upper is None else f"{cert.upper:.4f}"
    grad = "n/a" if cert.grad_norm is None else f"{cert.grad_norm:.1e}"
    split = ", ".join(f"{name} {value:.1f}" for name, value in phases.items() if value)
    pilot = f" after a pilot of {cert.pilot_samples}" if cert.pilot_samples else ""
    return (
        f"certified m={block.shape[0]:6d} {proposal:9s}{' ' + label if label else ''}: lower {cert.lower:.4f}  "
        f"ln Z_hat {cert.log_estimate:.4f}  upper {upper}  EP {estimate:.4f}  gap EP - lower "
        f"{estimate - cert.lower:.2f} nats (target <= ln(1/delta') + 2 = {allowed:.2f})  {cert.seconds:.2f} s "
        f"({split}; EP + this {ep_seconds + cert.seconds:.1f} s)  ({cert.samples} samples{pilot}, effective "
        f"{cert.effective_samples:.1f}, relative std {cert.relative_std:.2f}, |grad| {grad})  "
        f"peak {peak_gib(device):.1f} GiB"
    )


if __name__ == "__main__":
    main()
