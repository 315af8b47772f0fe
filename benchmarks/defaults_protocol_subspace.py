"""The protocol of ``defaults_protocol.py``, smaller, for the subspace family's training defaults.

``certify --bounds subspace --subspace-dim 500`` trains a compressed model in a random 500-dimensional
subspace from a seeded start (Adam at ``--subspace-lr``, quantisation-aware fine-tuning with the code length
weighted by ``--subspace-rate-weight``) and certifies it. Same data, binary task, S = 2,000, MODEL and
selection rule as ``defaults_protocol.py`` (MODEL is only the architecture here: ``distill`` is off);
fewer data sets and seeds, since one certification takes about a minute. Candidates: today's defaults, the
learning rate divided or multiplied by 4, and fine-tuning on the cross-entropy alone (rate weight 0).

    python benchmarks/defaults_protocol_subspace.py --data-dir DATA
    python benchmarks/defaults_protocol_subspace.py --data-dir DATA --datasets mnist --seeds 0 --candidates today
"""

import argparse
import time

import torch
from defaults_protocol import DATASETS, DELTA, M, load, report, train_model

from pacbayes.families.settings import SubspaceSettings
from pacbayes.subspace import subspace_bound, train_subspace_model

DIM = 500
BASELINE = "today"
CANDIDATES = {
    BASELINE: {},
    "lr/4": {"lr": SubspaceSettings().lr / 4},
    "lr*4": {"lr": SubspaceSettings().lr * 4},
    "rate-weight-0": {"rate_weight": 0.0},
}
"""Candidate settings: SubspaceSettings fields on top of today's defaults (dim = DIM)."""


def run_one(data_dir: str, name: str, seed: int, candidates: list) -> list:
    """One (data set, seed): MODEL once, then a compressed model trained and certified per candidate."""
    (x, labels), (x_test, labels_test) = load(data_dir, name, seed)
    net, _, _, _ = train_model(x, labels, seed)
    records = []
    for candidate in candidates:
        started = time.perf_counter()
        compressed = train_subspace_model(net, x, labels, SubspaceSettings(dim=DIM, **CANDIDATES[candidate]), seed=seed)
        result = subspace_bound(compressed, x, labels, delta=DELTA, test=(x_test, labels_test))[0]
        details = result.details
        record = {
            "candidate": candidate,
            "dataset": name,
            "seed": seed,
            "bound": result.value,
            "test_error": details["test_error"],
            "seconds": time.perf_counter() - started,
        }
        print(
            f"{name:>13} seed {seed} {candidate:>14}: certificate {record['bound']:.4f}, test error "
            f"{record['test_error']:.4f}, train error {details['train_error']:.4f}, {details['code_bits']} bits, "
            f"{details['levels']} levels; {record['seconds']:.1f} s",
            flush=True,
        )
        records.append(record)
    return records


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="folder holding mnist/, mnist-train/, fashion-mnist/, ...")
    parser.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=["mnist-train", "fashion-mnist"])
    parser.add_argument("--candidates", nargs="+", choices=list(CANDIDATES), default=list(CANDIDATES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    records = []
    for name in args.datasets:
        for seed in args.seeds:
            records += run_one(args.data_dir, name, seed, args.candidates)
    print(
        f"\n{len(records)} certifications, {time.perf_counter() - started:.0f} s on one thread; "
        f"seeds {args.seeds}, S = {M} binary points, d = {DIM}"
    )
    chosen, best, why = report(records, args.candidates, args.datasets, BASELINE)
    print(f"\nchosen: {chosen} ({why})")
    return {"records": records, "chosen": chosen, "best": best}


if __name__ == "__main__":
    main()
