"""Benchmark the compiled 2-conv CNN NNGP against neural-tangents on the same CPU, same inputs.

    python benchmarks/bench_cnn_vs_neural_tangents.py --nt-python /path/to/venv/bin/python [--n 1000]

neural-tangents needs jax 0.4.30 (``pip install "jax==0.4.30" "jaxlib==0.4.30" neural-tangents``),
which does not belong in pacbayes' environment: give the Python of a separate virtual environment
that has it with ``--nt-python`` (or run this script in an environment with both). The network:
two Conv2d 5x5 layers of stride 1 with 'same' padding, ReLU after each, flatten, Dense to one
logit; sigma_w = 1.5, sigma_b = 0.1 everywhere; n MNIST images (mnist-embedded, float64). Prints
the seconds of each (best of ``--repeats``), their ratio (target: pacbayes <= 1.5 x
neural-tangents) and the largest relative difference of the two kernels.
"""

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

SIGMA_W, SIGMA_B = 1.5, 0.1


def best_of(compute, repeats: int) -> tuple:
    """(the best seconds, the last result) of ``compute()`` run ``repeats`` times."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = compute()
        best = min(best, time.perf_counter() - start)
    return best, result


def neural_tangents_run(python, script: str, images: np.ndarray, options: list) -> tuple:
    """(seconds, K) from ``script --nt-only IMAGES options`` run by ``python`` (the one with neural-tangents)."""
    with tempfile.TemporaryDirectory() as folder:
        path = str(pathlib.Path(folder) / "images.npy")
        np.save(path, images)
        command = [python or sys.executable, script, "--nt-only", path, *options]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        return json.loads(output.strip().splitlines()[-1])["seconds"], np.load(path + ".K.npy")


def answer_neural_tangents(path: str, compute) -> None:
    """The ``--nt-only`` side of :func:`neural_tangents_run`: (seconds, K) = ``compute(images at path)``, K saved
    beside the images and the seconds printed."""
    seconds, K = compute(np.load(path))
    np.save(path + ".K.npy", K)
    print(json.dumps({"seconds": seconds}))


def relative_difference(ours: np.ndarray, theirs: np.ndarray) -> float:
    """The largest entry difference of two kernel matrices over the largest entry of the second."""
    return float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))


def neural_tangents_kernel(images: np.ndarray, repeats: int) -> tuple:
    """(seconds, K) of neural-tangents' analytic NNGP (float64, tiled by nt.batch)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import neural_tangents as nt
    from neural_tangents import stax

    layers = []
    for _ in range(2):
        layers += [stax.Conv(1, (5, 5), (1, 1), "SAME", W_std=SIGMA_W, b_std=SIGMA_B), stax.Relu()]
    _, _, kernel_fn = stax.serial(*layers, stax.Flatten(), stax.Dense(1, W_std=SIGMA_W, b_std=SIGMA_B))
    x = np.transpose(images, (0, 2, 3, 1))  # NHWC
    batched = nt.batch(kernel_fn, batch_size=100)
    return best_of(lambda: np.asarray(batched(x, None, "nngp")), repeats)


def pacbayes_kernel(images: np.ndarray, repeats: int) -> tuple:
    """(seconds, K) of pacbayes' compiled kernel of the same network."""
    import torch
    from torch import nn

    from pacbayes.kernels import analytic_kernel_or_reason

    net = nn.Sequential(
        nn.Conv2d(1, 8, 5, padding="same"), nn.ReLU(), nn.Conv2d(8, 8, 5, padding="same"), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 28 * 28, 1),
    )  # fmt: skip
    kernel, reason = analytic_kernel_or_reason(net, (1, 28, 28), sigma_w=SIGMA_W, sigma_b=SIGMA_B)
    if kernel is None:
        raise SystemExit(f"no analytic kernel: {reason}")
    x = torch.as_tensor(images)
    return best_of(lambda: kernel.matrix(x).numpy(), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--nt-python", help="a Python with neural-tangents installed (else this one)")
    parser.add_argument("--nt-only", help=argparse.SUPPRESS)  # internal: images .npy -> nt figures
    args = parser.parse_args()
    if args.nt_only:
        answer_neural_tangents(args.nt_only, lambda images: neural_tangents_kernel(images, args.repeats))
        return
    from pacbayes.data import load_dataset

    images = load_dataset("mnist-embedded", split="train").x[: args.n].double().numpy()
    ours, K_ours = pacbayes_kernel(images, args.repeats)
    theirs, K_theirs = neural_tangents_run(args.nt_python, __file__, images, ["--repeats", str(args.repeats)])
    difference = relative_difference(K_ours, K_theirs)
    print(
        f"2-conv CNN NNGP (5x5, stride 1, 'same', flatten), n = {args.n:,}, float64, best of {args.repeats}: "
        f"pacbayes {ours:.2f} s, neural-tangents {theirs:.2f} s, ratio {ours / theirs:.2f} (target <= 1.5); "
        f"max relative difference {difference:.1e}"
    )


if __name__ == "__main__":
    main()
