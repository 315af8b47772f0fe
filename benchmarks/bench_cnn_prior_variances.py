"""The MNIST CNN's marginal-likelihood bound under three NNGP priors (a diagnostic, EP estimates only).

The field table's 4-layer CNN without pooling (Valle-Pérez et al. 2019) on m binary mnist-train points,
drawn as ``certify --m`` draws them. The kernel is the analytic NNGP of the network under three
initialisation priors: PyTorch's default (weights and biases of variance 1/(3 fan-in), what pacbayes
certifies), sigma_w^2 = sigma_b^2 = 1 (the variances Valle-Pérez et al. state), and sigma_w^2 = 1 with no
bias. For each: EP's ln P(S), the bound at it in pacbayes' form (delta = 0.05) and in the authors'
McAllester form (delta = 2^-10), and the kernel's mean off-diagonal entry over its mean diagonal.

``--inputs`` adds input preprocessings besides the field table's pixels in [0, 1] (``unit``): ``standardised``
((x - 0.1307) / 0.3081, MNIST's published mean and std) and ``image-centred`` (each image minus its own mean;
a per-input map, so the prior still ignores S). ``--nuggets`` adds EP runs on K + c mean(diag K) I for each c:
the orthant probability of a prior with independent per-point noise, which is what a probit likelihood
computes (Valle-Pérez et al. used GPy's probit EP; see docs/evidence.md).

``--priors`` picks among the three priors (all by default). ``--architectures`` adds networks: ``authors-code``,
the CNN the authors' public code (nn-pacbayes) builds for its ``cnn`` network, four convolutions alternating
5x5 'valid' and 2x2 'same' (padded on the right and bottom), ReLU, no pooling, a linear read-out (the field
table's CNN has four 5x5 'same' convolutions); ``fc``, the field table's FC (two hidden ReLU layers), a
calibration: the authors published an FC figure too (0.169 at m = 10,000), so their stated variances can be
checked on a network whose kernel takes seconds. An EP that diverges is reported as that row's result.

These are EP estimates, not certificates, and choosing a prior after seeing them would have to be paid
for in the bound (a union over the priors tried). The question they answer is whether the authors'
variances explain why our CNN bound at m = 10,000 is above their published one.

    python benchmarks/bench_cnn_prior_variances.py --data-root DATA --m 1000
    python benchmarks/bench_cnn_prior_variances.py --data-root DATA --m 1000 --architectures field,authors-code
    python benchmarks/bench_cnn_prior_variances.py --data-root DATA --m 1000 --inputs unit,standardised,image-centred
    python benchmarks/bench_cnn_prior_variances.py --data-root DATA --m 1000 --nuggets 0.01,0.1,1
    python benchmarks/bench_cnn_prior_variances.py --data-root DATA --m 10000 --architectures fc
    python benchmarks/bench_cnn_prior_variances.py --data-root DATA --m 10000 --priors "no bias"
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
from pacbayes.errors import ConvergenceError
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
    "fc": lambda: load_example("field_table").architectures(1, 28, quick=False)["fc"](),
}
"""name -> the network: the field table's CNN (5x5 'same' convolutions), the authors' code's CNN, or the field
table's FC (two hidden ReLU layers; the calibration: the authors published an FC figure too)."""

INPUTS = {
    "unit": lambda x: x,
    "standardised": lambda x: (x - 0.1307) / 0.3081,
    "image-centred": lambda x: x - x.flatten(1).mean(1).view(-1, *[1] * (x.dim() - 1)),
}
"""name -> the map applied to every image (pixels in [0, 1]) before the kernel."""


def names_from(parser: argparse.ArgumentParser, text: str, known: dict, what: str) -> list:
    """The comma-separated names in ``text``, each checked against ``known`` (a parser error names the choices)."""
    names = [name for name in text.split(",") if name]
    unknown = [name for name in names if name not in known]
    if unknown:
        parser.error(f"unknown {what} {unknown[0]!r}; choose from {', '.join(known)}")
    return names


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True, help="folder holding mnist-train/ and mnist/")
    parser.add_argument("--m", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--architectures", default="field", help=f"comma-separated, of {', '.join(ARCHITECTURES)}")
    parser.add_argument("--priors", default=",".join(PRIORS), help=f"comma-separated, of {', '.join(PRIORS)}")
    parser.add_argument("--inputs", default="unit", help=f"comma-separated, of {', '.join(INPUTS)}")
    parser.add_argument("--nuggets", default="", help="comma-separated c > 0: also EP on K + c mean(diag K) I")
    args = parser.parse_args(argv)
    names = names_from(parser, args.architectures, ARCHITECTURES, "architecture")
    inputs = names_from(parser, args.inputs, INPUTS, "input preprocessing")
    priors = names_from(parser, args.priors, PRIORS, "prior")
    try:
        nuggets = [0.0] + [float(c) for c in args.nuggets.split(",") if c]
    except ValueError:
        parser.error(f"--nuggets takes comma-separated numbers, got {args.nuggets!r}")
    if min(nuggets[1:], default=1.0) <= 0:
        parser.error("--nuggets must be positive")
    train = load_dataset(os.path.join(args.data_root, "mnist-train"), split="train")
    test = load_dataset(os.path.join(args.data_root, "mnist"), split="test")
    torch.manual_seed(args.seed)
    models = {name: ARCHITECTURES[name]() for name in names}
    options = CertifyOptions(bounds=("marginal",), m=args.m, seed=args.seed, quiet=True)
    subset, _, _ = prepare_data(models[names[0]], train, test, options)
    pixels, y = subset.x.double(), subset.labels.double() * 2 - 1
    print(f"MNIST (mnist-train), binary, m = {args.m:,}, {', '.join(names)}; EP estimates")
    rows = []
    grid = itertools.product(models.items(), inputs, priors)
    for (architecture, model), preprocessing, name in grid:
        sigma_w, sigma_b = PRIORS[name]
        x = INPUTS[preprocessing](pixels)
        started = time.perf_counter()
        K = nngp_for_module(model, tuple(x.shape[1:]), sigma_w, sigma_b).matrix(x).double()
        seconds = time.perf_counter() - started
        diagonal = K.diagonal().mean()
        off_diagonal = float((K.sum() - K.trace()) / (args.m**2 - args.m) / diagonal)
        for nugget in nuggets:
            row = {"architecture": architecture, "inputs": preprocessing, "prior": name, "nugget": nugget}
            try:
                log_evidence = ep_log_evidence(K + nugget * diagonal * torch.eye(args.m, dtype=K.dtype), y).log_evidence
            except ConvergenceError as error:  # reported as the row's result: the other settings still run
                row["error"] = str(error)
                result = f"{error};"
            else:
                row["log_evidence_ep"] = log_evidence
                row["bound"] = marginal_likelihood_bound(log_evidence, args.m, 0.05)
                row["authors_form"] = marginal_likelihood_bound(log_evidence, args.m, 2.0**-10, "mcallester")
                result = (
                    f"ln P(S) {log_evidence:9.2f}, bound {row['bound']:.4f}, authors' form {row['authors_form']:.4f},"
                )
            row["off_diagonal_over_diagonal"] = off_diagonal
            rows.append(row)
            print(
                f"{architecture:>12}, {preprocessing:>13}, {name:>26}, nugget {nugget:g}: {result} K off-diagonal / "
                f"diagonal {off_diagonal:.3f}; kernel {seconds:.0f} s",
                flush=True,
            )
    return rows


if __name__ == "__main__":
    main()
