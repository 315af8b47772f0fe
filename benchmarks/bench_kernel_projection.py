"""Benchmark: the Monte Carlo kernel with and without ``--kernel-projection`` at growing m.

The field table's conv-BN-ReLU-max-pool CNN (examples/image_models.py, width 32; 3,136 read-out features on
28 x 28 images, 4,096 on 32 x 32) gives K(train, train), K(train, test) and the test diagonal, as certify's
marginal family and its Q* baseline need them (``MonteCarloNNGP.train_and_test``), from S given
initialisations, once with the features themselves and once projected onto R random directions
(docs/kernels.md). Per m it prints, for each, the best of ``--repeats`` runs (alternated), the announced
estimate (``MonteCarloNNGP.estimate``) against that time, and the entry standard error relative to the mean
diagonal; then the ratio of the two times, and how far apart the two kernels are in units of the projected
kernel's standard errors (they share the networks, so only the projection separates them).

Inputs: ``--dataset`` images from ``--data-root`` when given (mnist-train, fashion-mnist or cifar-10, the field
table's folders), else seeded uniform noise of that dataset's shape (the time does not depend on the pixels).

    python benchmarks/bench_kernel_projection.py [--data-root DIR] [--dataset mnist] [--m 2000,5000] \
        [--samples 32] [--projection 256] [--test-points 1000] [--repeats 2] [--threads 2]
"""

import argparse
import os
import time

import torch
from _examples import load_example

from pacbayes.data import load_dataset, take
from pacbayes.kernels import MonteCarloNNGP

SHAPES = {  # channels, size, training and test folders under --data-root (the field table's)
    "mnist": (1, 28, "mnist-train", "mnist"),
    "fashion-mnist": (1, 28, "fashion-mnist", "fashion-mnist"),
    "cifar-10": (3, 32, "cifar-10", "cifar-10"),
}


def inputs(args, m: int) -> tuple:
    """(m training inputs, ``args.test_points`` test inputs), float64 images of the dataset's shape."""
    channels, size, train_folder, test_folder = SHAPES[args.dataset]
    if args.data_root is None:
        generator = torch.Generator().manual_seed(0)
        images = torch.rand((m + args.test_points, channels, size, size), generator=generator, dtype=torch.float64)
        return images[:m], images[m:]
    train = take(load_dataset(os.path.join(args.data_root, train_folder), split="train"), m, seed=0).x.double()
    test = take(load_dataset(os.path.join(args.data_root, test_folder), split="test"), args.test_points, seed=0)
    return train, test.x.double()


def timed(args, model, projection, x, x_test) -> dict:
    """One train_and_test pass: seconds, the announced estimate, K and the kernel (its diagnostics)."""
    kernel = MonteCarloNNGP(model, samples=args.samples, seed=0, projection=projection, entry_errors=True)
    estimate, _ = kernel.estimate(x.shape[0], inputs=x, test_points=x_test.shape[0])
    started = time.perf_counter()
    K, _, _ = kernel.train_and_test(x, x_test)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "estimate": estimate, "K": K, "kernel": kernel}


def run(args) -> list:
    channels, size = SHAPES[args.dataset][:2]
    model = load_example("image_models").ConvBnMaxPool(channels=channels, size=size, width=32)
    rows = []
    for m in (int(v) for v in args.m.split(",")):
        x, x_test = inputs(args, m)
        best: dict = {}
        for _ in range(args.repeats):
            for projection in (None, args.projection):
                result = timed(args, model, projection, x, x_test)
                if projection not in best or result["seconds"] < best[projection]["seconds"]:
                    best[projection] = result
        plain, projected = best[None], best[args.projection]
        apart = (projected["K"] - plain["K"]).abs() / projected["kernel"].standard_error.clamp(min=1e-300)
        row = {"m": m, "ratio": plain["seconds"] / projected["seconds"], "z_max": float(apart.max())}
        for name, result in (("plain", plain), ("projected", projected)):
            diagnostics = result["kernel"].diagnostics
            row[name] = {
                "seconds": result["seconds"],
                "estimate": result["estimate"],
                "features": diagnostics["features_per_initialisation"],
                "se_max_relative": diagnostics["standard_error_max_relative"],
            }
        rows.append(row)
        print_row(row, args)
    return rows


def print_row(row: dict, args) -> None:
    print(f"m = {row['m']:,}, {args.samples} initialisations, {args.test_points} test points:")
    for name in ("plain", "projected"):
        r = row[name]
        print(
            f"  {name:9s} ({r['features']:5d} features per draw): {r['seconds']:7.1f} s "
            f"(estimate {r['estimate']:.1f} s, {r['estimate'] / r['seconds']:.2f}x), "
            f"entry standard error max {r['se_max_relative']:.3f} of the mean diagonal"
        )
    print(f"  plain / projected: {row['ratio']:.2f}x; the kernels differ by at most {row['z_max']:.1f} standard errors")


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None, help="folder of mnist-train/, fashion-mnist/, cifar-10/")
    parser.add_argument("--dataset", choices=sorted(SHAPES), default="mnist")
    parser.add_argument("--m", default="2000,5000", help="training points (comma-separated)")
    parser.add_argument("--samples", type=int, default=32, help="initialisations")
    parser.add_argument("--projection", type=int, default=256, help="R, random projections per initialisation")
    parser.add_argument("--test-points", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs of each, alternated")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    return run(args)


if __name__ == "__main__":
    main()
