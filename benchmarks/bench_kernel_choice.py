"""Estimate against measurement for both kernel kinds on a CIFAR-sized residual CNN, and the kernel auto would pick.

    python benchmarks/bench_kernel_choice.py [--n 200] [--analytic-n 8]

The network is bench_pooled_vs_neural_tangents.py's residual CNN with average and global pooling, at
PyTorch's default init, on n seeded Gaussian 3 x 32 x 32 inputs. Prints, for the analytic kernel, its
estimate at n and its estimate and measured time at ``--analytic-n`` (the full n x n analytic matrix takes
hours: measure it with ``--analytic-n`` equal to n); for the Monte Carlo kernel at its automatic sample count,
its estimate and measured time at n with its entry standard error and rank; and the choice of
:func:`pacbayes.kernels.choice.choose_kernel` with ``--kernel-type auto``.
"""

import argparse
import time

import torch
from bench_pooled_vs_neural_tangents import SHAPE, residual_net

from pacbayes.kernels import MonteCarloNNGP, analytic_kernel_or_reason
from pacbayes.kernels.choice import choose_kernel, duration, monte_carlo_forecast


def timed(function):
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--analytic-n", type=int, default=8)
    args = parser.parse_args()
    net = residual_net()
    x = torch.randn((args.n, *SHAPE), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    analytic, reason = analytic_kernel_or_reason(net, SHAPE)
    if analytic is None:
        raise SystemExit(f"no analytic kernel: {reason}")
    analytic_estimate, _ = analytic.estimate(args.n)
    small_estimate, _ = analytic.estimate(args.analytic_n)
    small_measured, _ = timed(lambda: analytic.matrix(x[: args.analytic_n]))
    print(
        f"analytic (full spatial covariance): estimate at n = {args.n}: {duration(analytic_estimate)} "
        f"({analytic_estimate:.0f} s); at n = {args.analytic_n}: estimate {small_estimate:.1f} s, "
        f"measured {small_measured:.1f} s"
    )
    monte_carlo = MonteCarloNNGP(net, seed=0)
    forecast_seconds, forecast = timed(lambda: monte_carlo_forecast(monte_carlo, args.n, SHAPE))
    measured, _ = timed(lambda: monte_carlo.matrix(x))
    found = monte_carlo.diagnostics
    print(
        f"Monte Carlo ({found['estimator']} estimator, {forecast.samples} initialisations): estimate at n = "
        f"{args.n}: {forecast.seconds:.1f} s (the pilot and estimate took {forecast_seconds:.1f} s), measured "
        f"{measured:.1f} s; entry standard error max {found['standard_error_max_relative']:.1e} (forecast "
        f"{forecast.relative_error:.1e}, target {forecast.target_error:g}), rank {found['rank']} of {args.n}"
    )
    choice = choose_kernel("auto", analytic_estimate, forecast, args.n)
    print(f"--kernel-type auto: {choice.kind} -- {choice.reason}")


if __name__ == "__main__":
    main()
