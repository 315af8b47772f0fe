"""Overhead of BoundMonitor on a small MNIST training run (target: < 10% of training time).

Trains the demo network (flatten, 2 x 512 ReLU, one logit; Adam, batch 32) on m binarised
mnist-embedded images for a fixed number of epochs from the same seed, plain (the baseline) and
calling ``monitor.step(model)`` after every optimiser step at the default cadence (a 5% time
budget after each checkpoint; ``--every N`` for a fixed cadence), with the 5,000 held-out test
images given (the checkpoints use the default seeded 1,000 of them) and ``total_steps`` set, so
the checkpoints spread over the run and the last is at the final step. The two arms alternate
``--repeats`` times and the fastest run of each counts (the machine may be shared). Prints both
times and the overhead ratio of the training loop, in wall-clock and in process CPU time (with
``--threads 1`` the CPU time is little affected by other processes on a shared machine); the
monitor's one-time work (NNGP kernel + EP on S, done when it is constructed, before training),
separately and as a ratio with it included; and every checkpoint's step, errors and bounds, which
must move as training does.

    python benchmarks/bench_monitor.py [--m 1000] [--epochs 30] [--every N] [--repeats 2] [--threads 1]
"""

import argparse
import time

import torch
from torch import nn

from pacbayes.data import binarise, load_dataset, take
from pacbayes.demo import demo_network
from pacbayes.monitor import BoundMonitor

BATCH = 32


def train(model, data, *, epochs: int, seed: int, monitor=None) -> tuple:
    """Adam on the logistic loss; returns (wall-clock, process CPU) seconds of the whole loop."""
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    targets = data.labels.to(torch.float32)
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(data), generator=generator).split(BATCH):
            optimiser.zero_grad()
            loss_fn(model(data.x[batch]).squeeze(-1), targets[batch]).backward()
            optimiser.step()
            if monitor is not None:
                monitor.step(model)
    return time.perf_counter() - started, time.process_time() - cpu


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
    steps = args.epochs * ((args.m + BATCH - 1) // BATCH)

    baselines, monitored_runs, setups = [], [], []

    def plain():
        torch.manual_seed(args.seed)
        baselines.append(train(demo_network(), data, epochs=args.epochs, seed=args.seed))

    def monitored():
        torch.manual_seed(args.seed)
        model = demo_network()
        monitor = BoundMonitor(model, data, test=test, every=args.every, total_steps=steps)
        setups.append(monitor.setup_seconds)
        monitored_runs.append(train(model, data, epochs=args.epochs, seed=args.seed, monitor=monitor))
        return monitor

    # warm-up, not timed: the one-time imports and allocations the monitor's first construction makes
    # (torch.export, the kernels) would otherwise speed up or slow down whichever arm runs after them
    BoundMonitor(demo_network(), data, test=test)
    train(demo_network(), data, epochs=1, seed=args.seed)
    for repeat in range(args.repeats):  # alternate the two arms, and their order, so load changes hit both
        if repeat % 2:
            monitor = monitored()
            plain()
        else:
            plain()
            monitor = monitored()
    fastest = min(range(args.repeats), key=lambda i: monitored_runs[i][0])
    baseline, monitored, setup = min(baselines)[0], monitored_runs[fastest][0], setups[fastest]
    baseline_cpu, monitored_cpu = min(cpu for _, cpu in baselines), min(cpu for _, cpu in monitored_runs)

    calls = [r.seconds for r in monitor.history]
    cadence = f"every {args.every} steps" if args.every else "at the default 5% time budget"
    print(
        f"training: m = {args.m}, {args.epochs} epochs, {steps} Adam steps, monitor {cadence} "
        f"({len(calls)} checkpoints)"
    )
    for label, best, runs in (
        ("baseline (no monitor)", baseline, baselines),
        ("with BoundMonitor", monitored, monitored_runs),
    ):
        print(f"  {label:<26} {best:8.2f} s  (fastest of {', '.join(f'{t:.2f}' for t, _ in runs)})")
    print(
        f"  overhead of the loop       {monitored - baseline:8.2f} s = {(monitored - baseline) / baseline:.1%} "
        f"of baseline (ratio {monitored / baseline:.3f}; target < 10%)"
    )
    print(
        f"  CPU time of the loop       baseline {baseline_cpu:.2f} s, with BoundMonitor {monitored_cpu:.2f} s: "
        f"ratio {monitored_cpu / baseline_cpu:.3f} (steadier than wall-clock on a shared machine)"
    )
    print(
        f"  one-time setup             {setup:8.2f} s (kernel + EP at construction, before training); with it: "
        f"ratio {(monitored + setup) / baseline:.3f}"
    )
    print(
        f"  monitor's own time (last run) {sum(calls):5.2f} s = {sum(calls) / baseline:.1%} of baseline, "
        f"{sum(calls) / len(calls) * 1000:.0f} ms per checkpoint"
    )
    print("  checkpoints (step: train error, test error, bounds):")
    for r in monitor.history:
        bounds = ", ".join(f"{b.name} {b.value:.4f}" for b in r.bounds)
        print(f"    {r.step:>6}: {r.train_error:.4f}, {r.test_error:.4f}, {bounds}")


if __name__ == "__main__":
    main()
