"""Speed of the Kronecker projection against a dense Gaussian projection (the baseline), and the
compression bound against d (``--bound-vs-d``).

For each (D, d) it times P z plus the backward pass d loss/dz (one subspace training step's
projection work) with the Kronecker projection and with a dense D x d matrix, in the same run,
and prints both times, the speed-up ratio and the memory each needs (both use the same number
of torch threads, ``--threads``). Also times the pure-Python
arithmetic coder on d symbols.

    python benchmarks/bench_subspace.py            # D up to 200,000
    python benchmarks/bench_subspace.py --quick

With ``--bound-vs-d`` it instead certifies a 784-128-10 ReLU net on 10-class mnist-embedded
(standardised pixels; S = ``--m`` points drawn with seed 0) for every d of ``--dims``: z is trained
to convergence once (package defaults), then compressed with the package defaults (50 epochs of
rate-weighted quantisation-aware fine-tuning, the best (level count, epoch) kept) and, as the
baseline from the same fitted z, with the previous defaults (1 fine-tuning epoch, no rate term).
The union over the d's tried is counted (configurations = |dims| x |levels grid| x epochs x
``--tried``, the other settings tried on this S); ``--qat-epochs`` sets the fine-tuning epochs.
"float" is the test error of the unquantised subspace model. Issue 15's references: 0.647 at
S = 2,000, d = 300 (target <= 0.55); 0.458 at m = 5,000, d = 300 (target <= 0.30); at S = 2,000
the figures of Lotfi et al.'s released code measured there are printed under their rows.
``--prior-split F`` learns theta0 on a fraction F of S first (:mod:`pacbayes.subspace.origin`);
z, both compressions and the bound then use the other points, z = 0 counted as one more candidate.

    python benchmarks/bench_subspace.py --bound-vs-d --m 5000 --dims 100 300 500 1000 2000 5000
    python benchmarks/bench_subspace.py --bound-vs-d --m 2000 --dims 300 1000
    python benchmarks/bench_subspace.py --bound-vs-d --m 2000 --dims 300 1000 --prior-split 0.5
"""

import argparse
import time

import numpy as np
import torch

from pacbayes.data import MNIST_MEAN_STD, load_dataset, normalise, take
from pacbayes.families.settings import SubspaceSettings
from pacbayes.models import zero_one_error
from pacbayes.subspace import SubspaceModel, compress_subspace_model, fit_subspace, subspace_bound
from pacbayes.subspace.coding import decode_message, encode_message
from pacbayes.subspace.projection import KroneckerProjection
from pacbayes.subspace.training import DEFAULT_QAT_EPOCHS, learn_origin


def seconds_per_call(step, repeats: int) -> float:
    step()
    started = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - started) / repeats


def projection_step(project, dim: int):
    z = torch.randn(dim, requires_grad=True)

    def step():
        project(z).square().sum().backward()
        z.grad = None

    return step


def _mlp_data(split: str, m=None):
    ds = load_dataset("mnist-embedded", split=split)
    if m is not None and m < len(ds):
        ds = take(ds, m, seed=0)
    ds = normalise(ds, "standard", mean=MNIST_MEAN_STD[0], std=MNIST_MEAN_STD[1])
    return ds.x.flatten(1), ds.labels


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))


def _certify(model, trained_z, data, test, configurations: int, **compression) -> tuple:
    """Compress the fitted ``model`` from ``trained_z`` with ``compression`` options and certify it;
    ``data``: (x, labels) of S, and the bound part of S that z was fitted on."""
    (x, labels), (x_bound, labels_bound) = data
    with torch.no_grad():
        model.z.copy_(trained_z)
    started = time.perf_counter()
    compressed = compress_subspace_model(
        model, x_bound, labels_bound, extra_configurations=configurations, **compression
    )
    result = subspace_bound(compressed, x, labels, delta=0.05, test=test)[0]
    return result, time.perf_counter() - started


LOTFI_CODE = {300: 0.670, 1000: 0.769}
"""Lotfi et al.'s released code on this setting at S = 2,000 (issue 15, measured there; not installed here)."""


