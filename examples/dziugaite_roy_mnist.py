"""Stochastic-network certificates on MNIST (Dziugaite & Roy 2017; PBB, Pérez-Ortiz et al. 2021).

Data: ``mnist-embedded`` (a seeded subset of S of the train split; the 5,000-image test split for
the test error), pixels standardised with MNIST's mean/std, binary (digits 0-4 vs 5-9) or 10
classes. MODEL is a one-hidden-layer ReLU net built under ``torch.manual_seed(seed)`` (its initial
weights kept as the data-independent prior mean) and trained by SGD.

Each certificate names its mode:

- learned-from-prior (default, the tight certificate): the posterior starts at the prior (KL 0) and
  is trained on S with a PBB objective. With ``--prior-split F`` the prior mean is first learned,
  with dropout, on a held-out fraction F of S, and the bound uses only the other points;
- around-model (``--posterior-start model``): the posterior mean starts at MODEL's weights
  (Dziugaite & Roy's setting), optionally ``--fixed-mean``.

A bound at or above chance is printed with its one-line reason.

    python examples/dziugaite_roy_mnist.py                          # issue 15's setting (S = 2,000, binary)
    python examples/dziugaite_roy_mnist.py --classes 10
    python examples/dziugaite_roy_mnist.py --m 5000 --hidden 600 --prior-split 0 --train-epochs 2 \
        --objective classic --surrogate sigmoid --prior-std 0.015 --mc-sampling point --per-point-training \
        --mc-samples 200                                                     # issue 15's data-independent setting
    python examples/dziugaite_roy_mnist.py --posterior-start model --lambda-grid --objective dr
"""

import argparse
import time

import torch
import torch.nn as nn

from pacbayes.data import MNIST_MEAN_STD, binarise, load_dataset, normalise, take
from pacbayes.families.settings import DziugaiteRoySettings
from pacbayes.models import zero_one_error
from pacbayes.stochastic import OBJECTIVES, certify_stochastic_network
from pacbayes.stochastic.bound import POSTERIOR_STARTS
from pacbayes.stochastic.local import MC_SAMPLINGS
from pacbayes.stochastic.train import SURROGATES

DEFAULTS = DziugaiteRoySettings()


def load_mnist(split: str, classes: int, m=None, seed: int = 0):
    """(x, labels) of mnist-embedded ``split``: m points drawn with ``seed`` (all when None), binarised
    when ``classes`` is 2, standardised, flattened."""
    ds = load_dataset("mnist-embedded", split=split)
    if m is not None and m < len(ds):
        ds = take(ds, m, seed=seed)
    if classes == 2:
        ds = binarise(ds)
    ds = normalise(ds, "standard", mean=MNIST_MEAN_STD[0], std=MNIST_MEAN_STD[1])
    return ds.x.flatten(1), ds.labels


def train_network(x, labels, *, hidden: int, classes: int, seed: int, epochs: int, lr=0.01, batch_size=100):
    """A 784-hidden-out ReLU net (one logit when binary) from torch.manual_seed(seed), trained by SGD
    (momentum 0.9) on the logistic / cross-entropy loss.

    Returns the net, its initial state dict (the data-independent prior mean) and the training seconds.
    """
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(x.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, 1 if classes == 2 else classes))
    init = {k: v.clone() for k, v in net.state_dict().items()}
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    order_gen = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    for _ in range(epochs):
        for idx in torch.randperm(len(labels), generator=order_gen).split(batch_size):
            opt.zero_grad()
            out = net(x[idx])
            if classes == 2:
                loss = nn.functional.binary_cross_entropy_with_logits(out[:, 0], labels[idx].float())
            else:
                loss = nn.functional.cross_entropy(out, labels[idx])
            loss.backward()
            opt.step()
    return net, init, time.perf_counter() - started


