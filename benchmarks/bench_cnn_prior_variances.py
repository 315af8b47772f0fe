"""The MNIST CNN's marginal-likelihood bound under three NNGP priors (a diagnostic, EP estimates only).

The field table's 4-layer CNN without pooling (Valle-Pérez et al. 2019) on m binary mnist-train points,
drawn as ``certify --m`` draws them. The kernel is the analytic NNGP of the network under three
initialisation priors: PyTorch's default (weights and biases of variance 1/(3 fan-in), what pacbayes
certifies), sigma_w^2 = sigma_b^2 = 1 (the variances Valle-Pérez et al. state), and sigma_w^2 = 1 with no
bias. For each: EP's ln P(S), the bound at it in pacbayes' form (delta = 0.05) and in the authors'
McAllester form (delta = 2^-10), and the kernel's mean off-diagonal entry over its mean diagonal.

``--architectures`` adds a second CNN: the one the authors' public code (nn-pacbayes) builds for its
``cnn`` network, four convolutions alternating 5x5 'valid' and 2x2 'same' (padded on the right and bottom), ReLU,
no pooling, a linear read-out; the field table's CNN has four 5x5 'same' convolutions.

These are EP estimates, not certificates, and choosing a prior after seeing them would have to be paid
for in the bound (a union over the priors tried). The question they answer is whether the authors'
variances explain why our CNN bound at m = 10,000 is above their published one.

    python benchmarks/bench_cnn_prior_variances.py --data-root DATA --m 1000
    python benchmarks/bench_cnn_prior_variances.py --data-root DATA --m 1000 --architectures field,authors-code
"""

import argparse
import itertools
import os
import time

import torch
from _examples import load_example
from torch import nn

from pacbayes.bounds import marginal_likelihood_bound
from pacbayes.certification import CertifyOptions, prepare_data
from pacbayes.data import load_dataset
from pacbayes.evidence.ep import ep_log_evidence
from pacbayes.kernels.recognise import nngp_for_module

PRIORS = {"PyTorch default": (None, None), "sigma_w^2 = sigma_b^2 = 1": (1.0, 1.0), "no bias": (1.0, 0.0)}
"""name -> (sigma_w, sigma_b) of every weighted layer; None: PyTorch's default initialisation."""


def authors_code_cnn(width: int = 32, size: int = 28) -> nn.Sequential:
    """Four convolutions alternating 5x5 'valid' and 2x2 'same' (the authors' code's ``cnn``), ReLU, a read-out."""
    layers, channels = [], 1
    for i in range(4):
        valid = i % 2 == 0
        layers += [nn.Conv2d(channels, width, 5 if valid else 2, padding=0 if valid else "same"), nn.ReLU()]
        size -= 4 if valid else 0
        channels = width
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(width * size * size, 1))


ARCHITECTURES = {
    "field": lambda: load_example("field_table").VallePerezCnn(1, 28),
    "authors-code": authors_code_cnn,
}
"""name -> the CNN: the field table's (5x5 'same' convolutions) or the authors' code's."""


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True, help="folder holding mnist-train/ and mnist/")
    parser.add_argument("--m", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--architectures", default="field", help=f"comma-separated, of {', '.join(ARCHITECTURES)}")
    args = parser.parse_args(argv)
    names = [name for name in args.architectures.split(",") if name]
    unknown = [name for name in names if name not in ARCHITECTURES]
    if unknown:
        parser.error(f"unknown architecture {unknown[0]!r}; choose from {', '.join(ARCHITECTURES)}")
    train = load_dataset(os.path.join(args.data_root, "mnist-train"), split="train")
    test = load_dataset(os.path.join(args.data_root, "mnist"), split="test")
    torch.manual_seed(args.seed)
    models = {name: ARCHITECTURES[name]() for name in names}
    options = CertifyOptions(bounds=("marginal",), m=args.m, seed=args.seed, quiet=True)
    subset, _, _ = prepare_data(models[names[0]], train, test, options)
    x, y = subset.x.double(), subset.labels.double() * 2 - 1
    print(f"MNIST (mnist-train), binary, m = {args.m:,}, 4-layer CNNs without pooling; EP estimates")
    rows = []
    for (architecture, model), (name, (sigma_w, sigma_b)) in itertools.product(models.items(), PRIORS.items()):
        started = time.perf_counter()
        K = nngp_for_module(model, tuple(x.shape[1:]), sigma_w, sigma_b).matrix(x).double()
        seconds = time.perf_counter() - started
        log_evidence = ep_log_evidence(K, y).log_evidence
        diagonal = K.diagonal().mean()
        row = {
            "architecture": architecture,
            "prior": name,
            "log_evidence_ep": log_evidence,
            "bound": marginal_likelihood_bound(log_evidence, args.m, 0.05),
            "authors_form": marginal_likelihood_bound(log_evidence, args.m, 2.0**-10, "mcallester"),
            "off_diagonal_over_diagonal": float((K.sum() - K.trace()) / (args.m**2 - args.m) / diagonal),
        }
        rows.append(row)
        print(
            f"{architecture:>12}, {name:>26}: ln P(S) {log_evidence:9.2f}, bound {row['bound']:.4f}, authors' form "
            f"{row['authors_form']:.4f}, K off-diagonal / diagonal {row['off_diagonal_over_diagonal']:.3f}; "
            f"kernel {seconds:.0f} s",
            flush=True,
        )
    return rows


if __name__ == "__main__":
    main()
