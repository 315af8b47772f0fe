"""Bound and test error versus label corruption (Valle-Pérez et al. 2019, Fig. 2-style trend).

For each corruption fraction c, the m binarised mnist-embedded training labels are corrupted
independently: each label, on its own seeded coin with probability c, is replaced by a uniform
class (``CertifyOptions(corrupt=c)``, i.e. pacbayes.data.corrupt_labels), so it flips with
probability c/2 and the corrupted sample is iid from the corrupted distribution -- the noise model
the bound needs (not a fixed fraction of flipped labels, which would make the sample dependent).
The demo network (2 x 512 ReLU) is trained to zero training error on that corrupted sample (the
same seeded corruption ``certify`` applies) and the marginal-likelihood bound is certified.
Corrupted labels are harder to fit by simple functions, so ln P(S) falls and the bound rises,
tracking the test error.

The bound B is for the corrupted distribution, matched by the test error on test labels corrupted
the same way; since err_corrupted = c/2 + (1 - c) err_clean, the plot also shows the certified
bound converted to clean labels, (B - c/2) / (1 - c) (vacuous as c -> 1), next to the test error
on clean labels.

    python examples/label_corruption.py [--m 500] [--out label_corruption.png]
    python examples/label_corruption.py --quick    # m = 100, two fractions (for the tests)
"""

import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from pacbayes.certification import CertifyOptions, certify, prepare_data  # noqa: E402
from pacbayes.data import binarise, load_dataset, take  # noqa: E402
from pacbayes.demo import demo_network, train_to_zero_error  # noqa: E402

FRACTIONS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)


def run(m: int, seed: int, quiet: bool, fractions=FRACTIONS):
    train = take(binarise(load_dataset("mnist-embedded", split="train")), m, seed=seed)
    test = load_dataset("mnist-embedded", split="test")
    rows = []
    for fraction in fractions:
        options = CertifyOptions(corrupt=fraction, seed=seed, quiet=quiet)
        torch.manual_seed(seed)
        model = demo_network()
        corrupted_train, _, _ = prepare_data(model, train, test, options)
        train_to_zero_error(model, corrupted_train, seed=seed, max_epochs=1000, quiet=quiet)
        report = certify(model, train, test, options)
        values = {b.name: b.value for b in report.bounds}
        rows.append(
            {
                "corruption": fraction,
                "test_error": report.test_error,
                "test_error_corrupted_labels": report.baselines.get("test_error_corrupted_labels", report.test_error),
                "bound_certified": values["marginal-certified"],
                "bound_ep": values["marginal-ep"],
                "bound_certified_clean": values.get("marginal-certified-clean-labels", values["marginal-certified"]),
                "log_evidence_certified": report.bound("marginal-certified").log_evidence,
                "log_evidence_ep": report.bound("marginal-ep").log_evidence,
            }
        )
        print(
            f"c = {fraction:.2f}: test error {report.test_error:.4f} (corrupted labels "
            f"{rows[-1]['test_error_corrupted_labels']:.4f}), ln P(S) EP {rows[-1]['log_evidence_ep']:.1f} "
            f"certified {rows[-1]['log_evidence_certified']:.1f}, bound EP {values['marginal-ep']:.4f} "
            f"certified {values['marginal-certified']:.4f} (clean labels {rows[-1]['bound_certified_clean']:.4f})",
            flush=True,
        )
    return rows


def plot(rows, m: int, path: str) -> None:
    c = [r["corruption"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(c, [r["bound_certified"] for r in rows], "o-", label="certified bound (corrupted labels)")
    ax.plot(c, [r["bound_ep"] for r in rows], "s--", label="EP-estimate bound (corrupted labels)")
    ax.plot(c, [r["test_error_corrupted_labels"] for r in rows], "^-", label="test error, corrupted labels")
    ax.plot(c, [r["test_error"] for r in rows], "v:", label="test error, clean labels")
    ax.plot(c, [r["bound_certified_clean"] for r in rows], "d:", label="certified bound converted to clean labels")
    ax.set_xlabel("fraction of training labels corrupted")
    ax.set_ylabel("error")
    ax.set_ylim(0, 1)
    ax.set_title(f"Marginal-likelihood bound vs independent label corruption (binary MNIST, m = {m})", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="label_corruption.png")
    parser.add_argument("--json", dest="json_path", default=None, help="also save the numbers as JSON")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--quick", action="store_true", help="m = 100, c in {0, 0.5} (for the tests)")
    args = parser.parse_args(argv)
    if args.quick:
        args.m = 100
    rows = run(args.m, args.seed, args.quiet, (0.0, 0.5) if args.quick else FRACTIONS)
    plot(rows, args.m, args.out)
    if args.json_path:
        with open(args.json_path, "w") as stream:
            json.dump(rows, stream, indent=2)
    print(f"saved {args.out}")
    return rows


if __name__ == "__main__":
    main()
