"""Dziugaite-Roy / PBB certificate for a 784-600-1 ReLU network on binary MNIST (digits 0-4 vs 5-9).

Data: ``mnist-embedded`` (train split, m = 5,000; test split 5,000), pixels standardised with
MNIST's mean/std. The network is built under ``torch.manual_seed(seed)``, its initial weights kept
as the prior mean, then trained by SGD. The certificate bounds the error of the stochastic network
N(w, diag(s)) around the trained weights (Dziugaite & Roy 2017); its test error is measured by
Monte Carlo on the test split. With a prior split F > 0 the prior mean is instead learned on a
fraction F of the training set, starting from the initial weights (PBB's data-dependent prior), and
the bound uses only the other points. The same pipeline on random labels must give a vacuous bound.

    python examples/dziugaite_roy_mnist.py                 # true labels (two priors), then random labels
    python examples/dziugaite_roy_mnist.py --objective quad --prior-splits 0 --skip-random
"""

import argparse
import time

import torch
import torch.nn as nn

from pacbayes.data import MNIST_MEAN_STD, binarise, load_dataset, normalise
from pacbayes.models import zero_one_error
from pacbayes.stochastic import OBJECTIVES, Schedule, certify_stochastic_network


def load_binary_mnist(split: str):
    ds = normalise(
        binarise(load_dataset("mnist-embedded", split=split)), "standard", mean=MNIST_MEAN_STD[0], std=MNIST_MEAN_STD[1]
    )
    return ds.x.flatten(1), ds.labels


def train_network(x, labels, *, seed: int, epochs: int, lr: float = 0.01, batch_size: int = 100):
    """A 784-600-1 ReLU net from torch.manual_seed(seed), trained by SGD (momentum 0.9) on the logistic loss.

    Returns the net, its initial state dict (the prior mean) and the training seconds.
    """
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(x.shape[1], 600), nn.ReLU(), nn.Linear(600, 1))
    init = {k: v.clone() for k, v in net.state_dict().items()}
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    order_gen = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(labels), generator=order_gen)
        for start in range(0, len(labels), batch_size):
            idx = order[start : start + batch_size]
            opt.zero_grad()
            nn.functional.binary_cross_entropy_with_logits(net(x[idx])[:, 0], labels[idx].float()).backward()
            opt.step()
    return net, init, time.perf_counter() - started


def certify_and_test(title, net, init, x, labels, x_test, labels_test, prior_split, args) -> dict:
    started = time.perf_counter()
    cert = certify_stochastic_network(
        net,
        x,
        labels,
        init_state=init,
        objective=args.objective,
        prior_split=prior_split,
        mc_samples=args.mc_samples,
        seed=args.seed,
        fixed_mean=args.fixed_mean,
        schedule=Schedule(epochs=args.posterior_epochs),
        device=args.device,
        quiet=args.quiet,
    )
    certify_seconds = time.perf_counter() - started
    result, d = cert.result, cert.result.details
    test_error = cert.error(x_test, labels_test, n=args.test_samples)
    print(f"--- {title}: prior_split = {prior_split} (bound on m = {d['m']} points) ---")
    print(f"{result.name}: certified bound on the error of {result.certifies}:")
    print(
        f"    bound {result.value:.4f}   (delta = {sum(result.delta.values()):.3g}; "
        f"Dziugaite-Roy B_RE form {d['dziugaite_roy_form']:.4f})"
    )
    print(
        f"    stochastic net: train error (MC, n = {d['mc_samples']}) {d['sampled_error']:.4f}, "
        f"test error (MC, n = {args.test_samples}) {test_error:.4f}; its mean net's train error "
        f"{d['mean_network_error']:.4f}"
    )
    print(
        f"    KL {d['kl']:.1f} nats, lambda {d['prior_variance']:.3e} (grid j = {d['grid_index']}), "
        f"median posterior std {d['posterior_std_median']:.3e}"
    )
    print(f"    prior: {d['prior']}")
    print(
        f"    certification {certify_seconds:.1f} s on {d['device']}; "
        f"{'VACUOUS' if result.value >= 0.5 else 'non-vacuous'} (chance = 0.5)",
        flush=True,
    )
    return {"bound": result.value, "test_error": test_error, "certify_seconds": certify_seconds, "result": result}


def run_labels(title, x, labels, x_test, labels_test, prior_splits, args) -> dict:
    """Train the network on (x, labels), then certify it once per prior split."""
    net, init, train_seconds = train_network(x, labels, seed=args.seed, epochs=args.train_epochs)
    print(
        f"=== {title}: {sum(p.numel() for p in net.parameters())} parameters; trained net train error "
        f"{zero_one_error(net, x, labels):.4f}, test error {zero_one_error(net, x_test, labels_test):.4f} "
        f"({train_seconds:.1f} s of SGD) ===",
        flush=True,
    )
    runs = {}
    for split in prior_splits:
        run = certify_and_test(title, net, init, x, labels, x_test, labels_test, split, args)
        runs[f"{title}, prior_split={split}"] = {**run, "train_seconds": train_seconds}
    return runs


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objective", choices=OBJECTIVES, default="dr")
    parser.add_argument("--train-epochs", type=int, default=2)
    parser.add_argument("--posterior-epochs", type=int, default=100)
    parser.add_argument("--mc-samples", type=int, default=1000)
    parser.add_argument("--test-samples", type=int, default=100)
    parser.add_argument(
        "--prior-splits",
        type=float,
        nargs="+",
        default=[0.0, 0.5],
        help="certify once per value (0: prior at the init weights; > 0: PBB data-dependent)",
    )
    parser.add_argument("--fixed-mean", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 is fastest on a loaded 2-core machine)"
    )
    parser.add_argument(
        "--skip-random", action="store_true", help="skip the random-label run (it uses the last prior split)"
    )
    parser.add_argument("--quiet", action="store_true")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    x, labels = load_binary_mnist("train")
    x_test, labels_test = load_binary_mnist("test")
    runs = run_labels("binary MNIST, true labels", x, labels, x_test, labels_test, args.prior_splits, args)
    if not args.skip_random:
        noise = torch.randint(0, 2, labels.shape, generator=torch.Generator().manual_seed(args.seed + 1))
        runs.update(
            run_labels(
                "binary MNIST, random training labels", x, noise, x_test, labels_test, args.prior_splits[-1:], args
            )
        )
    return runs


if __name__ == "__main__":
    main()
