"""Training steps of the stochastic family in float32 against bfloat16 (``--training-precision``), on PBB's networks.

PBB's full MNIST schedule (:mod:`bench_pbb_mnist`) is bounded by training: 70 epochs of the prior mean on half of
mnist-train and 100 posterior epochs on all of it, at batches of 250. This times one prior-mean step (ERM with
dropout 0.2, :func:`pacbayes.stochastic.train.fit_prior_mean`) and one posterior step (f_quad, one weight draw per
batch, :func:`pacbayes.stochastic.train.fit_posterior`) of each network at each precision, on ``--steps`` batches of
real images: best of ``--repeats``, the precisions alternated in the same run. It prints the seconds per step, the
ratio against float32 and the forecast training time of the full schedule at each precision.

    python benchmarks/bench_training_precision.py --data-root DATA
    python benchmarks/bench_training_precision.py --data-root DATA --networks cnn --repeats 5
"""

import argparse
import math
import os
import sys
import time
from dataclasses import replace

import torch

from pacbayes.defaults import DEFAULT_PRIOR_DROPOUT, DEFAULT_PRIOR_STD, TRAINING_PRECISIONS
from pacbayes.stochastic.bound import DEFAULT_PRIOR_SCHEDULE
from pacbayes.stochastic.gaussian import Layout
from pacbayes.stochastic.prior import parameters_of
from pacbayes.stochastic.train import PriorVariance, Schedule, fit_posterior, fit_prior_mean

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_pbb_mnist import NETWORKS, load  # noqa: E402

BATCH = 250
"""PBB's batch size, in both phases."""
MNIST_TRAIN = 55_000
"""The points of the full schedule: the prior learns on half of them, the posterior on all."""


def prior_steps(net, layout, start, x, labels, precision: str) -> float:
    """Seconds of the prior-mean ERM over (x, labels) in batches of 250, one epoch."""
    schedule = replace(DEFAULT_PRIOR_SCHEDULE, epochs=1, batch_size=BATCH, precision=precision)
    began = time.perf_counter()
    fit_prior_mean(
        net,
        layout,
        start,
        x,
        labels,
        schedule=schedule,
        generator=torch.Generator().manual_seed(0),
        dropout=DEFAULT_PRIOR_DROPOUT,
    )
    return time.perf_counter() - began


def posterior_steps(net, layout, start, x, labels, precision: str) -> float:
    """Seconds of f_quad posterior training over (x, labels) in batches of 250, one epoch."""
    variance = DEFAULT_PRIOR_STD**2
    began = time.perf_counter()
    fit_posterior(
        net,
        layout,
        start,
        start,
        x,
        labels,
        objective="quad",
        delta=0.025,
        m=MNIST_TRAIN // 2,
        prior_variance=PriorVariance(variance, on_grid=False),
        start_variance=variance,
        fixed_mean=False,
        schedule=Schedule(epochs=1, batch_size=BATCH, precision=precision),
        generator=torch.Generator().manual_seed(0),
    )
    return time.perf_counter() - began


def run(name: str, x, labels, args) -> None:
    torch.manual_seed(args.seed)
    net = NETWORKS[name]().eval()
    for parameter in net.parameters():
        parameter.requires_grad_(False)
    layout = Layout.of(parameters_of(net))
    start = layout.flatten(parameters_of(net))
    phases = {"prior": prior_steps, "posterior": posterior_steps}
    best = {(phase, p): math.inf for phase in phases for p in TRAINING_PRECISIONS}
    for _ in range(args.repeats):
        for phase, steps in phases.items():
            for precision in TRAINING_PRECISIONS:
                seconds = steps(net, layout, start, x, labels, precision) / args.steps
                best[phase, precision] = min(best[phase, precision], seconds)
    counts = {
        "prior": args.prior_epochs * math.ceil(MNIST_TRAIN // 2 / BATCH),
        "posterior": args.posterior_epochs * math.ceil(MNIST_TRAIN / BATCH),
    }
    for precision in TRAINING_PRECISIONS:
        forecast = sum(best[phase, precision] * counts[phase] for phase in phases)
        rates = ", ".join(
            f"{phase} {best[phase, precision] * 1e3:.0f} ms/step "
            f"(x{best[phase, 'float32'] / best[phase, precision]:.2f} against float32)"
            for phase in phases
        )
        print(
            f"{name} {precision}: {rates}; full schedule ({counts['prior']:,} prior + {counts['posterior']:,} "
            f"posterior steps) {forecast / 60:.0f} min",
            flush=True,
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True, help="folder holding mnist-train/")
    parser.add_argument("--networks", default="fcn,cnn")
    parser.add_argument("--steps", type=int, default=12, help="batches of 250 timed per call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prior-epochs", type=int, default=70)
    parser.add_argument("--posterior-epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    x, labels = load(args.data_root, "mnist-train", "train", args.steps * BATCH, args.seed)
    print(f"{torch.get_num_threads()} threads, best of {args.repeats}, {args.steps} steps of {BATCH} each", flush=True)
    for name in args.networks.split(","):
        if name:
            run(name, x, labels, args)


if __name__ == "__main__":
    main()
