"""Overhead of BoundMonitor on a small MNIST training run (target: < 10% of training time).

Trains the demo network (flatten, 2 x 512 ReLU, one logit; Adam, batch 32) on m binarised
mnist-embedded images for a fixed number of epochs from the same seed, plain (the baseline) and
calling ``monitor.step(model)`` after every optimiser step at the default cadence (a 5% time
budget after each checkpoint; ``--every N`` for a fixed cadence), with the 5,000 held-out test
images for the per-checkpoint hold-out bound. The two arms alternate ``--repeats`` times and the
fastest run of each counts (the machine may be shared). Prints both times, the overhead ratio,
and the monitor's own split: the one-time marginal work (NNGP kernel + EP on S, at the first
checkpoint) and the per-checkpoint work (errors on S and the test set, hold-out bound).

    python benchmarks/bench_monitor.py [--m 1000] [--epochs 30] [--every N] [--repeats 2] [--threads 1]
"""

import argparse
import time

import torch
from torch import nn

from pacbayes.data import binarise, load_dataset, take
from pacbayes.demo import demo_network
from pacbayes.monitor import BoundMonitor


def train(model, data, *, epochs: int, seed: int, monitor=None) -> float:
    """Adam on the logistic loss; returns the wall-clock seconds of the whole loop."""
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    targets = data.labels.to(torch.float32)
    started = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(data), generator=generator).split(32):
            optimiser.zero_grad()
            loss_fn(model(data.x[batch]).squeeze(-1), targets[batch]).backward()
            optimiser.step()
            if monitor is not None:
                monitor.step(model)
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--every", type=int, default=None, help="fixed cadence instead of the default time budget")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each arm; the fastest counts")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (1 is steadier on a busy machine)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = take(binarise(load_dataset("mnist-embedded", split="train")), args.m, seed=args.seed)
    test = load_dataset("mnist-embedded", split="test")

    baselines, monitored_runs = [], []
    for _ in range(args.repeats):  # alternate the two arms so that load changes hit both
        torch.manual_seed(args.seed)
        baselines.append(train(demo_network(), data, epochs=args.epochs, seed=args.seed))
        torch.manual_seed(args.seed)
        model = demo_network()
        monitor = BoundMonitor(model, data, test=test, every=args.every)
        monitored_runs.append(train(model, data, epochs=args.epochs, seed=args.seed, monitor=monitor))
    baseline, monitored = min(baselines), min(monitored_runs)

    calls = [r.seconds for r in monitor.history]
    steps = args.epochs * ((args.m + 31) // 32)
    last = monitor.history[-1]
    cadence = f"every {args.every} steps" if args.every else "at the default 5% time budget"
    print(
        f"training: m = {args.m}, {args.epochs} epochs, {steps} Adam steps, monitor {cadence} "
        f"({len(calls)} checkpoints)"
    )
    for label, best, runs in (
        ("baseline (no monitor)", baseline, baselines),
        ("with BoundMonitor", monitored, monitored_runs),
    ):
        print(f"  {label:<26} {best:8.2f} s  (fastest of {', '.join(f'{t:.2f}' for t in runs)})")
    print(
        f"  overhead                   {monitored - baseline:8.2f} s = {(monitored - baseline) / baseline:.1%} "
        f"of baseline (ratio {monitored / baseline:.3f})"
    )
    print(
        f"  monitor's own time (last run) {sum(calls):5.2f} s = {sum(calls) / baseline:.1%} of baseline: "
        f"first checkpoint (kernel + EP once) {calls[0]:.2f} s, later checkpoints "
        f"{sum(calls[1:]) / max(len(calls) - 1, 1) * 1000:.0f} ms each"
    )
    print(
        f"  last checkpoint: train error {last.train_error:.4f}, test error {last.test_error:.4f}, "
        + ", ".join(f"{k} {v:.4f}" for k, v in last.bounds.items())
    )


if __name__ == "__main__":
    main()
