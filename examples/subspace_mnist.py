"""Random-subspace compression bound for a small CNN on the embedded MNIST data.

Trains the CNN in a d-dimensional random subspace around a seeded initialisation, quantises and
arithmetic-codes z, and prints the certified bound on the decoded model's error next to its train
and test error (Lotfi et al. 2022). The embedded data are MNIST's test split halved: m = 5,000
training points, 5,000 held-out test points.

    python examples/subspace_mnist.py                     # 10 classes, d = 500
    python examples/subspace_mnist.py --binary --dim 500  # digits 0-4 vs 5-9
    python examples/subspace_mnist.py --threads 1         # much faster on a loaded machine
    python examples/subspace_mnist.py --prior-split 0.5   # theta0 learned on half, bound on the rest

Count in ``--configurations`` every setting you tried on these data before this one (d, rate
weight, ...): the bound pays ln of it.
"""

import argparse
import time

import torch
from torch import nn

from pacbayes.data import binarise, load_dataset
from pacbayes.families.settings import SubspaceSettings
from pacbayes.models import reinitialise, zero_one_error
from pacbayes.subspace import save_subspace_model, subspace_bound, train_subspace_model
from pacbayes.subspace.evaluation import training_loss

DEFAULTS = SubspaceSettings()


def small_cnn(outputs: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 5, stride=2),
        nn.ReLU(),
        nn.Conv2d(16, 32, 5, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64),
        nn.ReLU(),
        nn.Linear(64, outputs),
    )


def train_uncompressed(net: nn.Module, train, *, epochs: int, seed: int) -> nn.Module:
    """The same architecture trained on all of S without a subspace (Adam, lr 1e-3, batch 64): the
    reference test error the compressed model is compared with."""
    net = reinitialise(net, seed)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for index in torch.randperm(len(train.labels), generator=generator).split(64):
            loss = training_loss(net(train.x[index]), train.labels[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return net


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=DEFAULTS.epochs, help="most epochs (stops at convergence)")
    parser.add_argument("--patience", type=int, default=DEFAULTS.patience, help="0: run all --epochs")
    parser.add_argument("--lr", type=float, default=DEFAULTS.lr)
    parser.add_argument("--qat-epochs", type=int, default=DEFAULTS.qat_epochs)
    parser.add_argument(
        "--rate-weight", type=float, default=DEFAULTS.rate_weight, help="code-length weight in fine-tuning"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--delta", type=float, default=0.05)
    parser.add_argument(
        "--configurations", type=int, default=1, help="settings tried on these data beyond the recorded grid"
    )
    parser.add_argument(
        "--prior-split", type=float, default=0.0, help="fraction of S that trains theta0 (the bound uses the rest)"
    )
    parser.add_argument("--prior-epochs", type=int, default=DEFAULTS.prior_epochs)
    parser.add_argument("--binary", action="store_true", help="digits 0-4 vs 5-9, one logit")
    parser.add_argument("--save", help="write the compressed model to this file")
    parser.add_argument("--threads", type=int, help="torch threads (1 is fastest on a busy machine)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    train, test = load_dataset("mnist-embedded", split="train"), load_dataset("mnist-embedded", split="test")
    if args.binary:
        train, test = binarise(train), binarise(test)
    net = small_cnn(1 if args.binary else 10)
    started = time.perf_counter()
    settings = SubspaceSettings(
        dim=args.dim,
        epochs=args.epochs,
        patience=args.patience,
        lr=args.lr,
        qat_epochs=args.qat_epochs,
        rate_weight=args.rate_weight,
        prior_split=args.prior_split,
        prior_epochs=args.prior_epochs,
        extra_configurations=args.configurations,
    )
    compressed = train_subspace_model(net, train.x, train.labels, settings, seed=args.seed, quiet=args.quiet)
    trained = time.perf_counter() - started
    result = subspace_bound(compressed, train.x, train.labels, delta=args.delta, test=(test.x, test.labels))[0]
    if args.save:
        save_subspace_model(compressed, args.save)
    d = result.details
    print(
        f"task: {'binary 0-4 vs 5-9' if args.binary else '10 classes'}, m = {d['m']}, "
        f"D = {d['n_params']} parameters, d = {d['d']}, {d['levels']} levels ({d['quantisation']})"
    )
    print(f"origin: {result.assumptions[1]}")
    print(f"message: {d['code_bits']} bits, KL = {d['kl_nats']:.1f} nats, {d['configurations']} configurations tried")
    print(f"training: {d['training']['epochs_run']} epochs run (at most {args.epochs}, patience {args.patience})")
    print(f"train error of the decoded model: {d['train_error']:.4f}")
    print(f"test error of the decoded model:  {d['test_error']:.4f}")
    print(
        f"certified bound on its error:     {result.value:.4f}  (delta = {args.delta}, "
        f"best form {d['best_form']}: " + ", ".join(f"{k} {v:.4f}" for k, v in d["forms"].items()) + ")"
    )
    print(f"training + compression took {trained:.1f} s; decoding check: {d['decoding_check']}")
    reference = train_uncompressed(net, train, epochs=args.prior_epochs, seed=args.seed)
    print(
        f"uncompressed reference (the same CNN trained on all {len(train.labels)} points for "
        f"{args.prior_epochs} epochs, not certified): test error {zero_one_error(reference, test.x, test.labels):.4f}"
    )


if __name__ == "__main__":
    main()
