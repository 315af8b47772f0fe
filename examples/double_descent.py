"""Model-wise double descent with label noise, and what each bound family says about it.

Nakkiran et al. ("Deep Double Descent", ICLR 2020) find that with label noise the test error of
networks trained for a fixed budget rises as the width approaches the interpolation threshold
(the smallest width that fits the noisy training set) and falls again beyond it. Here: ``--m``
binarised mnist-embedded training images (digits 0-4 vs 5-9) with label noise
(``CertifyOptions(corrupt=c)``, pacbayes.data.corrupt_labels: each label independently, with
probability c, replaced by a uniform class, i.e. flipped with probability c/2), and one-hidden-
layer ReLU nets (flatten, Linear(784, w), ReLU, Linear(w, 1); PyTorch's default initialisation)
of widths w, each trained with full-batch Adam for ``--epochs`` epochs or until zero training
error, whichever comes first.

Every family is certified where it applies, at one delta (pacbayes.certify):
- marginal: the marginal-likelihood bound (Valle-Pérez et al. 2019), only for nets with zero
  training error (it is a realisable-case bound); its NNGP prior does not depend on the width,
  so it is one number for every interpolating width;
- dziugaite-roy: the stochastic network around the trained weights, prior at the initial weights
  (Dziugaite & Roy 2017);
- subspace: a compressed model trained in a d = ``--subspace-dim`` random subspace of the same
  architecture (Lotfi et al. 2022).
Bounds and test errors are for the corrupted distribution (test labels corrupted the same way);
the test error on clean labels is printed too.

    python examples/double_descent.py [--m 1000] [--corrupt 0.2] [--widths 1,2,4,8,16,64,256]
    python examples/double_descent.py --quick     # seconds (for the tests)
"""

import argparse
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from pacbayes.certification import CertifyOptions, certify, prepare_data  # noqa: E402
from pacbayes.data import binarise, load_dataset, take  # noqa: E402
from pacbayes.errors import InputError  # noqa: E402
from pacbayes.families.dziugaite_roy import DziugaiteRoySettings  # noqa: E402
from pacbayes.families.subspace import SubspaceSettings  # noqa: E402


def network(width: int) -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, width), nn.ReLU(), nn.Linear(width, 1))


def train_fixed_budget(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float) -> tuple[int, float]:
    """Full-batch Adam on the logistic loss for ``epochs`` steps or until zero training error; (epochs, train error)."""
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.BCEWithLogitsLoss()
    targets = y.to(torch.float32)
    for epoch in range(1, epochs + 1):
        optimiser.zero_grad()
        logits = model(x).squeeze(-1)
        error = float(((logits > 0) != (y > 0)).to(torch.float64).mean())
        if error == 0.0:
            return epoch - 1, 0.0
        loss_fn(logits, targets).backward()
        optimiser.step()
    with torch.no_grad():
        return epochs, float(((model(x).squeeze(-1) > 0) != (y > 0)).to(torch.float64).mean())


