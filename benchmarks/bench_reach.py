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
"""

import argparse
import functools
import importlib.util
import json
import pathlib
import time

import torch
from torch import nn

from pacbayes.certification import CertifyOptions, certify
from pacbayes.data import load_dataset, take
from pacbayes.data.subsets import certified_subset
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
    spec = importlib.util.spec_from_file_location("image_models", ROOT / "examples" / "image_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=pathlib.Path, required=True, help="holds cifar-10/ and fashion-mnist/")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--quick", action="store_true", help="m = 64 and 64 Q* test points")
    parser.add_argument("--kernel-samples", type=int, default=None, help="Monte Carlo samples (default: automatic)")
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
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.cases.split(",") if name.strip()]
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    if args.threads:
        torch.set_num_threads(args.threads)
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