def certify_and_test(title, net, init, x, labels, x_test, labels_test, args) -> dict:
    started = time.perf_counter()
    settings = DziugaiteRoySettings(
        init_state=init,
        objective=args.objective,
        surrogate=args.surrogate,
        sigmoid_temperature=args.sigmoid_temperature,
        posterior_start=args.posterior_start,
        prior_split=args.prior_split,
        prior_std=args.prior_std,
        lambda_grid=args.lambda_grid,
        posterior_epochs=args.posterior_epochs,
        mc_samples=args.mc_samples,
        mc_sampling=args.mc_sampling,
        per_point_training=args.per_point_training,
        fixed_mean=args.fixed_mean,
    )
    cert = certify_stochastic_network(net, x, labels, settings, seed=args.seed, device=args.device, quiet=args.quiet)
    certify_seconds = time.perf_counter() - started
    result, d = cert.result, cert.result.details
    test_error = cert.error(x_test, labels_test, n=args.test_samples)
    print(f"--- {title}: mode {d['mode']}, prior_split = {args.prior_split} (bound on m = {d['m']} points) ---")
    print(f"{result.name}: certified bound on the error of {result.certifies}:")
    print(
        f"    bound {result.value:.4f}   (delta = {sum(result.delta.values()):.3g}; "
        f"Dziugaite-Roy B_RE form {d['dziugaite_roy_form']:.4f})"
    )
    print(
        f"    stochastic net: train error (MC, {d['mc_draws']:,} {d['mc_sampling']} draws) {d['sampled_error']:.4f} "
        f"(bounded by {d['empirical_error_bound']:.4f}), test error (MC, n = {args.test_samples}) "
        f"{test_error:.4f}; its mean net's error on the bound's points {d['mean_network_error']:.4f}"
    )
    grid = f" (grid j = {d['grid_index']})" if d["grid_index"] is not None else " (fixed in advance)"
    print(
        f"    KL {d['kl']:.2f} nats (at the start {d['kl_at_start']:.2f}), prior std {d['prior_std']:.4f}{grid}, "
        f"median posterior std {d['posterior_std_median']:.4f}"
    )
    print(f"    prior: {d['prior']}")
    if d["why_vacuous"]:
        print(f"    VACUOUS: {d['why_vacuous']}")
    print(f"    certification {certify_seconds:.1f} s on {d['device']}", flush=True)
    return {"bound": result.value, "test_error": test_error, "certify_seconds": certify_seconds, "result": result}


def run_labels(title, x, labels, x_test, labels_test, args) -> dict:
    """Train MODEL on (x, labels), then certify."""
    net, init, train_seconds = train_network(
        x, labels, hidden=args.hidden, classes=args.classes, seed=args.seed, epochs=args.train_epochs
    )
    print(
        f"=== {title}: {sum(p.numel() for p in net.parameters())} parameters; MODEL train error "
        f"{zero_one_error(net, x, labels):.4f}, test error {zero_one_error(net, x_test, labels_test):.4f} "
        f"({train_seconds:.1f} s of SGD) ===",
        flush=True,
    )
    run = certify_and_test(title, net, init, x, labels, x_test, labels_test, args)
    return {**run, "train_seconds": train_seconds}


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, choices=(2, 10), default=2)
    parser.add_argument("--m", type=int, default=2000, help="size of S, drawn from the 5,000 training images")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--train-epochs", type=int, default=10, help="SGD epochs of MODEL")
    parser.add_argument("--objective", choices=OBJECTIVES, default="quad")
    parser.add_argument("--surrogate", choices=SURROGATES, default="auto", help="training risk (sigmoid: smooth 0-1)")
    parser.add_argument("--sigmoid-temperature", type=float, default=DEFAULTS.sigmoid_temperature)
    parser.add_argument("--posterior-start", choices=POSTERIOR_STARTS, default="prior")
    parser.add_argument("--prior-split", type=float, default=0.5, help="0: prior at MODEL's initial weights")
    parser.add_argument("--prior-std", type=float, default=DEFAULTS.prior_std)
    parser.add_argument("--lambda-grid", action="store_true")
    parser.add_argument("--posterior-epochs", type=int, default=DEFAULTS.posterior_epochs)
    parser.add_argument("--mc-samples", type=int, default=20000)
    parser.add_argument(
        "--mc-sampling",
        choices=MC_SAMPLINGS,
        default="auto",
        help="point: a draw per point; auto: per point where the model allows it",
    )
    parser.add_argument("--per-point-training", action="store_true", help="local reparameterisation in training")
    parser.add_argument("--test-samples", type=int, default=100)
    parser.add_argument("--fixed-mean", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 is fastest on a loaded 2-core machine)"
    )
    parser.add_argument("--random-labels", action="store_true", help="also certify a net trained on random labels")
    parser.add_argument("--quiet", action="store_true")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    x, labels = load_mnist("train", args.classes, args.m, args.seed)
    x_test, labels_test = load_mnist("test", args.classes)
    name = "binary" if args.classes == 2 else "10-class"
    runs = {
        f"{name} MNIST, true labels": run_labels(f"{name} MNIST, true labels", x, labels, x_test, labels_test, args)
    }
    if args.random_labels:
        noise = torch.randint(0, args.classes, labels.shape, generator=torch.Generator().manual_seed(args.seed + 1))
        title = f"{name} MNIST, random training labels"
        runs[title] = run_labels(title, x, noise, x_test, labels_test, args)
    return runs


if __name__ == "__main__":
    main()