def run(args) -> list:
    train = take(binarise(load_dataset("mnist-embedded", split="train")), args.m, seed=args.seed)
    test = load_dataset("mnist-embedded", split="test")
    if args.test_size:
        test = take(test, args.test_size, seed=args.seed)
    rows = []
    for width in args.widths:
        started = time.perf_counter()
        torch.manual_seed(args.seed)
        model = network(width)
        initial = {name: value.clone() for name, value in model.state_dict().items()}
        base = CertifyOptions(corrupt=args.corrupt, seed=args.seed, quiet=True)
        noisy_train, _, _ = prepare_data(model, train, test, base)
        epochs, train_error = train_fixed_budget(model, noisy_train.x, noisy_train.labels, args.epochs, args.lr)
        families = ("marginal",) * (train_error == 0.0) + ("dziugaite-roy", "subspace")
        options = CertifyOptions(
            bounds=families,
            corrupt=args.corrupt,
            delta=args.delta,
            seed=args.seed,
            quiet=True,
            dziugaite_roy=DziugaiteRoySettings(init_state=initial, mc_samples=args.mc_samples),
            subspace=SubspaceSettings(dim=args.subspace_dim),
        )
        report = certify(model, train, test, options)
        row = {
            "width": width,
            "parameters": sum(p.numel() for p in model.parameters()),
            "epochs": epochs,
            "train_error": report.train_error,
            "test_error": report.baselines.get("test_error_corrupted_labels", report.test_error),
            "test_error_clean": report.test_error,
            "bounds": {b.name: b.value for b in report.bounds if not b.name.endswith("-clean-labels")},
            "seconds": time.perf_counter() - started,
        }
        rows.append(row)
        cells = ", ".join(f"{name} {value:.4f}" for name, value in row["bounds"].items())
        print(
            f"width {width:>4} ({row['parameters']:>7,} parameters, {epochs:>4} epochs): train error "
            f"{row['train_error']:.4f}, test error {row['test_error']:.4f} "
            f"(clean labels {row['test_error_clean']:.4f}); "
            f"{cells} ({row['seconds']:.0f} s)",
            flush=True,
        )
    return rows


def plot(rows, args) -> None:
    widths = [r["width"] for r in rows]
    figure, ax = plt.subplots(figsize=(7.2, 4.6))
    ax.plot(widths, [r["train_error"] for r in rows], "v:", color="grey", label="training error (noisy labels)")
    ax.plot(widths, [r["test_error"] for r in rows], "^-", color="black", label="test error (labels corrupted alike)")
    ax.plot(widths, [r["test_error_clean"] for r in rows], "^--", color="dimgrey", label="test error (clean labels)")
    names = sorted({name for r in rows for name in r["bounds"]})
    for name in names:
        points = [(r["width"], r["bounds"][name]) for r in rows if name in r["bounds"]]
        ax.plot(*zip(*points, strict=False), "o-", label=f"{name} bound")
    fitted = [r["width"] for r in rows if r["train_error"] == 0.0]
    if fitted:
        ax.axvline(min(fitted), color="red", lw=0.8, ls="--", label=f"interpolation threshold (w = {min(fitted)})")
    ax.set_xscale("log", base=2)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("hidden width w (one hidden layer)")
    ax.set_ylabel("error")
    ax.set_title(
        f"Double descent: binary mnist-embedded, m = {args.m}, label corruption c = {args.corrupt} "
        f"({args.epochs} Adam epochs max)",
        fontsize=9,
    )
    ax.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(args.out, dpi=120)


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=1000)
    parser.add_argument("--corrupt", type=float, default=0.2, help="label corruption fraction c")
    parser.add_argument("--widths", default="1,2,4,8,16,64,256")
    parser.add_argument("--epochs", type=int, default=2000, help="full-batch Adam steps at most")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--subspace-dim", type=int, default=250)
    parser.add_argument("--mc-samples", type=int, default=1000, help="Dziugaite-Roy posterior draws")
    parser.add_argument("--test-size", type=int, default=0, help="test images used (0: all 5,000)")
    parser.add_argument("--delta", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="double_descent.png")
    parser.add_argument("--quick", action="store_true", help="m = 100, widths 1 and 16, small budgets")
    args = parser.parse_args(argv)
    if args.quick:
        args.m, args.widths, args.epochs, args.subspace_dim, args.mc_samples, args.test_size = (
            100,
            "1,16",
            300,
            20,
            100,
            500,
        )
    try:
        args.widths = [int(w) for w in args.widths.split(",")]
    except ValueError:
        raise InputError(f"--widths must be comma-separated integers, got {args.widths!r}") from None
    if min(args.widths) < 1:
        raise InputError(f"--widths must be positive, got {args.widths}")
    return args


def main(argv=None) -> list:
    args = parse(argv)
    rows = run(args)
    plot(rows, args)
    print(f"saved {args.out}")
    return rows


if __name__ == "__main__":
    main()
