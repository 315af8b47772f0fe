"""Benchmark: the marginal bound for the networks the field studies, on real CIFAR-10 and Fashion-MNIST.

Three cases (binary: classes 0-4 against 5-9), each trained to zero error (SGD; Adam for the residual net) on
exactly the m points ``certify`` uses (``pacbayes.certified_subset``), then certified (``pacbayes.certify``,
marginal family):

- ``cifar-cnn``: (conv-BN-ReLU-maxpool) x 2 + linear on CIFAR-10, m = 1,000 (the Monte Carlo kernel, its
  linear read-out integrated out);
- ``cifar-residual``: a residual CNN with global average pooling on CIFAR-10, m = 1,000 (whichever kernel
  ``--residual-kernel`` asks for; auto picks as certify does);
- ``fashion-cnn``: the conv-BN-maxpool CNN on Fashion-MNIST, m = 2,000.

Per case it prints the seconds of each phase (training, measure, kernel, EP, certified, the Q* baseline),
the kernel's kind, sample count, rank and entry standard error relative to the mean diagonal, the
automatic sample count's standard-error target against the standard error achieved on the data, and the
bounds. Architectures: examples/image_models.py. Data: ``--data-root`` holds ``cifar-10/cifar-10-batches-py``
and ``fashion-mnist`` (idx). Timings depend on the machine's load: compare runs made side by side.

    python benchmarks/bench_reach.py --data-root DIR [--quick] [--cases cifar-cnn,fashion-cnn] [--threads 2]

``--kernel-timing`` measures only the Monte Carlo kernel of the ``cifar-cnn`` architecture (freshly built: the
kernel depends on the architecture, not on trained weights), at each ``--kernel-m``: K(train, train),
K(train, test) and the test diagonal on the m certified training points and ``--q-star-test-points`` test
points, as the marginal family and its Q* baseline need them. The current code computes all three in one pass
(``MonteCarloNNGP.train_and_test``); with ``--baseline-tree`` (a git worktree of an older commit) the old code
runs in a subprocess on the same inputs, seed and sample count, as its own caller did (``train_and_test`` where
the old code has it, else ``matrix`` twice and ``diagonal``: three passes, which at 1,000 test points outgrew
24 GiB with a release before ``train_and_test``). It prints both times, their ratio, the largest difference
between the two kernels, the automatic sample counts (each code's own pilot: held-out inputs, or Gaussian
probes before ``pilot_inputs`` existed) and the entry standard error achieved against its target.

    python benchmarks/bench_reach.py --data-root DIR --kernel-timing --kernel-m 250,1000 --threads 2 \
        [--kernel-samples S] [--baseline-tree /tmp/mcbase]
"""

import argparse
import functools
import json
import os
import pathlib
import subprocess
import sys
import time

import torch
from _examples import load_example
from torch import nn

from pacbayes.certification import CertifyOptions, certify
from pacbayes.data import load_dataset, take
from pacbayes.data.subsets import certified_subset
from pacbayes.defaults import KERNEL_TARGET_ERROR
from pacbayes.families.settings import MarginalSettings
from pacbayes.models import classification_error

ROOT = pathlib.Path(__file__).resolve().parents[1]
CIFAR = {"channels": 3, "size": 32}
FASHION = {"channels": 1, "size": 28}
CASES = {  # data folder, architecture, its keyword arguments, m, m with --quick, optimiser, learning rate
    "cifar-cnn": ("cifar-10", "ConvBnMaxPool", {**CIFAR, "width": 16}, 1000, 64, "sgd", 0.01),
    "cifar-residual": (
        "cifar-10",
        "ResidualAvgPool",
        {**CIFAR, "width": 32, "blocks": 1, "pool": 4},
        1000,
        64,
        "adam",  # SGD (lr 0.01-0.1) did not fit 64 points in 150 epochs, nor Adam with pool 2 in 300
        0.003,
    ),
    "fashion-cnn": ("fashion-mnist", "ConvBnMaxPool", {**FASHION, "width": 16}, 2000, 64, "sgd", 0.01),
}
TEST_POINTS = 1000  # a seeded subset of the test split for the measured test error and Q*'s baseline
QUICK_TEST_POINTS = 64  # Q*'s baseline with --quick


def image_models():
    """examples/image_models.py as a module."""
    return load_example("image_models")


