"""Per-point against per-network Monte Carlo draws for PBB's MNIST CNN (the stochastic family's sample
convergence, :mod:`pacbayes.stochastic.certificate`).

A per-network draw scores one sampled network on every bound point, so n networks give n samples of the Gibbs
error and a slack of about sqrt(2 e ln(1/delta') / n); a per-point pass draws a network for every point, so n
passes give n m independent indicators. This measures, on MODEL (PBB's CNN after a few epochs of SGD on mnist-train)
with a posterior of standard deviation ``--std`` around it:

1. seconds per (point, draw) of each sampler at its own batch size, best of ``--repeats``, alternated, same run;
2. at PBB's size (``--bound-points``, default 27,500: half of mnist-train), the sampling slack and the forecast
   seconds of ``--network-draws`` network draws (PBB's 1,000) against ``--passes`` per-point passes (20).

    python benchmarks/bench_point_draws.py --data-root DATA
"""

import argparse
import math
import os
import sys
import time

import torch

from pacbayes import bounds
from pacbayes.stochastic.certificate import point_sampled_error, sampled_error
from pacbayes.stochastic.gaussian import DiagonalGaussian, Layout
from pacbayes.stochastic.prior import parameters_of

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_pbb_mnist import cnn, load, train_model  # noqa: E402


def posterior_around(net, std: float) -> DiagonalGaussian:
    """N(MODEL's weights, std^2 I)."""
    params = parameters_of(net)
    layout = Layout.of(params)
    mean = layout.flatten(params)
    return DiagonalGaussian(mean, torch.full_like(mean, 2 * math.log(std)), layout)


def seconds_per_draw(sampler, net, posterior, x, labels, draws: int) -> tuple:
    """(seconds per (point, draw), the sampled error) of ``draws`` draws (networks or passes) on (x, labels)."""
    started = time.perf_counter()
    error = sampler(net, posterior, x, labels, draws, generator=torch.Generator().manual_seed(0))
    return (time.perf_counter() - started) / (draws * len(labels)), error


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True, help="folder holding mnist-train/")
    parser.add_argument("--m", type=int, default=2000, help="points timed (default 2,000)")
    parser.add_argument("--model-epochs", type=int, default=3)
    parser.add_argument("--std", type=float, default=0.03, help="posterior standard deviation (PBB's prior's)")
    parser.add_argument("--draws", type=int, default=3, help="networks / passes per timed call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bound-points", type=int, default=27500)
    parser.add_argument("--network-draws", type=int, default=1000)
    parser.add_argument("--passes", type=int, default=20)
    parser.add_argument("--delta", type=float, default=0.01, help="delta' of the sample-convergence bound")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    x, labels = load(args.data_root, "mnist-train", "train", args.m, 0)
    net, _, _ = train_model(cnn, x, labels, seed=0, epochs=args.model_epochs)
    posterior = posterior_around(net, args.std)
    samplers = {"network": sampled_error, "point": point_sampled_error}
    best = {name: (math.inf, None) for name in samplers}
    for _ in range(args.repeats):
        for name, sampler in samplers.items():
            seconds, error = seconds_per_draw(sampler, net, posterior, x, labels, args.draws)
            best[name] = (min(best[name][0], seconds), error)
    rate = {name: seconds for name, (seconds, _) in best.items()}
    error = best["point"][1]
    print(
        f"PBB's CNN, {args.m:,} mnist-train points, posterior std {args.std}, {torch.get_num_threads()} threads, "
        f"best of {args.repeats}: network draws {rate['network'] * 1e3:.3f} ms, per-point draws "
        f"{rate['point'] * 1e3:.3f} ms per (point, draw) ({rate['point'] / rate['network']:.2f}x); "
        f"sampled error {best['network'][1]:.4f} / {error:.4f}"
    )
    m = args.bound_points
    plans = {"network": (args.network_draws, args.network_draws), "point": (args.passes, args.passes * m)}
    forecast = {}
    for name, (draws, samples) in plans.items():
        slack = bounds.sample_convergence_bound(error, samples, args.delta) - error
        forecast[name] = draws * m * rate[name]
        print(
            f"  {name}: {draws:,} {'networks' if name == 'network' else 'passes'} on {m:,} points: "
            f"{samples:,} samples of the error, slack {slack:.4f} on the Gibbs error at {error:.4f}, "
            f"forecast {forecast[name]:.0f} s"
        )
    print(f"  forecast ratio (network / point): {forecast['network'] / forecast['point']:.1f}x")
    return {"rate": rate, "forecast": forecast}


if __name__ == "__main__":
    main()
