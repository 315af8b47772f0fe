"""Benchmark the compiled NNGP of a residual CNN with average pooling against neural-tangents, same CPU, same inputs.

    python benchmarks/bench_pooled_vs_neural_tangents.py --nt-python /path/to/venv/bin/python [--n 20]

neural-tangents needs jax 0.4.30 (``pip install "jax==0.4.30" "jaxlib==0.4.30" neural-tangents``) in a
separate virtual environment, whose Python ``--nt-python`` names (as in bench_cnn_vs_neural_tangents.py).
The network, on CIFAR-sized 3 x 32 x 32 inputs (seeded Gaussian; the kernel's cost does not depend on the
values): conv 3x3 'same' -> h + conv(relu(conv(relu(h)))) (a residual block) -> relu -> 2x2 average pool
-> conv 3x3 'same' -> relu -> global mean -> dense to one logit; sigma_w = 1.5, sigma_b = 0.1. The global
mean needs every pair of positions at every layer (the full spatial covariance, 1024^2 entries per pair of
inputs at 32 x 32). Prints the seconds of each (best of ``--repeats``), their ratio, the largest relative
difference of the two kernels, and pacbayes' own estimate (``CompiledNNGP.estimate``) beside its time.
"""

import argparse

import numpy as np
from bench_cnn_vs_neural_tangents import answer_neural_tangents, best_of, neural_tangents_run, relative_difference

SIGMA_W, SIGMA_B = 1.5, 0.1
SHAPE = (3, 32, 32)


def neural_tangents_kernel(images: np.ndarray, repeats: int, batch: int) -> tuple:
    """(seconds, K) of neural-tangents' analytic NNGP of the residual net (float64, tiled by nt.batch)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import neural_tangents as nt
    from neural_tangents import stax

    def conv():
        return stax.Conv(1, (3, 3), (1, 1), "SAME", W_std=SIGMA_W, b_std=SIGMA_B)

    _, _, kernel_fn = stax.serial(
        conv(),
        stax.FanOut(2),
        stax.parallel(stax.Identity(), stax.serial(stax.Relu(), conv(), stax.Relu(), conv())),
        stax.FanInSum(),
        stax.Relu(), stax.AvgPool((2, 2), (2, 2), "VALID"),
        conv(), stax.Relu(), stax.GlobalAvgPool(), stax.Dense(1, W_std=SIGMA_W, b_std=SIGMA_B),
    )  # fmt: skip
    x = np.transpose(images, (0, 2, 3, 1))  # NHWC
    batched = nt.batch(kernel_fn, batch_size=batch)
    return best_of(lambda: np.asarray(batched(x, None, "nngp")), repeats)


def residual_net():
    """The same network in torch (its channel counts are irrelevant to the NNGP)."""
    import torch
    from torch import nn

    class Residual(nn.Module):
        def __init__(self, channels: int = 8):
            super().__init__()
            self.stem = nn.Conv2d(3, channels, 3, padding=1)
            self.inner = nn.Conv2d(channels, channels, 3, padding=1)
            self.outer = nn.Conv2d(channels, channels, 3, padding=1)
            self.head = nn.Conv2d(channels, channels, 3, padding=1)
            self.pool = nn.AvgPool2d(2)
            self.readout = nn.Linear(channels, 1)

        def forward(self, x):
            h = self.stem(x)
            h = torch.relu(h + self.outer(torch.relu(self.inner(torch.relu(h)))))
            h = torch.relu(self.head(self.pool(h)))
            return self.readout(h.mean(dim=(2, 3)))

    return Residual()


def pacbayes_kernel(images: np.ndarray, repeats: int) -> tuple:
    """(seconds, K, estimated seconds) of pacbayes' compiled kernel of the same network."""
    import torch

    from pacbayes.kernels import analytic_kernel_or_reason

    kernel, reason = analytic_kernel_or_reason(residual_net(), SHAPE, sigma_w=SIGMA_W, sigma_b=SIGMA_B)
    if kernel is None:
        raise SystemExit(f"no analytic kernel: {reason}")
    x = torch.as_tensor(images)
    estimate, _ = kernel.estimate(x.shape[0])
    return (*best_of(lambda: kernel.matrix(x).numpy(), repeats), estimate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--nt-batch", type=int, default=5, help="neural-tangents' tile (must divide --n)")
    parser.add_argument("--nt-python", help="a Python with neural-tangents installed (else this one)")
    parser.add_argument("--nt-only", help=argparse.SUPPRESS)  # internal: images .npy -> nt figures
    args = parser.parse_args()
    if args.nt_only:
        answer_neural_tangents(args.nt_only, lambda images: neural_tangents_kernel(images, args.repeats, args.nt_batch))
        return
    images = np.random.default_rng(0).standard_normal((args.n, *SHAPE))
    ours, K_ours, estimate = pacbayes_kernel(images, args.repeats)
    options = ["--repeats", str(args.repeats), "--nt-batch", str(args.nt_batch)]
    theirs, K_theirs = neural_tangents_run(args.nt_python, __file__, images, options)
    difference = relative_difference(K_ours, K_theirs)
    print(
        f"residual CNN NNGP with average and global pooling (3x32x32, full spatial covariance), n = {args.n:,}, "
        f"float64, best of {args.repeats}: pacbayes {ours:.2f} s (its estimate {estimate:.2f} s), "
        f"neural-tangents {theirs:.2f} s, ratio {ours / theirs:.2f}; max relative difference {difference:.1e}"
    )


if __name__ == "__main__":
    main()
