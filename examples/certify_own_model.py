"""Certify your own model: train a small network on mnist-embedded and certify it, all through the public API.

1. ``pacbayes.load_dataset`` gives the embedded MNIST train and test splits (disjoint by construction).
2. ``certified_subset`` returns the exact training examples ``certify`` will use for these options
   (binarised to digits 0-4 vs 5-9 for a one-logit model, then the seeded subset of m), so the
   network is trained on precisely the S the bounds are about.
3. A network of your own design (here a two-layer ReLU net, one logit) is trained by Adam until it
   classifies every point of S correctly: the marginal-likelihood bound is for the realisable case.
4. ``pacbayes.certify`` with the same ``CertifyOptions`` measures the errors and computes the bounds;
   the report is printed as ``pacbayes certify`` prints it, or written as JSON with ``--out``.

    python examples/certify_own_model.py [--m 500] [--width 256] [--seed 0] [--out report.json]
"""

import argparse

import torch
from torch import nn

import pacbayes
from pacbayes.data import take
from pacbayes.data.subsets import certified_subset
from pacbayes.report import render_text, write_json_atomically


def my_network(width: int) -> nn.Sequential:
    """Any single-logit classifier built from standard layers works; this one has an analytic NNGP kernel."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 1)
    )


def train_until_it_fits(model: nn.Module, data, *, seed: int, max_epochs: int = 200) -> int:
    """Adam on the logistic loss, seeded mini-batches of 64, until the training error is zero; returns epochs."""
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    targets = data.labels.to(torch.float32)
    for epoch in range(1, max_epochs + 1):
        model.train()
        for batch in torch.randperm(len(data), generator=generator).split(64):
            optimiser.zero_grad()
            nn.functional.binary_cross_entropy_with_logits(model(data.x[batch]).squeeze(-1), targets[batch]).backward()
            optimiser.step()
        model.eval()
        with torch.no_grad():
            if bool(((model(data.x).squeeze(-1) > 0).long() == data.labels).all()):
                return epoch
    raise SystemExit(f"the network did not fit its {len(data)} training points in {max_epochs} epochs")


def main(argv=None) -> pacbayes.Report:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=500, help="training points")
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--test-points", type=int, default=None, help="a seeded subset of the test split (all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subset, the weights and the bounds")
    parser.add_argument("--out", default=None, help="also write the JSON report here")
    args = parser.parse_args(argv)

    train = pacbayes.load_dataset("mnist-embedded", split="train")
    test = pacbayes.load_dataset("mnist-embedded", split="test")
    if args.test_points is not None:
        test = take(test, args.test_points, seed=args.seed)
    options = pacbayes.CertifyOptions(m=args.m, seed=args.seed)
    subset = certified_subset(train, m=options.m, seed=options.seed, negative_classes=options.negative_classes)

    torch.manual_seed(args.seed)
    model = my_network(args.width)
    epochs = train_until_it_fits(model, subset, seed=args.seed)
    report = pacbayes.certify(model, train, test, options)  # the whole train split: certify takes the same subset
    print(f"trained on the {len(subset)} points certify uses, {epochs} epochs to zero training error\n")
    print(render_text(report, title="my network on mnist-embedded"))
    if args.out:
        write_json_atomically(report.to_dict(), args.out)
    return report


if __name__ == "__main__":
    main()
