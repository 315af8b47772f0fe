"""Time of the Dziugaite-Roy / PBB certificate on binary MNIST (m = 5,000, 784-600-1 ReLU net).

Runs the example's pipeline (examples/dziugaite_roy_mnist.py) and prints, for the true-label run
and (unless --skip-random) the random-label run: the certified bound, the stochastic net's test
error, the seconds of the certification, and two ratios measured in the same run:
  - to the baseline: SGD training of the same deterministic network (same data, same threads);
  - to the issue's budget of 10 minutes for the whole run on this CPU.

    python benchmarks/bench_stochastic.py                  # full settings of the example
    python benchmarks/bench_stochastic.py --quick          # fewer posterior steps and samples
"""

import argparse
import importlib.util
import sys
import time
from pathlib import Path

BUDGET_SECONDS = 600.0


def _example():
    path = Path(__file__).resolve().parents[1] / "examples" / "dziugaite_roy_mnist.py"
    spec = importlib.util.spec_from_file_location("dziugaite_roy_mnist", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 posterior epochs and 200 MC samples")
    known, rest = parser.parse_known_args()
    example = _example()
    argv = (["--posterior-epochs", "20", "--mc-samples", "200"] if known.quick else []) + rest + ["--quiet"]
    started = time.perf_counter()
    runs = example.main(argv)
    total = time.perf_counter() - started
    print("\n=== benchmark ===")
    for name, run in runs.items():
        print(
            f"{name}: bound {run['bound']:.4f}, stochastic test error {run['test_error']:.4f}; "
            f"certification {run['certify_seconds']:.1f} s = x{run['certify_seconds'] / run['train_seconds']:.1f} "
            f"the baseline (SGD training of the net, {run['train_seconds']:.1f} s)"
        )
    print(
        f"whole run {total:.1f} s = {total / BUDGET_SECONDS:.2f} of the 10-minute budget "
        f"({'within' if total <= BUDGET_SECONDS else 'OVER'} budget); python {sys.version.split()[0]}"
    )


if __name__ == "__main__":
    main()
