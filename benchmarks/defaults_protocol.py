"""Choosing the Dziugaite-Roy / PBB family's defaults by a fixed protocol over several data sets and seeds.

The question: which optimisation defaults (prior ERM, posterior optimiser, Monte Carlo draws) give the
tightest certificates for ``certify --bounds dziugaite-roy --objective quad --prior-split 0.5`` on data
nobody tuned on. The protocol, fixed before any run:

- Data sets (read from ``--data-dir``, never by default): the MNIST test split (``mnist/``), the MNIST
  training split (``mnist-train/``), Fashion-MNIST (``fashion-mnist/``) and CIFAR-10 (``cifar-10/``).
  Binary task: classes 0-4 against 5-9. Pixels standardised with each data set's published mean and std.
- For every data set and seed: S = 2,000 points drawn with the seed; the test points are the data set's
  test split, or, where the folder holds one split only, up to 2,000 other points of it.
- MODEL: 784-64-1 (3072-64-1 for CIFAR-10) ReLU, built under ``torch.manual_seed(seed)``, trained by SGD
  (lr 0.01, momentum 0.9, batches of 100) until its training error on S is 0 (at most 100 epochs).
- Certificate: :func:`pacbayes.stochastic.certify_stochastic_network` with ``objective="quad"``,
  ``prior_split=0.5``, delta 0.05, the seed, no init checkpoint (the CLI's default), and the candidate's
  settings; recorded with the stochastic network's test error (20 posterior draws).
- Candidates (pinned here, not read from the package): ``before``, the defaults before this protocol; ``pbb``,
  PBB's released settings; and variations of the differences between them: PBB's prior ERM alone, PBB's
  posterior optimiser alone, PBB's settings with a posterior draw per point in the Monte Carlo bound.
- Selection rule: the candidate with the lowest certificate averaged over ALL data sets (each data set's
  mean over seeds, then the mean of those); it replaces ``before`` only if it is also not worse than it on
  any data set by more than the larger of the two spreads (half the range over seeds).

``--mode`` repeats the protocol in the family's other modes, whose posterior schedule is the same default: the
certificate with a data-independent prior (``data-independent``: no prior split, the posterior learned from a prior
centred at MODEL's initial weights) or around MODEL (``around-model``: ``posterior_start="model"``, the same prior);
``learned`` (the default) is the protocol above. The prior ERM schedule plays no part outside ``learned``.

One thread (``torch.set_num_threads(1)``). Prints one table, candidate x data set, mean +- spread of the
certificate (and of the test error), with the mean over data sets, each candidate's paired difference from
``before``, the chosen candidate and which candidate the package's defaults now are. The full protocol (five
candidates, four data sets, three seeds) takes about 20 minutes on one core.

    python benchmarks/defaults_protocol.py --data-dir DATA                      # every candidate, 2 seeds
    python benchmarks/defaults_protocol.py --data-dir DATA --candidates before pbb --seeds 0 --datasets mnist
    python benchmarks/defaults_protocol.py --data-dir DATA --mode around-model --candidates before+pbb-prior+point-mc \
        pbb+point-mc
"""

import argparse
import os
import time
from dataclasses import dataclass, replace

import torch
from torch import nn

from pacbayes.data import binarise, load_dataset, normalise, take
from pacbayes.data.subsets import subset_positions
from pacbayes.families.settings import DziugaiteRoySettings
from pacbayes.stochastic import Schedule, certify_stochastic_network
from pacbayes.stochastic.bound import DEFAULT_PRIOR_SCHEDULE
from pacbayes.stochastic.local import resolve_mc_sampling

M = 2000
TEST_POINTS = 2000
TEST_DRAWS = 20
DELTA = 0.05
MODEL_EPOCHS = 100


@dataclass(frozen=True)
class Source:
    """Where a data set lives under the data folder, which split S is drawn from, its test split (None: other
    points of the same split) and its published per-channel pixel mean and std."""

    folder: str
    pool: str
    test: str | None
    mean: tuple
    std: tuple