def bound_vs_d(
    m: int,
    dims: list,
    qat_epochs: int = DEFAULT_QAT_EPOCHS,
    tried: int = 1,
    prior_split: float = 0.0,
    lr: float = SubspaceSettings.lr,
) -> None:
    """The table of the module docstring; ``tried``: other settings tried on this S, counted too;
    ``prior_split``: theta0 learned on that fraction of S (:func:`learn_origin`), the bound on the rest;
    ``lr``: Adam's learning rate of the subspace fit."""
    x, labels = _mlp_data("train", m)
    test = _mlp_data("test")
    origin = f"theta0 learned on {prior_split:g} of S" if prior_split else "seeded theta0"
    print(
        f"10-class mnist-embedded, S = {len(labels)}, 784-128-10 ReLU, {origin}, fit lr {lr:g}; "
        f"union over {len(dims)} values of d"
    )
    print(
        f"{'d':>6} {'bound':>7} {'train':>7} {'test':>7} {'bits':>6} {'L':>3} {'float':>6} {'fit s':>6} {'s':>5}"
        "   previous defaults (same fit): bound (train, test, bits)  ratio"
    )
    for dim in dims:
        model = SubspaceModel(_mlp(), dim=dim, seed=0)
        started = time.perf_counter()
        bound_data = learn_origin(model, x, labels, split=prior_split) if prior_split else (x, labels)
        fit_subspace(model, *bound_data, seed=0, lr=lr)
        fit_seconds = time.perf_counter() - started
        float_test = zero_one_error(model, *test)
        trained_z = model.z.detach().clone()
        data, learned = ((x, labels), bound_data), bool(prior_split)
        ours, seconds = _certify(
            model, trained_z, data, test, len(dims) * tried, lr=0.01, qat_epochs=qat_epochs, include_origin=learned
        )
        before, _ = _certify(
            model, trained_z, data, test, len(dims), lr=0.01, qat_epochs=1, rate_weight=0.0, include_origin=learned
        )
        d, b = ours.details, before.details
        print(
            f"{dim:>6} {ours.value:>7.4f} {d['train_error']:>7.4f} {d['test_error']:>7.4f} {d['code_bits']:>6} "
            f"{d['levels']:>3} {float_test:>6.4f} {fit_seconds:>6.0f} {seconds:>5.0f}   "
            f"{before.value:.4f} ({b['train_error']:.4f}, {b['test_error']:.4f}, {b['code_bits']})"
            f"  {ours.value / before.value:.3f}",
            flush=True,
        )
        if len(labels) == 2000 and dim in LOTFI_CODE:
            reference = LOTFI_CODE[dim]
            print(
                f"{'':>6} reference: {reference:.3f} = Lotfi et al.'s released code on this S (issue 15, measured "
                f"there); ratio ours / reference {ours.value / reference:.3f}"
            )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--bound-vs-d", action="store_true", help="the compression bound against d (docstring)")
    parser.add_argument("--m", type=int, default=5000)
    parser.add_argument("--dims", type=int, nargs="+", default=[100, 300, 500, 1000, 2000, 5000])
    parser.add_argument("--qat-epochs", type=int, default=DEFAULT_QAT_EPOCHS, help="fine-tuning epochs per level count")
    parser.add_argument(
        "--tried", type=int, default=1, help="settings tried on this S besides the --dims (counted in the union)"
    )
    parser.add_argument(
        "--prior-split", type=float, default=0.0, help="learn theta0 on this fraction of S; the bound uses the rest"
    )
    parser.add_argument(
        "--lr", type=float, default=SubspaceSettings.lr, help="Adam learning rate of the subspace fit (--subspace-lr)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads for both projections (1: small matmuls are not "
        "swamped by thread hand-off on a loaded machine)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.bound_vs_d:
        bound_vs_d(args.m, args.dims, args.qat_epochs, args.tried, args.prior_split, args.lr)
        return
    torch.manual_seed(0)
    sizes = [(20_000, 500)] if args.quick else [(20_000, 500), (100_000, 1000), (200_000, 1000)]
    repeats = 5 if args.quick else 20
    print(f"torch threads: {torch.get_num_threads()}")
    for n_params, dim in sizes:
        kron = KroneckerProjection(n_params, dim, seed=0)
        dense = torch.randn(n_params, dim) / n_params**0.5
        t_kron = seconds_per_call(projection_step(kron, dim), repeats)
        t_dense = seconds_per_call(projection_step(dense.__matmul__, dim), repeats)
        kron_mb = 4 * (kron.left.numel() + kron.right.numel()) / 2**20
        print(
            f"D = {n_params:>7}, d = {dim:>4}: kronecker {1e3 * t_kron:8.3f} ms, "
            f"dense {1e3 * t_dense:8.3f} ms "
            f"per P z + backward; speed-up x{t_dense / t_kron:.1f}; memory {kron_mb:.2f} MiB vs "
            f"{4 * dense.numel() / 2**20:.0f} MiB"
        )
    rng = np.random.default_rng(0)
    for dim in (1000,) if args.quick else (1000, 10_000):
        symbols = rng.choice(16, size=dim, p=rng.dirichlet(np.ones(16))).tolist()
        started = time.perf_counter()
        data, bits = encode_message(symbols, list(range(16)), dim)
        encoded = time.perf_counter() - started
        started = time.perf_counter()
        decode_message(data, bits, dim, 16)
        decoded = time.perf_counter() - started
        print(
            f"arithmetic coder, d = {dim}: encode {1e3 * encoded:.1f} ms, decode {1e3 * decoded:.1f} ms ({bits} bits)"
        )


if __name__ == "__main__":
    main()