def train_to_zero_error(model: nn.Module, data, *, method: str, seed: int, lr: float, max_epochs: int) -> int:
    """SGD with momentum 0.9 (``method`` "sgd") or Adam ("adam") on the logistic loss, seeded mini-batches of
    50, until every point of ``data`` is classified correctly (in eval mode); returns the epochs taken."""
    generator = torch.Generator().manual_seed(seed)
    optimiser: torch.optim.Optimizer
    if method == "sgd":
        optimiser = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    else:
        optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    targets = data.labels.to(torch.float32)
    for epoch in range(1, max_epochs + 1):
        model.train()
        for batch in torch.randperm(len(data), generator=generator).split(50):
            optimiser.step(functools.partial(batch_loss, model, optimiser, data.x[batch], targets[batch]))
        if classification_error(model.eval(), data) == 0.0:
            return epoch
    raise SystemExit(f"{type(optimiser).__name__} did not fit the {len(data)} training points in {max_epochs} epochs")


def batch_loss(model: nn.Module, optimiser, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The logistic loss of one batch, its gradient left in the parameters (an optimiser.step closure)."""
    optimiser.zero_grad()
    loss = nn.functional.binary_cross_entropy_with_logits(model(x).squeeze(-1), targets)
    loss.backward()
    return loss


def phase_seconds(report, training: float) -> dict:
    """Seconds per phase: training, measuring the errors, the kernel, EP, the certified sandwich and the
    Q* baseline (the rest of the marginal family's time: its cross kernel and predictive)."""
    marginal = report.diagnostics["marginal"]
    kernel, ep, certified = marginal["kernel_seconds"], marginal["ep"]["seconds"], marginal["certified"]["seconds"]
    return {
        "training": training,
        "measure": report.seconds["measure"],
        "kernel": kernel,
        "ep": ep,
        "certified": certified,
        "baseline": report.seconds["marginal"] - kernel - ep - certified,
        "certify total": report.seconds["total"],
    }


def kernel_figures(report) -> dict:
    """The kernel's kind and, for a Monte Carlo kernel, its samples, rank and standard errors (relative to
    the mean diagonal) with the automatic rule's target."""
    prior = report.diagnostics["marginal"]["kernel"]
    estimate = prior.get("estimate") or {}
    rule = estimate.get("sample_rule") or {}
    return {
        "kind": prior["kind"],
        "summary": prior["summary"],
        "samples": estimate.get("samples"),
        "estimator": estimate.get("estimator"),
        "rank": estimate.get("rank"),
        "se_max_relative": estimate.get("standard_error_max_relative"),
        "se_mean_relative": estimate.get("standard_error_mean_relative"),
        "se_target": rule.get("target_error"),
        "sample_rule": rule,
    }


def run_case(name: str, args, models) -> dict:
    folder, architecture, kwargs, m, quick_m, optimiser, lr = CASES[name]
    m = quick_m if args.quick else m
    root = args.data_root / folder
    train = load_dataset(str(root), split="train")
    test = take(load_dataset(str(root), split="test"), TEST_POINTS, seed=args.seed)
    settings = MarginalSettings(
        kernel=args.residual_kernel if architecture == "ResidualAvgPool" else "auto",
        kernel_samples=args.kernel_samples,
        kernel_error=args.kernel_error,
        q_star_test_points=args.q_star_test_points or (QUICK_TEST_POINTS if args.quick else TEST_POINTS),
    )
    options = CertifyOptions(m=m, seed=args.seed, quiet=not args.verbose, marginal=settings)
    subset = certified_subset(train, m=m, seed=args.seed)
    torch.manual_seed(args.seed)
    model = getattr(models, architecture)(**kwargs)
    started = time.perf_counter()
    epochs = train_to_zero_error(
        model, subset, method=optimiser, seed=args.seed, lr=args.lr or lr, max_epochs=args.max_epochs
    )
    training = time.perf_counter() - started
    report = certify(model, train, test, options)
    bounds = {b.name: b.value for b in report.bounds}
    return {
        "case": name,
        "m": report.m,
        "epochs": epochs,
        "train_error": report.train_error,
        "test_error": report.test_error,
        "seconds": phase_seconds(report, training),
        "kernel": kernel_figures(report),
        "bounds": bounds,
        "holdout_bound": report.baselines["holdout_bound"],
    }


def print_case(row: dict) -> None:
    kernel = row["kernel"]
    print(f"\n== {row['case']}: m = {row['m']}, {row['epochs']} epochs, train error {row['train_error']}")
    print("  seconds: " + ", ".join(f"{phase} {seconds:.1f}" for phase, seconds in row["seconds"].items()))
    print(f"  kernel: {kernel['summary']}")
    if kernel["kind"] == "monte-carlo":
        target = kernel["se_target"]
        achieved = kernel["se_max_relative"]
        verdict = "" if target is None else (" (target met)" if achieved <= target else " (target MISSED)")
        print(
            f"  Monte Carlo: {kernel['samples']} samples ({kernel['estimator']} estimator), rank {kernel['rank']}, "
            f"entry SE max {achieved:.4f} / mean {kernel['se_mean_relative']:.4f} of the mean diagonal; "
            f"auto target {target}{verdict}; rule {json.dumps(kernel['sample_rule'])}"
        )
    bounds = ", ".join(f"{name} {value:.4f}" for name, value in row["bounds"].items())
    print(f"  bounds: {bounds}; test error {row['test_error']:.4f}, hold-out bound {row['holdout_bound']:.4f}")


def kernel_inputs(data_root: pathlib.Path, m: int, test_points: int, seed: int) -> tuple:
    """(m certified training inputs, ``test_points`` seeded test inputs) of CIFAR-10, float64."""
    train = load_dataset(str(data_root / "cifar-10"), split="train")
    test = take(load_dataset(str(data_root / "cifar-10"), split="test"), test_points, seed=seed)
    return certified_subset(train, m=m, seed=seed).x.double(), test.x.double()


OLD_KERNEL = """
import inspect, json, sys, time, importlib.util, torch
from pacbayes.kernels import MonteCarloNNGP
sys.path.insert(0, {bench!r})
import bench_reach
root, m, tests, seed, samples, threads = {args!r}
torch.set_num_threads(threads)
train, test = bench_reach.kernel_inputs(__import__("pathlib").Path(root), m, tests, seed)
model = bench_reach.cifar_cnn()
held_out = "pilot_inputs" in inspect.signature(MonteCarloNNGP).parameters
auto = MonteCarloNNGP(model, seed=seed, **({{"pilot_inputs": test}} if held_out else {{}}))
auto.estimate(m, input_shape=tuple(train.shape[1:]))
kernel = MonteCarloNNGP(model, samples=samples, seed=seed)
started = time.perf_counter()
if hasattr(kernel, "train_and_test"):  # one pass, as certify calls it since the method exists
    K, cross, diagonal = kernel.train_and_test(train, test)
else:  # the older callers' three passes
    K, cross, diagonal = kernel.matrix(train), kernel.matrix(train, test), kernel.diagonal(test)
seconds = time.perf_counter() - started
torch.save((K, cross, diagonal), {saved!r})
source = sys.modules[MonteCarloNNGP.__module__].__file__
pilot = "held-out inputs" if held_out else "Gaussian probes"
print(json.dumps({{"seconds": seconds, "auto_samples": auto.samples, "pilot": pilot, "source": source}}))
"""


def cifar_cnn() -> nn.Module:
    """The ``cifar-cnn`` case's architecture, freshly built (seeded)."""
    _, architecture, kwargs, *_ = CASES["cifar-cnn"]
    torch.manual_seed(0)
    return getattr(image_models(), architecture)(**kwargs)


def old_kernel(args, m: int, samples: int, saved: pathlib.Path) -> dict:
    """The old code's seconds for K, the cross kernel and the test diagonal (``--baseline-tree``, a subprocess)."""
    code = OLD_KERNEL.format(
        bench=str(ROOT / "benchmarks"),
        args=(str(args.data_root), m, args.q_star_test_points or TEST_POINTS, args.seed, samples, args.threads or 2),
        saved=str(saved),
    )
    environment = {**os.environ, "PYTHONPATH": str(args.baseline_tree)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, cwd=args.baseline_tree
    )
    if done.returncode != 0:
        killed = f" (killed by signal {-done.returncode}; 9 is usually out of memory)" if done.returncode < 0 else ""
        raise SystemExit(f"the old kernel failed with status {done.returncode}{killed}:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if not result["source"].startswith(str(args.baseline_tree)):
        raise SystemExit(f"the old kernel ran {result['source']}, not the code under {args.baseline_tree}")
    return result


def kernel_timing(args) -> list:
    """Per --kernel-m: the new kernel's seconds (one pass), the old code's (if --baseline-tree), their ratio,
    the sample counts and the entry standard error against its target."""
    from pacbayes.kernels import MonteCarloNNGP

    rows = []
    for m in (int(value) for value in args.kernel_m.split(",")):
        train, test = kernel_inputs(args.data_root, m, args.q_star_test_points or TEST_POINTS, args.seed)
        # the automatic count as certify chooses it: a pilot on held-out inputs
        auto = MonteCarloNNGP(cifar_cnn(), seed=args.seed, pilot_inputs=test, target_error=args.kernel_error)
        auto.estimate(m, inputs=train)
        samples = args.kernel_samples or auto.samples
        kernel = MonteCarloNNGP(cifar_cnn(), samples=samples, seed=args.seed)
        started = time.perf_counter()
        K, cross, diagonal = kernel.train_and_test(train, test)
        seconds = time.perf_counter() - started
        d = kernel.diagnostics
        row = {
            "m": m,
            "test_points": int(test.shape[0]),
            "samples": samples,
            "auto_samples": auto.samples,
            "auto_rule": auto.sample_rule,
            "evaluation": kernel.evaluation,
            "seconds": seconds,
            "seconds_at_auto_samples": seconds * auto.samples / samples,  # the draws' cost is linear in S
            "se_max_relative": d["standard_error_max_relative"],
            "se_mean_relative": d["standard_error_mean_relative"],
            "se_at_auto_samples": d["standard_error_max_relative"] * (samples / auto.samples) ** 0.5,
            "se_target": auto.target_error,
        }
        if args.baseline_tree:
            saved = pathlib.Path(f"/tmp/bench_reach_old_{os.getpid()}.pt")
            old = old_kernel(args, m, samples, saved)
            old_K, old_cross, old_diagonal = torch.load(saved)
            saved.unlink()
            scale = float(old_K.diagonal().mean())
            row.update(
                old_seconds=old["seconds"],
                old_auto_samples=old["auto_samples"],
                old_pilot=old["pilot"],
                ratio=old["seconds"] / seconds,
                # the same draws through both codes, relative to the mean diagonal
                kernel_difference=max(
                    float((K - old_K).abs().max()),
                    float((cross - old_cross).abs().max()),
                    float((diagonal - old_diagonal).abs().max()),
                )
                / scale,
            )
        rows.append(row)
        print_timing(row)
    return rows


def print_timing(row: dict) -> None:
    print(
        f"\n== kernel, cifar-cnn: m = {row['m']}, {row['test_points']} test points, {row['samples']} samples "
        f"({row['evaluation']}): {row['seconds']:.1f} s (K, cross kernel and test diagonal, one pass); about "
        f"{row['seconds_at_auto_samples']:.0f} s at the automatic count"
    )
    if "old_seconds" in row:
        print(
            f"  old code: {row['old_seconds']:.1f} s: {row['ratio']:.2f} x; largest difference from the old "
            f"code's kernel {row['kernel_difference']:.1e} of the mean diagonal; old automatic count "
            f"{row['old_auto_samples']} (pilot on {row['old_pilot']})"
        )
    target, achieved = row["se_target"], row["se_max_relative"]
    print(
        f"  automatic count {row['auto_samples']} (pilot on the held-out test inputs: relative sd "
        f"{row['auto_rule']['pilot_relative_sd']:.3f}); entry SE max {achieved:.4f} / mean "
        f"{row['se_mean_relative']:.4f} of the mean diagonal at {row['samples']} samples, about "
        f"{row['se_at_auto_samples']:.4f} at the automatic count; target {target}"
        + (
            " (met)"
            if row["se_at_auto_samples"] <= target
            else " (MISSED: the count is capped)"
            if row["auto_samples"] >= row["auto_rule"]["cap"]
            else " (MISSED)"
        )
    )


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=pathlib.Path, required=True, help="holds cifar-10/ and fashion-mnist/")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--quick", action="store_true", help="m = 64 and 64 Q* test points")
    parser.add_argument("--kernel-samples", type=int, default=None, help="Monte Carlo samples (default: automatic)")
    parser.add_argument(
        "--kernel-error",
        type=float,
        default=KERNEL_TARGET_ERROR,
        help="certify --kernel-error: the automatic count's target",
    )
    parser.add_argument("--residual-kernel", default="auto", choices=("auto", "analytic", "monte-carlo"))
    parser.add_argument(
        "--q-star-test-points", type=int, default=None, help="test points of Q*'s baseline (1000, or 64 with --quick)"
    )
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: the case's)")
    parser.add_argument("--max-epochs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--verbose", action="store_true", help="show certify's announcements and progress")
    parser.add_argument("--out", default=None, help="also write the rows as JSON here")
    parser.add_argument("--kernel-timing", action="store_true", help="time the cifar-cnn Monte Carlo kernel only")
    parser.add_argument("--kernel-m", default="250,1000", help="training points of --kernel-timing (comma-separated)")
    parser.add_argument("--baseline-tree", type=pathlib.Path, default=None, help="old code for --kernel-timing")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.kernel_timing:
        rows = kernel_timing(args)
        if args.out:
            pathlib.Path(args.out).write_text(json.dumps(rows, indent=2, default=str))
        return rows
    names = [name.strip() for name in args.cases.split(",") if name.strip()]
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    models = image_models()
    rows = []
    for name in names:
        rows.append(run_case(name, args, models))
        print_case(rows[-1])
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