DATASETS = {
    "mnist": Source("mnist", "test", None, (0.1307,), (0.3081,)),
    "mnist-train": Source("mnist-train", "train", None, (0.1307,), (0.3081,)),
    "fashion-mnist": Source("fashion-mnist", "train", "test", (0.2860,), (0.3530,)),
    "cifar-10": Source("cifar-10", "train", "test", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}

BEFORE_PRIOR = Schedule(epochs=70, batch_size=100, lr=0.01, momentum=0.9)
"""The prior ERM defaults before this protocol: SGD lr 0.01, momentum 0.9, batches of 100, 70 epochs."""
BEFORE_POSTERIOR = Schedule(epochs=40, batch_size=250, lr=1e-4, lr_var=1e-2, optimizer="adam")
"""The posterior defaults before this protocol (and still the defaults): Adam, lr 1e-4 on the mean and 1e-2 on
log s, 40 epochs of batches of 250."""
PBB_PRIOR = Schedule(epochs=70, batch_size=250, lr=0.005, momentum=0.99)
"""PBB's prior ERM (their released running example): SGD lr 0.005, momentum 0.99, batches of 250, 70 epochs."""
PBB_POSTERIOR = Schedule(epochs=100, batch_size=250, lr=1e-3, lr_var=4e-3, optimizer="sgd", momentum=0.95)
"""PBB's posterior optimiser: SGD lr 0.001, momentum 0.95, 100 epochs of batches of 250. They step rho with
s = softplus(rho)^2; at small std d(log s)/d(rho) is about 2, so lr 0.001 on rho is about 0.004 on log s."""

BASELINE = "before"
CANDIDATES = {
    BASELINE: (BEFORE_POSTERIOR, BEFORE_PRIOR, "network"),
    "pbb": (PBB_POSTERIOR, PBB_PRIOR, "network"),
    "before+pbb-prior": (BEFORE_POSTERIOR, PBB_PRIOR, "network"),
    "before+pbb-posterior": (PBB_POSTERIOR, BEFORE_PRIOR, "network"),
    "pbb+point-mc": (PBB_POSTERIOR, PBB_PRIOR, "point"),
    "before+pbb-prior+point-mc": (BEFORE_POSTERIOR, PBB_PRIOR, "point"),
}
"""Candidate settings: (posterior schedule, prior schedule, Monte Carlo sampling), pinned (not read from the
package's defaults, so the table means the same whatever the defaults are now)."""


MODES = {
    "learned": {"prior_split": 0.5},
    "data-independent": {"prior_split": 0.0, "posterior_start": "prior"},
    "around-model": {"prior_split": 0.0, "posterior_start": "model"},
}
"""--mode -> the settings it fixes; outside ``learned`` the prior is centred at MODEL's initial weights."""


def is_current(candidate: str) -> bool:
    """Whether ``candidate`` is the package's current default for this protocol's models (the sampling
    resolved as the family resolves it for a d-64-1 MLP)."""
    schedule, prior_schedule, mc_sampling = CANDIDATES[candidate]
    defaults = DziugaiteRoySettings()
    mlp = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 1))
    return (
        schedule == replace(Schedule(), epochs=defaults.posterior_epochs)
        and prior_schedule == replace(DEFAULT_PRIOR_SCHEDULE, epochs=defaults.prior_epochs)
        and mc_sampling == resolve_mc_sampling(defaults.mc_sampling, mlp)
    )


def load(data_dir: str, name: str, seed: int) -> tuple:
    """((x, labels) of S, (x, labels) of the test points) for data set ``name``: binary, standardised, flat."""
    source = DATASETS[name]
    path = os.path.join(data_dir, source.folder)
    pool = binarise(load_dataset(path, split=source.pool))
    if source.test is not None:
        train, test = take(pool, M, seed=seed), binarise(load_dataset(path, split=source.test))
        if len(test) > TEST_POINTS:
            test = take(test, TEST_POINTS, seed=seed)
    else:
        chosen = torch.zeros(len(pool), dtype=torch.bool)
        chosen[torch.from_numpy(subset_positions(pool, M, seed))] = True
        train = pool.derive(x=pool.x[chosen], labels=pool.labels[chosen])
        rest = pool.derive(x=pool.x[~chosen], labels=pool.labels[~chosen])
        test = take(rest, min(TEST_POINTS, len(rest)), seed=seed)
    parts = []
    for ds in (train, test):
        ds = normalise(ds, "standard", mean=source.mean, std=source.std)
        parts.append((ds.x.flatten(1).float(), ds.labels))
    return tuple(parts)


