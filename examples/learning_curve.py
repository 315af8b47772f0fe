"""Learning curve: every bound family and the test error against the training-set size m.

For each m, a seeded subset of m mnist-embedded training images -- binarised (digits 0-4 vs 5-9,
``--classes 2``) or all ten digits (``--classes 10``) -- the demo network (flatten, 2 x 512 ReLU,
one logit, or ten) trained to zero training error, and ``pacbayes.certification`` with the bound
families of ``--bounds`` (default: every family) at one delta: the marginal-likelihood bound,
Dziugaite-Roy (prior centred at the network's own initial weights) and the random-subspace
compression bound (a compressed model trained in a d = 500 subspace from a seeded random start).
Valle-Pérez et al. (2019, Fig. 1) show the marginal-likelihood bound following the
learning curve's trend; the hold-out bound on the 5,000 test images is drawn for scale. With ten
classes the marginal bound is the multi-class bound of ten GPs sharing the one-logit NNGP kernel.

Label noise is the other axis of the same picture: see ``examples/label_corruption.py``.

    python examples/learning_curve.py [--sizes 100,200,500,1000] [--out learning_curve.png]
    python examples/learning_curve.py --classes 10 --bounds marginal --out learning_curve_10.png
"""

import argparse
import json
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from pacbayes.certification import CertifyOptions, certify  # noqa: E402
from pacbayes.data import binarise, load_dataset, take  # noqa: E402
from pacbayes.demo import demo_network, train_to_zero_error  # noqa: E402
from pacbayes.families import FAMILIES  # noqa: E402
from pacbayes.families.dziugaite_roy import DziugaiteRoySettings  # noqa: E402
from pacbayes.families.subspace import SubspaceSettings  # noqa: E402

SUBSPACE_DIM = 500


def run(
    sizes,
    seed: int,
    delta: float,
    quiet: bool,
    classes: int = 2,
    families: tuple = tuple(FAMILIES),
    marginal_sizes=None,
):
    """One row per m; the marginal family runs only at ``marginal_sizes`` (None: every m)."""
    pool = load_dataset("mnist-embedded", split="train")
    pool = binarise(pool) if classes == 2 else pool
    test = load_dataset("mnist-embedded", split="test")
    rows = []
    for m in sizes:
        started = time.perf_counter()
        train = take(pool, m, seed=seed)
        torch.manual_seed(seed)
        model = demo_network(outputs=1 if classes == 2 else classes)
        initial_weights = {name: value.clone() for name, value in model.state_dict().items()}
        epochs = train_to_zero_error(model, train, seed=seed, quiet=quiet)
        options = CertifyOptions(
            bounds=tuple(f for f in families if f != "marginal" or marginal_sizes is None or m in marginal_sizes),
            delta=delta,
            seed=seed,
            quiet=quiet,
            dziugaite_roy=DziugaiteRoySettings(init_state=initial_weights),
            subspace=SubspaceSettings(dim=SUBSPACE_DIM),
        )
        report = certify(model, train, test, options)
        row = {
            "m": m,
            "epochs": epochs,
            "test_error": report.test_error,
            "holdout_bound": report.baselines["holdout_bound"],
            "bounds": {b.name: {"value": b.value, "certified": b.certified} for b in report.bounds},
            "seconds": time.perf_counter() - started,
        }
        rows.append(row)
        cells = ", ".join(f"{name} {b['value']:.4f}" for name, b in row["bounds"].items())
        print(
            f"m = {m:>5}: test error {row['test_error']:.4f}, {cells}, hold-out {row['holdout_bound']:.4f} "
            f"({epochs} epochs, {row['seconds']:.0f} s)",
            flush=True,
        )
    return rows


def plot(rows, delta: float, path: str, classes: int = 2) -> None:
    sizes = [r["m"] for r in rows]
    figure, ax = plt.subplots(figsize=(6.8, 4.4))
    for name in dict.fromkeys(name for r in rows for name in r["bounds"]):  # a family may be run at some m only
        present = [r for r in rows if name in r["bounds"]]
        kind = "certified" if present[0]["bounds"][name]["certified"] else "estimate"
        ax.plot(
            [r["m"] for r in present],
            [r["bounds"][name]["value"] for r in present],
            "o-" if kind == "certified" else "s--",
            label=f"{name} ({kind})",
        )
    ax.plot(sizes, [r["test_error"] for r in rows], "^-", color="black", label="test error")
    ax.plot(sizes, [r["holdout_bound"] for r in rows], ":", color="grey", label="hold-out bound (5,000 test images)")
    ax.set_xscale("log")
    ax.set_ylim(0, 1)
    ax.set_xlabel("training-set size m")
    ax.set_ylabel("error")
    task = "binary" if classes == 2 else f"{classes}-class"
    ax.set_title(f"Bounds vs training-set size ({task} mnist-embedded, delta = {delta:g})")
    ax.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,200,500,1000", help="comma-separated training-set sizes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--delta", type=float, default=0.05)
    parser.add_argument("--out", default="learning_curve.png")
    parser.add_argument("--json", dest="json_path", default=None, help="also save the numbers as JSON")
    parser.add_argument("--classes", type=int, choices=(2, 10), default=2, help="binarised digits or all ten")
    parser.add_argument("--bounds", default=",".join(FAMILIES), help="comma-separated bound families")
    parser.add_argument(
        "--marginal-sizes",
        default=None,
        help="comma-separated sizes at which the marginal family runs (default: all); with ten classes its "
        "certified sandwich is a dense 9m-dimensional orthant, minutes up to m = 1000 on a 2-core CPU",
    )
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    marginal = None if args.marginal_sizes is None else {int(s) for s in args.marginal_sizes.split(",")}
    rows = run(sizes, args.seed, args.delta, args.quiet, args.classes, tuple(args.bounds.split(",")), marginal)
    plot(rows, args.delta, args.out, args.classes)
    if args.json_path:
        with open(args.json_path, "w") as stream:
            json.dump(rows, stream, indent=2)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
