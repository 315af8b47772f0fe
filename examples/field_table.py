"""The field's experiment, certified: the marginal-likelihood bound across datasets and architectures.

Valle-Pérez et al. (2019, Table 1) and Mingard et al. report that the PAC-Bayes bound at the network's
NNGP marginal likelihood *tracks* generalisation: MNIST < Fashion-MNIST < CIFAR-10, and across FC and
CNN architectures. Their figures are EP estimates. For every (dataset, architecture) this script draws
m training points (binary: classes 0-4 against 5-9), trains the network with SGD to zero training
error on exactly those points, runs ``certify`` (marginal family: EP estimate and certified lower bound
on ln P(S), and the hold-out bound on MODEL), and writes one table: kernel kind with its rank and entry
standard error, SGD test error, the hold-out bound, the marginal bound at the EP and at the certified
ln P(S) in pacbayes' form (delta = 0.05) and in the authors' McAllester form at delta = 2^-10, Q*'s
estimated test error, MODEL-Q* agreement, seconds; and a PNG of certified bound against test error
with Spearman's rho.

``--corruption`` runs the label-corruption sweep instead (the CNN, c = 0, 0.2, ..., 1.0, each label
independently replaced with probability c by a uniform class, as ``pacbayes.data.corrupt_labels``):
bound, clean-label conversion and test error per level.

    python examples/field_table.py --data-root DATA --out-dir field          # full sizes (hours on 2 cores)
    python examples/field_table.py --data-root DATA --m 1000 --out-dir field # one m for every dataset
    python examples/field_table.py --data-root DATA --corruption --out-dir field
    python examples/field_table.py --quick --out-dir field                   # embedded digits, small m (tests)
    python examples/field_table.py --from-rows a/field_table.json b/field_table.json --out-dir field

``--from-rows`` runs nothing: it joins the rows of earlier runs (a table made in several runs, say one per
dataset) and writes their table, Spearman's rho and figure as one run would.

DATA is a folder holding ``mnist-train/`` and ``mnist/`` (idx), ``fashion-mnist/`` (idx) and
``cifar-10/cifar-10-batches-py/``; nothing is read from it unless it is given.
"""

import argparse
import copy
import csv
import functools
import importlib.util
import json
import math
import os
import time
from pathlib import Path

import torch
from torch import nn

from pacbayes.bounds import marginal_likelihood_bound
from pacbayes.certification import CertifyOptions, certify, prepare_data
from pacbayes.data import load_dataset
from pacbayes.families.marginal import MARKOV_SHARE, PAC_BAYES_SHARE, split_marginal_delta
from pacbayes.families.settings import MarginalSettings
from pacbayes.progress import progress

AUTHORS_DELTA = 2.0**-10
CORRUPTIONS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
MAX_EPOCHS = 500
# SGD's learning rates, tried in turn from the same initialisation: 0.01 fits every network but one; the
# 3072-512-512 MLP on CIFAR-10's uncentred pixels diverged at 0.01 on one CPU (its ReLUs died; on another
# its float rounding took it to zero error) and fits at 0.001.
LEARNING_RATES = (0.01, 0.001)
# epochs in a row with every training output equal before a learning rate is given up: the ReLUs feeding the
# read-out are dead on every point, so no weight below the read-out gets a gradient again (once momentum,
# 0.9 per step, has decayed over this many epochs of steps)
DEAD_EPOCHS = 10

# name -> (training spec, test spec under the data root, image channels, size, largest m)
DATASETS = {
    "mnist": ("mnist-train", "mnist", 1, 28, 10_000),
    "fashion-mnist": ("fashion-mnist", "fashion-mnist", 1, 28, 5_000),
    "cifar-10": ("cifar-10", "cifar-10", 3, 32, 5_000),
}
QUICK = {"digits": ("mnist-embedded", "mnist-embedded", 1, 28, 60)}