def train_model(x: torch.Tensor, labels: torch.Tensor, seed: int) -> tuple:
    """MODEL d-64-1 from torch.manual_seed(seed), SGD until zero training error; returns (net, its initial
    state dict, epochs, error)."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(x.shape[1], 64), nn.ReLU(), nn.Linear(64, 1))
    initial = {name: tensor.clone() for name, tensor in net.state_dict().items()}
    optimiser = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    order = torch.Generator().manual_seed(seed)
    error, epoch = 1.0, 0
    while epoch < MODEL_EPOCHS and error > 0.0:
        epoch += 1
        for batch in torch.randperm(len(labels), generator=order).split(100):
            optimiser.zero_grad()
            loss = nn.functional.binary_cross_entropy_with_logits(net(x[batch])[:, 0], labels[batch].float())
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            error = float(((net(x)[:, 0] > 0).long() != labels).float().mean())
    return net.eval(), initial, epoch, error


def run_one(data_dir: str, name: str, seed: int, candidates: list, mc_samples: int, mode: str = "learned") -> list:
    """One (data set, seed): train MODEL once, certify it with every candidate in ``mode``; one record per
    candidate."""
    (x, labels), (x_test, labels_test) = load(data_dir, name, seed)
    started = time.perf_counter()
    net, initial, epochs, train_error = train_model(x, labels, seed)
    train_seconds = time.perf_counter() - started
    records = []
    for candidate in candidates:
        schedule, prior_schedule, mc_sampling = CANDIDATES[candidate]
        settings = DziugaiteRoySettings(
            objective="quad",
            init_state=None if mode == "learned" else initial,
            **MODES[mode],
            mc_samples=mc_samples,
            mc_sampling=mc_sampling,
            posterior_epochs=schedule.epochs,
            prior_epochs=prior_schedule.epochs,
        )
        started = time.perf_counter()
        cert = certify_stochastic_network(
            net, x, labels, settings, delta=DELTA, seed=seed, schedule=schedule, prior_schedule=prior_schedule
        )
        seconds = time.perf_counter() - started
        details = cert.result.details
        record = {
            "mode": mode,
            "candidate": candidate,
            "dataset": name,
            "seed": seed,
            "bound": cert.result.value,
            "test_error": cert.error(x_test, labels_test, n=TEST_DRAWS, seed=seed + 1),
            "sampled_error": details["sampled_error"],
            "kl": details["kl"],
            "seconds": seconds,
        }
        print(
            f"{name:>13} seed {seed} {candidate:>20}: certificate {record['bound']:.4f}, test error "
            f"{record['test_error']:.4f}, MC train error {record['sampled_error']:.4f}, KL {record['kl']:.2f}; "
            f"{seconds:.1f} s (MODEL: {epochs} epochs, train error {train_error:.4f}, {train_seconds:.1f} s)",
            flush=True,
        )
        records.append(record)
    return records


def summary(values: list) -> tuple:
    """(mean, spread): the spread is half the range over seeds."""
    return sum(values) / len(values), (max(values) - min(values)) / 2.0


def table(records: list, candidates: list, datasets: list, key: str) -> tuple:
    """The lines of the candidate x data set table of ``key`` (mean +- spread over seeds, then the mean over
    data sets), and {candidate: (mean over data sets, {data set: (mean, spread)})}."""
    width = 17
    lines = [f"{key:<22}" + "".join(f"{d:>{width}}" for d in datasets) + f"{'mean over sets':>{width}}"]
    scores = {}
    for candidate in candidates:
        cells = {}
        for dataset in datasets:
            values = [r[key] for r in records if r["candidate"] == candidate and r["dataset"] == dataset]
            cells[dataset] = summary(values)
        overall = sum(mean for mean, _ in cells.values()) / len(cells)
        scores[candidate] = (overall, cells)
        row = "".join(f"{f'{m:.4f} +- {s:.4f}':>{width}}" for m, s in cells.values())
        lines.append(f"{candidate:<22}{row}{overall:>{width}.4f}")
    return lines, scores


def paired(records: list, candidates: list, baseline: str = BASELINE) -> list:
    """Lines of each candidate's certificate minus the baseline's on the same (data set, seed), averaged
    over all runs, with the number of runs where it is lower."""
    base = {(r["dataset"], r["seed"]): r["bound"] for r in records if r["candidate"] == baseline}
    lines = [f"paired difference in the certificate against {baseline} (same data set and seed)"]
    for candidate in candidates:
        diffs = [
            r["bound"] - base[(r["dataset"], r["seed"])]
            for r in records
            if r["candidate"] == candidate and (r["dataset"], r["seed"]) in base
        ]
        if candidate != baseline and diffs:
            lower = sum(d < 0 for d in diffs)
            lines.append(f"{candidate:<22}{sum(diffs) / len(diffs):+.4f}   lower in {lower} of {len(diffs)} runs")
    return lines


def choose(scores: dict, baseline: str) -> tuple:
    """The selection rule: the lowest mean over data sets, kept only if on no data set it is worse than
    ``baseline`` by more than the larger spread; returns (chosen, the best candidate, why)."""
    best = min(scores, key=lambda c: scores[c][0])
    if best == baseline or baseline not in scores:
        return best, best, "lowest mean over all data sets"
    worse = [
        dataset
        for dataset, (mean, spread) in scores[best][1].items()
        if mean - scores[baseline][1][dataset][0] > max(spread, scores[baseline][1][dataset][1])
    ]
    if worse:
        return baseline, best, f"{best} has the lowest mean but is worse beyond the spread on {', '.join(worse)}"
    return best, best, f"lowest mean over all data sets and not worse than {baseline} beyond the spread anywhere"


def report(records: list, candidates: list, datasets: list, baseline: str) -> tuple:
    """Print the certificate and test-error tables and the paired differences; returns (chosen, best, why)."""
    for key in ("bound", "test_error"):
        lines, scores = table(records, candidates, datasets, key)
        print("\n" + "\n".join(lines))
        if key == "bound":
            chosen, best, why = choose(scores, baseline)
    print("\n" + "\n".join(paired(records, candidates, baseline)))
    return chosen, best, why


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="folder holding mnist/, mnist-train/, fashion-mnist/, ...")
    parser.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=list(DATASETS))
    parser.add_argument("--candidates", nargs="+", choices=list(CANDIDATES), default=list(CANDIDATES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--mode", choices=list(MODES), default="learned", help="which certificate (see above)")
    parser.add_argument(
        "--mc-samples", type=int, default=DziugaiteRoySettings().mc_samples, help="posterior draws (the family's)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    records = []
    for name in args.datasets:
        for seed in args.seeds:
            records += run_one(args.data_dir, name, seed, args.candidates, args.mc_samples, args.mode)
    print(
        f"\n{len(records)} certifications, {time.perf_counter() - started:.0f} s on one thread; "
        f"seeds {args.seeds}, S = {M} binary points, f_quad, mode {args.mode} ({MODES[args.mode]}), "
        f"{args.mc_samples} MC samples"
    )
    chosen, best, why = report(records, args.candidates, args.datasets, BASELINE)
    current = [c for c in args.candidates if is_current(c)]
    print(f"\nchosen: {chosen} ({why}); the package's current defaults: {', '.join(current) or 'none of these'}")
    return {"records": records, "chosen": chosen, "best": best}


if __name__ == "__main__":
    main()