@functools.cache
def _image_models():
    """examples/image_models.py, loaded by path (this script runs from any folder), once: every network then
    shares one set of its classes."""
    spec = importlib.util.spec_from_file_location("image_models", Path(__file__).with_name("image_models.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class VallePerezCnn(nn.Sequential):
    """The CNN without pooling of Valle-Pérez et al. (2019): ``layers`` 'same'-padded 5x5 convolutions with
    ReLU, then a linear read-out to one logit."""

    def __init__(self, channels: int, size: int, width: int = 32, layers: int = 4):
        convs = []
        for i in range(layers):
            convs += [nn.Conv2d(channels if i == 0 else width, width, 5, padding=2), nn.ReLU()]
        super().__init__(*convs, nn.Flatten(), nn.Linear(width * size * size, 1))


class ResidualCnn(nn.Module):
    """An input average-pooled by ``pool``, a 3x3 conv stem, ``blocks`` residual blocks x + conv(relu(conv(relu(x))))
    and a ReLU, flattened into a linear read-out to one logit (examples/image_models.py's blocks)."""

    def __init__(self, channels: int, size: int, width: int = 32, blocks: int = 2, pool: int = 2):
        super().__init__()
        block = _image_models().ResidualBlock
        self.body = nn.Sequential(
            nn.AvgPool2d(pool), nn.Conv2d(channels, width, 3, padding=1), *(block(width) for _ in range(blocks))
        )
        self.head = nn.Sequential(nn.ReLU(), nn.Flatten(), nn.Linear(width * (size // pool) ** 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def architectures(channels: int, size: int, quick: bool) -> dict:
    """name -> a freshly initialised single-logit network for images of ``channels`` x ``size`` x ``size``."""
    models = _image_models()
    width = 8 if quick else 32
    return {
        "fc": lambda: models.Mlp(channels=channels, size=size, width=64 if quick else 512),
        "cnn": lambda: VallePerezCnn(channels, size, width=width, layers=2 if quick else 4),
        "cnn-bn-maxpool": lambda: models.ConvBnMaxPool(channels=channels, size=size, width=width),
        "resnet": lambda: ResidualCnn(channels, size, width=width, blocks=1 if quick else 2),
    }


class NotFitted(RuntimeError):
    """SGD did not reach zero training error within its epochs (the row cannot be certified as asked)."""


def fit_sgd(
    model: nn.Module,
    data,
    *,
    seed: int,
    max_epochs: int = MAX_EPOCHS,
    quiet: bool = True,
    rates: tuple = LEARNING_RATES,
) -> float:
    """``train_sgd`` at each of ``rates`` in turn, each from the model's initial weights, until one reaches
    zero training error; returns that learning rate (NotFitted, naming every rate, when none does)."""
    initial = copy.deepcopy(model.state_dict())
    for lr in rates:
        model.load_state_dict(initial)
        try:
            train_sgd(model, data, seed=seed, lr=lr, max_epochs=max_epochs, quiet=quiet)
            return lr
        except NotFitted:
            continue
    tried = ", ".join(f"{lr:g}" for lr in rates)
    raise NotFitted(f"{type(model).__name__} did not reach zero training error in {max_epochs} epochs at lr {tried}")


def train_sgd(model: nn.Module, data, *, seed: int, lr: float, max_epochs: int = MAX_EPOCHS, quiet: bool = True) -> int:
    """SGD with momentum 0.9, batches of 32, logistic loss on the binary labels, until every training point is
    classified correctly in eval mode; returns the epochs taken. NotFitted when it does not fit in ``max_epochs``,
    or at once when its outputs have been the same on every training point for DEAD_EPOCHS epochs in a row.
    Shows a bar of epochs with the training points still misclassified (unless ``quiet``)."""
    generator = torch.Generator().manual_seed(seed)
    x, y = data.x.float(), data.labels.float()
    optimiser = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    constant = 0
    epochs = progress(
        range(1, max_epochs + 1), desc=f"SGD to zero training error (lr {lr:g})", quiet=quiet, unit="epoch"
    )
    for epoch in epochs:
        model.train()
        for batch in torch.randperm(len(y), generator=generator).split(32):
            optimiser.zero_grad()
            nn.functional.binary_cross_entropy_with_logits(model(x[batch]).squeeze(-1), y[batch]).backward()
            optimiser.step()
        model.eval()
        with torch.no_grad():
            outputs = model(x).squeeze(-1)
        wrong = int(((outputs > 0).float() != y).sum())
        epochs.set_postfix(misclassified=wrong, refresh=False)
        if wrong == 0:
            return epoch
        constant = constant + 1 if bool((outputs == outputs[0]).all()) else 0
        if constant == DEAD_EPOCHS:
            raise NotFitted(
                f"{type(model).__name__} at lr {lr:g}: the same output on every training point for {DEAD_EPOCHS} "
                f"epochs (dead ReLUs), stopped at epoch {epoch}"
            )
    raise NotFitted(f"{type(model).__name__} did not reach zero training error in {max_epochs} epochs")


def authors_form(log_estimate: float, log_evidence_ep: float, m: int) -> tuple:
    """(EP, certified) bounds in the McAllester form Valle-Pérez et al. state, at delta = 2^-10: the EP value at
    the EP ln P(S); the certified value re-derives the certified ln P(S) from ln Z_hat at this delta's Markov
    share and spends its PAC-Bayes share (pacbayes.bounds.marginal, variant "mcallester")."""
    shares = split_marginal_delta(AUTHORS_DELTA)
    certified = log_estimate - math.log(1.0 / shares[MARKOV_SHARE])
    return (
        marginal_likelihood_bound(log_evidence_ep, m, AUTHORS_DELTA, "mcallester"),
        marginal_likelihood_bound(certified, m, shares[PAC_BAYES_SHARE], "mcallester"),
    )


def table_row(report, dataset: str, architecture: str, m: int, seconds: dict, corruption: float, lr: float) -> dict:
    """One row of the table from a certify report."""
    diagnostics = report.diagnostics["marginal"]
    kernel = diagnostics["kernel"]
    measured = kernel.get("estimate") or {}
    certified, ep = report.bound("marginal-certified"), report.bound("marginal-ep")
    authors_ep, authors_certified = authors_form(certified.details["log_estimate"], ep.log_evidence, m)
    clean = next((b for b in report.bounds if b.name == "marginal-certified-clean-labels"), None)
    return {
        "dataset": dataset,
        "architecture": architecture,
        "m": m,
        "corruption": corruption,
        "kernel": kernel["kind"],
        "kernel_rank": measured.get("rank"),
        "kernel_se_max_relative": measured.get("standard_error_max_relative"),
        "kernel_projection": kernel.get("projection"),
        "sgd_learning_rate": lr,
        "sgd_test_error": report.test_error,
        "holdout_bound": report.baselines.get("holdout_bound"),
        "ep_bound": ep.value,
        "certified_bound": certified.value,
        "certified": certified.certified,
        "authors_ep_bound": authors_ep,
        "authors_certified_bound": authors_certified,
        "certified_clean_labels": None if clean is None else clean.value,
        "q_star_test_error": diagnostics.get("q_star_test_error_ep"),
        "model_q_star_agreement": diagnostics.get("bayes_agreement"),
        "log_evidence_ep": ep.log_evidence,
        "log_evidence_certified": certified.log_evidence,
        "train_seconds": seconds["train"],
        "certify_seconds": seconds["certify"],
    }


def run_case(dataset: str, spec: tuple, architecture: str, build, *, m: int, corruption: float, args, marginal):
    """Train ``build()`` by SGD to zero error on the m points certify draws, certify it, return the row
    (certify announces its phases' estimates and shows progress unless ``args.quiet``)."""
    train = load_dataset(spec[0], split="train")
    test = load_dataset(spec[1], split="test")
    seed = args.seed
    options = CertifyOptions(
        bounds=("marginal",),
        m=m,
        seed=seed,
        corrupt=corruption,
        quiet=args.quiet,
        cache_dir=args.cache_dir,
        marginal=marginal,
    )
    torch.manual_seed(seed)
    model = build()
    subset, _, _ = prepare_data(model, train, test, options)
    start = time.perf_counter()
    lr = fit_sgd(model, subset, seed=seed, max_epochs=args.max_epochs, quiet=args.quiet, rates=args.learning_rates)
    model.eval()
    trained = time.perf_counter()
    report = certify(model, train, test, options)
    seconds = {"train": trained - start, "certify": time.perf_counter() - trained}
    return table_row(report, dataset, architecture, m, seconds, corruption, lr)


RANKED = ("certified_bound", "sgd_test_error", "q_star_test_error")  # the columns rho and the figure rank


def spearman(rows: list, x: str, y: str) -> float:
    """Spearman's rho between two columns (scipy.stats.spearmanr); NaN with fewer than three rows."""
    from scipy.stats import spearmanr

    if len(rows) < 3:
        return float("nan")
    return float(spearmanr([r[x] for r in rows], [r[y] for r in rows]).statistic)


def markdown(rows: list) -> str:
    """The table as Markdown, the columns the README and docs show."""
    columns = [
        ("dataset", "{}"),
        ("architecture", "{}"),
        ("m", "{:,}"),
        ("corruption", "{:.1f}"),
        ("kernel", "{}"),
        ("kernel_rank", "{}"),
        ("sgd_test_error", "{:.3f}"),
        ("holdout_bound", "{:.3f}"),
        ("ep_bound", "{:.3f}"),
        ("certified_bound", "{:.3f}"),
        ("authors_ep_bound", "{:.3f}"),
        ("authors_certified_bound", "{:.3f}"),
        ("q_star_test_error", "{:.3f}"),
        ("model_q_star_agreement", "{:.3f}"),
        ("certify_seconds", "{:.0f}"),
    ]
    lines = ["| " + " | ".join(name for name, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = ["-" if row[name] is None else form.format(row[name]) for name, form in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list, path: str, rho: float) -> None:
    """Certified bound against SGD test error, one point per row: colour by dataset, marker by architecture,
    corruption levels written beside their points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    colours = dict(zip(dict.fromkeys(r["dataset"] for r in rows), plt.get_cmap("tab10").colors, strict=False))
    markers = dict(zip(dict.fromkeys(r["architecture"] for r in rows), "osD^vP*X", strict=False))
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for row in rows:
        point = (row["sgd_test_error"], row["certified_bound"])
        ax.scatter(*point, color=colours[row["dataset"]], marker=markers[row["architecture"]], alpha=0.8)
        if row["corruption"]:
            ax.annotate(f"c={row['corruption']:g}", point, fontsize=7, xytext=(4, -8), textcoords="offset points")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    handles = [Line2D([], [], linestyle="", marker="o", color=c, label=d) for d, c in colours.items()]
    handles += [Line2D([], [], linestyle="", marker=k, color="grey", label=a) for a, k in markers.items()]
    handles.append(Line2D([], [], linestyle=":", color="grey", label="bound = test error"))
    ax.legend(handles=handles, fontsize=8, loc="lower right")
    ax.set_xlabel("SGD test error")
    ax.set_ylabel("certified marginal-likelihood bound (delta = 0.05)")
    ax.set_title(f"Certified bound against test error (Spearman rho = {rho:.2f})", fontsize=9)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def cases(args) -> list:
    """(dataset, specs, architecture, builder, m, corruption) for every row asked for."""
    datasets = QUICK if args.quick else {name: DATASETS[name] for name in args.datasets}
    chosen = []
    for name, (train, test, channels, size, largest) in datasets.items():
        specs = (train, test) if args.quick else tuple(os.path.join(args.data_root, p) for p in (train, test))
        m = args.m or largest
        builders = architectures(channels, size, args.quick)
        if args.corruption:
            chosen += [(name, specs, "cnn", builders["cnn"], m, c) for c in args.levels]
        else:
            chosen += [(name, specs, arch, builders[arch], m, 0.0) for arch in args.architectures]
    return chosen


def parse(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", help="folder holding mnist-train/, mnist/, fashion-mnist/, cifar-10/")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated subset of the datasets")
    parser.add_argument("--architectures", default="fc,cnn,cnn-bn-maxpool,resnet", help="comma-separated")
    parser.add_argument("--m", type=int, default=None, help="training points for every dataset (default: its largest)")
    parser.add_argument("--corruption", action="store_true", help="the label-corruption sweep with the CNN instead")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kernel-samples", type=int, default=None, help="Monte Carlo kernels (default: automatic)")
    parser.add_argument(
        "--kernel-projection",
        type=int,
        default=None,
        help="Monte Carlo kernels: random projections of each draw's read-out features (default: none)",
    )
    parser.add_argument("--q-star-test-points", type=int, default=1000, help="test points of Q*'s error estimate")
    parser.add_argument("--max-epochs", type=int, default=MAX_EPOCHS, help="SGD epochs before a row is skipped")
    parser.add_argument(
        "--learning-rates",
        type=learning_rates,
        default=LEARNING_RATES,
        help="SGD's learning rates, tried in turn from the same initialisation (default: 0.01,0.001)",
    )
    parser.add_argument("--out-dir", default="field_table")
    parser.add_argument("--cache-dir", default=None, help="certify's cache: a rerun reuses kernels and EP results")
    parser.add_argument("--quiet", action="store_true", help="print only each finished row and the table")
    parser.add_argument("--quick", action="store_true", help="embedded digits, m = 60, small widths (for the tests)")
    parser.add_argument("--from-rows", nargs="+", metavar="JSON", help="join earlier runs' rows; run nothing")
    args = parser.parse_args(argv)
    if args.from_rows:
        args.rows = join_rows(args.from_rows, args.out_dir, parser)
        return args
    args.quiet = args.quiet or args.quick
    if args.corruption and args.datasets == parser.get_default("datasets"):
        args.datasets = "mnist,cifar-10"
    args.datasets = [d for d in args.datasets.split(",") if d]
    args.architectures = [a for a in args.architectures.split(",") if a]
    args.levels = (0.0, 0.6) if args.quick else CORRUPTIONS
    if args.quick:
        args.m = args.m or QUICK["digits"][4]
        args.kernel_samples = args.kernel_samples or 32
        args.q_star_test_points = min(args.q_star_test_points, 100)
    elif not args.data_root:
        parser.error("give --data-root (or --quick for the embedded digits)")
    unknown = [d for d in args.datasets if d not in DATASETS] + [
        a for a in args.architectures if a not in ("fc", "cnn", "cnn-bn-maxpool", "resnet")
    ]
    if unknown:
        parser.error(f"unknown dataset or architecture: {', '.join(unknown)}")
    return args


def learning_rates(text: str) -> tuple:
    """--learning-rates: comma-separated positive numbers."""
    try:
        rates = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        rates = ()
    if not rates or not all(0 < rate < float("inf") for rate in rates):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive learning rates, got {text!r}")
    return rates


def read_rows(path: str, parser: argparse.ArgumentParser) -> list:
    """The rows a run wrote to ``path`` (its field_table.json or corruption.json)."""
    try:
        with open(path) as stream:
            rows = json.load(stream)
    except (OSError, ValueError) as err:
        parser.error(f"cannot read rows from {path}: {err}; give a field_table.json or corruption.json")
    try:  # every column the table shows, in its format, and numbers where rho and the figure rank them
        markdown(rows)
        valid = all(type(row[name]) in (int, float) for row in rows for name in RANKED)
    except (AttributeError, KeyError, TypeError, ValueError):
        valid = False
    if not (isinstance(rows, list) and rows and valid):
        parser.error(f"{path} holds no complete field-table rows; give a field_table.json or corruption.json")
    return rows


def join_rows(paths: list, out_dir: str, parser: argparse.ArgumentParser) -> list:
    """The rows of every file in ``paths``, in order; refuses a row given twice and an output over an input."""
    targets = {os.path.abspath(os.path.join(out_dir, f"{name}.json")) for name in ("field_table", "corruption")}
    rows, seen = [], {}
    for path in paths:
        if os.path.abspath(path) in targets:
            parser.error(f"--out-dir {out_dir} would overwrite the rows in {path}; write the joined table elsewhere")
        for row in read_rows(path, parser):
            case = (row["dataset"], row["architecture"], row.get("m"), row["corruption"])
            if case in seen:
                parser.error(
                    f"{' '.join(map(str, case[:2]))} m={case[2]} c={case[3]:g} is in both {seen[case]} and "
                    f"{path}; give each row once"
                )
            seen[case] = path
            rows.append(row)
    return rows


def write_rows(rows: list, stem: str) -> None:
    """The rows so far as ``stem``.json and .csv (rewritten after every row: a long run that stops keeps them)."""
    with open(f"{stem}.json", "w") as stream:
        json.dump(rows, stream, indent=2)
    with open(f"{stem}.csv", "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main(argv=None) -> list:
    args = parse(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    if args.from_rows:
        corruption = any(row["corruption"] for row in args.rows)
        stem = os.path.join(args.out_dir, "corruption" if corruption else "field_table")
        write_rows(args.rows, stem)
        return summarise(args.rows, stem, corruption)
    stem = os.path.join(args.out_dir, "corruption" if args.corruption else "field_table")
    marginal = MarginalSettings(
        kernel_samples=args.kernel_samples,
        kernel_projection=args.kernel_projection,
        q_star_test_points=args.q_star_test_points,
    )
    rows, skipped, chosen = [], [], cases(args)
    for number, (dataset, specs, architecture, build, m, corruption) in enumerate(chosen, 1):
        if not args.quiet:
            print(f"[{number}/{len(chosen)}] {dataset} {architecture} m={m:,} c={corruption:g}: SGD", flush=True)
        try:
            row = run_case(
                dataset, specs, architecture, build, m=m, corruption=corruption, args=args, marginal=marginal
            )
        except NotFitted as err:
            skipped.append(f"{dataset} {architecture} m={m:,} c={corruption:g}: {err}")
            print(f"skipped {skipped[-1]} (more --max-epochs may fit it)", flush=True)
            continue
        rows.append(row)
        write_rows(rows, stem)
        print(
            f"{dataset} {architecture} m={m:,} c={corruption:g}: test error {row['sgd_test_error']:.3f}, "
            f"hold-out {row['holdout_bound']:.3f}, EP {row['ep_bound']:.3f}, certified {row['certified_bound']:.3f} "
            f"(authors' form {row['authors_certified_bound']:.3f}), {row['certify_seconds']:.0f} s",
            flush=True,
        )
    for line in skipped:
        print(f"not in the table: {line}")
    return summarise(rows, stem, args.corruption)


def summarise(rows: list, stem: str, corruption: bool) -> list:
    """Print the table and Spearman's rho against SGD's and Q*'s test error, over all rows and within each dataset
    (and, for a corruption sweep, whether each bound rises); write the PNG."""
    if corruption:
        for dataset in dict.fromkeys(r["dataset"] for r in rows):
            bounds = [r["certified_bound"] for r in rows if r["dataset"] == dataset]
            rising = all(a <= b for a, b in zip(bounds, bounds[1:], strict=False))
            print(f"{dataset}: certified bound {'rises' if rising else 'does not rise'} with corruption: {bounds}")
    if not rows:
        print("no row was certified: every network stopped short of zero training error")
        return rows
    bound, sgd, q_star = RANKED
    rho = spearman(rows, bound, sgd)
    plot(rows, f"{stem}.png", rho)
    print(markdown(rows))
    print(f"Spearman rho (certified bound, test error) = {rho:.3f} over {len(rows)} rows; wrote {stem}.json/.csv/.png")
    print(f"  against Q*'s test error (what the bound is about): {spearman(rows, bound, q_star):.3f}")
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        within = [r for r in rows if r["dataset"] == dataset]
        if len(within) >= 3:
            print(
                f"  within {dataset} ({len(within)} rows): {spearman(within, bound, sgd):.3f}, "
                f"against Q*'s test error {spearman(within, bound, q_star):.3f}"
            )
    return rows


if __name__ == "__main__":
    main()
