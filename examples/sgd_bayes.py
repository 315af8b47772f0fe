"""Is SGD a Bayesian sampler? P_SGD(f|S) against P_B(f|S) on 7-bit Boolean tasks (Mingard et al., JMLR 2021).

Set-up (Mingard, Valle-Pérez, Skalse & Louis 2021, Sec. 5's Boolean system): all 128 inputs
x in {0,1}^7; one training set of ``--m`` = 32 inputs drawn at random (seeded), the other 96 the
test set T; several target functions f* of different Lempel-Ziv complexity (boolean_functions.py),
each labelling the same training inputs. A "function" is a network's labelling of T (its labels
on S are fixed by zero training error).

Network: 7 -> 40 -> 40 -> 1 ReLU, weights N(0, sigma_w^2 / fan_in), biases N(0, sigma_b^2)
(boolean_functions.ReluNets). This one prior is the initialisation of every training run, the
distribution the rejection sampler draws from, and (in the infinite-width limit) the NNGP.

- P_SGD(f|S): ``--runs`` independent networks per target and optimiser, all trained at once as
  one (runs, D) tensor (boolean_functions.train_to_fit): plain SGD (batch 8, ``--sgd-lr``) and,
  as the second arm, Adam (batch 8, ``--adam-lr``), logistic loss, until zero training error;
  the frequency of each f among the runs that fit S.
- P_B(f|S) by rejection (exact, finite width): ``--draws`` prior networks, kept when they fit S
  (boolean_functions.fitting_prior_functions; one pass serves every target). ``--heads`` output
  layers share each draw of the hidden layers: every network is still an exact prior draw, but
  the counts are dependent within a group (1 = independent draws, slower).
- P_B(f|S) by NNGP + EP: P(f|S) = P(S u T labelled by f) / P(S), two Gaussian orthant
  probabilities under pacbayes.kernels.FullyConnectedNNGP, each by converged EP
  (pacbayes.evidence.ep_log_evidence): an estimate, not a bound.
- For the ``--certify-top`` most frequent SGD functions of each target, a certified sandwich of
  the NNGP P(f|S) (pacbayes.evidence.certified_log_evidence: EP-cavity importance sampling with
  Markov for L, Botev's 2017 psi* for U): with L <= ln P <= U for
  both orthants, exp(L(S u f) - U(S)) <= P(f|S) <= exp(U(S u f) - L(S)), jointly with probability
  >= 1 - ``--delta`` (delta split over every lower bound computed). It certifies the NNGP
  quantity, not the width-40 network's.

Printed: P(S) by rejection and EP, the training statistics, and per target and optimiser the
Pearson correlation of log10 P_SGD with log10 P_B over functions SGD found >= ``--min-count``
times; two diagnostics bound what agreement is measurable: the split-half correlation of P_SGD
with itself (counting noise) and the rejection-vs-EP correlation (finite width vs the NNGP).
Saves a grid of log-log plots (rows: targets; columns: rejection, EP).

    python examples/sgd_bayes.py [--runs 100000] [--draws 32000000] [--out examples/figures/sgd_bayes.png]
    python examples/sgd_bayes.py --quick          # seconds, tiny budgets (for the tests)
"""

import argparse
import math
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from boolean_functions import ReluNets, boolean_inputs, fitting_prior_functions, lz_complexity, train_to_fit  # noqa: E402

from pacbayes.errors import InputError  # noqa: E402
from pacbayes.evidence import certified_log_evidence, ep_log_evidence  # noqa: E402
from pacbayes.kernels import FullyConnectedNNGP  # noqa: E402

N_INPUTS, WIDTHS, SIGMA_W, SIGMA_B = 7, (40, 40), 1.0, 0.1
TARGETS = {
    "x1 OR x2": lambda x: (x[:, 0] + x[:, 1]) > 0,
    "x1 OR (x2 AND x3)": lambda x: (x[:, 0] > 0) | ((x[:, 1] > 0) & (x[:, 2] > 0)),
    "maj(x1,x2,x3)": lambda x: x[:, :3].sum(dim=1) >= 2,
    "(x1 AND x2) OR (x3 AND x4)": lambda x: (x[:, 0] * x[:, 1] + x[:, 2] * x[:, 3]) > 0,
    "x1 XOR x2": lambda x: (x[:, 0] + x[:, 1]) == 1,
}
DEFAULT_TARGETS = ("x1 OR x2", "maj(x1,x2,x3)", "(x1 AND x2) OR (x3 AND x4)")
ARMS = ("sgd", "adam")


def function_counts(signs: torch.Tensor) -> dict:
    """Counts of each distinct row of a bool matrix (networks x test inputs), keyed by the packed bytes."""
    if signs.shape[0] == 0:
        return {}
    unique, counts = np.unique(np.packbits(signs.numpy(), axis=1), axis=0, return_counts=True)
    return {row.tobytes(): int(c) for row, c in zip(unique, counts, strict=False)}


def key_signs(key: bytes, n: int) -> torch.Tensor:
    """The +-1 labelling of the n test inputs encoded by a function key."""
    bits = np.unpackbits(np.frombuffer(key, dtype=np.uint8))[:n]
    return torch.tensor(bits, dtype=torch.float64) * 2 - 1


def train_arm(nets, x_train, y_train, x_test, args, optimiser, generator) -> dict:
    """P_SGD counts of one optimiser: ``args.runs`` runs in batches of ``args.batch_runs`` networks."""
    lr = args.sgd_lr if optimiser == "sgd" else args.adam_lr
    signs, epochs, failed = [], [], 0
    for start in range(0, args.runs, args.batch_runs):
        theta = nets.sample(min(args.batch_runs, args.runs - start), generator)
        result = train_to_fit(
            nets,
            theta,
            x_train,
            y_train,
            optimiser=optimiser,
            lr=lr,
            batch=args.batch,
            max_epochs=args.max_epochs,
            generator=generator,
        )
        failed += int((~result.converged).sum())
        with torch.no_grad():
            signs.append(nets.logits(result.theta[result.converged], x_test) > 0)
        epochs.append(result.epochs[result.converged])
    epochs = torch.cat(epochs).to(torch.float64)
    return {
        "counts": function_counts(torch.cat(signs)),
        "failed": failed,
        "mean_epochs": float(epochs.mean()) if epochs.numel() else math.nan,
        "max_epochs": int(epochs.max()) if epochs.numel() else 0,
    }


def split_half(counts: dict, min_count: int, generator) -> float:
    """Pearson r of log10 counts between two random halves of the runs (functions >= min_count in all, both halves > 0).

    Each run goes to either half on a fair coin, so a function's count splits binomially; the r
    this gives is what counting noise alone leaves of a perfect agreement.
    """
    keys = [k for k, c in counts.items() if c >= min_count]
    totals = torch.tensor([counts[k] for k in keys], dtype=torch.float64)
    if len(keys) < 3:
        return math.nan
    half = torch.binomial(totals, torch.full_like(totals, 0.5), generator=generator)
    ok = (half > 0) & (half < totals)
    return pearson(torch.log10(half[ok]).numpy(), torch.log10(totals[ok] - half[ok]).numpy())


def pearson(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    spread = len(a) >= 3 and np.ptp(a) > 1e-9 and np.ptp(b) > 1e-9  # r is undefined for a constant column
    return float(np.corrcoef(a, b)[0, 1]) if spread else math.nan


def ep_conditionals(K, train_signs, keys, n_test) -> tuple[dict, float]:
    """log10 P(f|S) = [ln P(S u T labelled f) - ln P(S)] / ln 10 under the NNGP, both by EP; and ln P(S)."""
    m = train_signs.numel()
    log_train = ep_log_evidence(K[:m, :m], train_signs).log_evidence
    values = {
        key: (ep_log_evidence(K, torch.cat([train_signs, key_signs(key, n_test)])).log_evidence - log_train)
        / math.log(10)
        for key in keys
    }
    return values, log_train


def certified_conditionals(K, train_signs, keys, n_test, delta, seed) -> tuple[dict, object]:
    """Certified [low, high] of log10 P(f|S) under the NNGP for each key, jointly w.p. >= 1 - delta."""
    m = train_signs.numel()
    share = delta / (len(keys) + 1)
    train = certified_log_evidence(K[:m, :m], train_signs, delta_prime=share, seed=seed)
    intervals = {}
    for index, key in enumerate(keys):
        joint = certified_log_evidence(
            K, torch.cat([train_signs, key_signs(key, n_test)]), delta_prime=share, seed=seed + 1 + index
        )
        low = (joint.lower - train.upper) / math.log(10) if train.upper is not None else -math.inf
        high = min(0.0, (joint.upper - train.lower) / math.log(10)) if joint.upper is not None else 0.0
        intervals[key] = (low, high)
    return intervals, train


def collision_probability(counts: dict) -> float:
    """Unbiased estimate of sum_f P(f)^2 (two independent samples agree on T) from counts: sum c(c-1) / (N(N-1))."""
    total = sum(counts.values())
    return sum(c * (c - 1) for c in counts.values()) / (total * (total - 1)) if total > 1 else math.nan


def mean_test_error(counts: dict, test_labels: torch.Tensor) -> float:
    total = sum(counts.values())
    return sum(c * test_error(k, test_labels) for k, c in counts.items()) / total if total else math.nan


def error_samples(counts: dict, test_labels: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Test errors of the distinct functions and their counts (for histograms)."""
    keys = list(counts)
    return np.array([test_error(k, test_labels) for k in keys]), np.array([counts[k] for k in keys], dtype=float)


def log10_frequencies(counts: dict) -> dict:
    total = sum(counts.values())
    return {key: math.log10(c / total) for key, c in counts.items()}


def run(args) -> dict:
    generator = torch.Generator().manual_seed(args.seed)
    nets = ReluNets(N_INPUTS, WIDTHS, SIGMA_W, SIGMA_B)
    x_all = torch.tensor(boolean_inputs(N_INPUTS), dtype=torch.float32)
    order = torch.randperm(2**N_INPUTS, generator=generator)
    train_index, test_index = order[: args.m].sort().values, order[args.m :].sort().values
    x_train, x_test = x_all[train_index], x_all[test_index]
    labels = {name: TARGETS[name](x_all) for name in args.targets}
    K = FullyConnectedNNGP(depth=len(WIDTHS), activation="relu", sigma_w=SIGMA_W, sigma_b=SIGMA_B).matrix(
        x_all.to(torch.float64)
    )[torch.cat([train_index, test_index])][:, torch.cat([train_index, test_index])]

    started = time.perf_counter()
    accepted = fitting_prior_functions(
        nets,
        x_train,
        torch.stack([labels[name][train_index] for name in args.targets]),
        x_test,
        args.draws,
        generator,
        heads=args.heads,
    )
    seconds = {"rejection": time.perf_counter() - started}
    results = {}
    for name, signs in zip(args.targets, accepted, strict=False):
        y = labels[name]
        block = {
            "lz": lz_complexity("".join("1" if b else "0" for b in y.tolist())),
            "rejection": function_counts(signs),
            "accepted": signs.shape[0],
            "test_labels": y[test_index],
        }
        for optimiser in ARMS:
            started = time.perf_counter()
            block[optimiser] = train_arm(nets, x_train, y[train_index], x_test, args, optimiser, generator)
            seconds[f"{optimiser} {name}"] = time.perf_counter() - started
        started = time.perf_counter()
        train_signs = y[train_index].to(torch.float64) * 2 - 1
        frequent = {k for arm in ARMS for k, c in block[arm]["counts"].items() if c >= args.min_count}
        frequent |= {k for k, c in block["rejection"].items() if c >= args.min_count}
        block["ep"], block["ep_log_ps"] = ep_conditionals(K, train_signs, sorted(frequent), len(test_index))
        top = sorted(block["sgd"]["counts"], key=block["sgd"]["counts"].get, reverse=True)[: args.certify_top]
        block["certified"], block["certified_ps"] = certified_conditionals(
            K, train_signs, top, len(test_index), args.delta / len(args.targets), args.seed
        )
        block["split_half"] = {arm: split_half(block[arm]["counts"], args.min_count, generator) for arm in ARMS}
        seconds[f"NNGP {name}"] = time.perf_counter() - started
        results[name] = block
    return {"targets": results, "seconds": seconds}


def correlations(block, min_count) -> dict:
    """Pearson r of log10 P_SGD against each P_B estimate, over functions with >= min_count SGD counts."""
    rows = {}
    rejection = log10_frequencies(block["rejection"])
    for arm in ARMS:
        counts = block[arm]["counts"]
        frequency = log10_frequencies(counts)
        keys = [k for k, c in counts.items() if c >= min_count]
        for name, values in (("rejection", rejection), ("ep", block["ep"])):
            both = [k for k in keys if k in values]
            rows[arm, name] = (pearson([frequency[k] for k in both], [values[k] for k in both]), len(both), len(keys))
    shared = [k for k, c in block["rejection"].items() if c >= min_count and k in block["ep"]]
    rows["rejection", "ep"] = (
        pearson([rejection[k] for k in shared], [block["ep"][k] for k in shared]),
        len(shared),
        len(shared),
    )
    return rows


def test_error(key, test_labels) -> float:
    return float((key_signs(key, test_labels.numel()) > 0).ne(test_labels).to(torch.float64).mean())


def report(result, args) -> dict:
    print(
        f"7-bit Boolean tasks: m = {args.m} training inputs, {2**N_INPUTS - args.m} test inputs; 7-40-40-1 ReLU, "
        f"sigma_w = {SIGMA_W}, sigma_b = {SIGMA_B}; {args.runs:,} runs per optimiser (batch {args.batch}); "
        f"{args.draws:,} prior draws ({args.heads} heads per hidden draw)"
    )
    table = {}
    for name, block in result["targets"].items():
        ps = block["accepted"] / args.draws
        cert = block["certified_ps"]
        print(f"\ntarget {name}: C_LZ = {block['lz']:.1f}")
        print(
            f"  P(S): rejection {ps:.2e} ({block['accepted']} accepted, {len(block['rejection'])} distinct functions); "
            f"NNGP/EP {math.exp(block['ep_log_ps']):.2e}; NNGP certified ln P(S) in [{cert.lower:.2f}, "
            f"{cert.upper if cert.upper is not None else math.inf:.2f}]"
        )
        for arm in ARMS:
            counts = block[arm]["counts"]
            total = sum(counts.values())
            frequent = sum(c for c in counts.values() if c >= args.min_count)
            print(
                f"  {arm:<4}: {total:,} of {args.runs:,} runs fit S (mean {block[arm]['mean_epochs']:.1f} epochs, "
                f"max {block[arm]['max_epochs']}); {len(counts):,} distinct functions; those seen >= "
                f"{args.min_count} times hold {frequent / max(total, 1):.0%} of the runs; split-half r = "
                f"{block['split_half'][arm]:.3f}"
            )
        top = sorted(block["sgd"]["counts"], key=block["sgd"]["counts"].get, reverse=True)[: args.top]
        shares = {
            source: sum(counts.get(k, 0) for k in top) / max(sum(counts.values()), 1)
            for source, counts in (
                ("sgd", block["sgd"]["counts"]),
                ("adam", block["adam"]["counts"]),
                ("rejection", block["rejection"]),
            )
        }
        hits = sum(block["rejection"].get(k, 0) for k in top)
        print(
            f"  the {len(top)} most frequent SGD functions hold {shares['sgd']:.1%} of SGD runs, "
            f"{shares['adam']:.1%} of Adam runs, and {hits} of {block['accepted']} rejection draws "
            f"({shares['rejection']:.1%}; {shares['sgd'] * block['accepted']:.1f} expected if P_B = P_SGD)"
        )
        print(
            "  P(two samples agree on T) = sum_f P(f)^2: "
            + ", ".join(
                f"{source} {collision_probability(counts):.2e}"
                for source, counts in (
                    ("SGD", block["sgd"]["counts"]),
                    ("Adam", block["adam"]["counts"]),
                    ("rejection", block["rejection"]),
                )
            )
        )
        print(
            "  mean test error: "
            + ", ".join(
                f"{source} {mean_test_error(counts, block['test_labels']):.4f}"
                for source, counts in (
                    ("SGD", block["sgd"]["counts"]),
                    ("Adam", block["adam"]["counts"]),
                    ("rejection (P_B, width 40)", block["rejection"]),
                )
            )
        )
        rows = correlations(block, args.min_count)
        table[name] = rows
        print(f"  Pearson r of log10 P_SGD with log10 P_B (functions with >= {args.min_count} SGD counts):")
        for (arm, estimator), (r, count, eligible) in rows.items():
            if arm == "rejection":
                print(f"    rejection vs EP (finite width vs NNGP): r = {r:6.3f} over {count} functions")
            else:
                print(f"    {arm:<4} vs {estimator:<9}: r = {r:6.3f} over {count} of {eligible} functions")
        print("  most frequent SGD functions: test error, P_SGD, P_Adam, P_B rejection, P_B EP, NNGP certified P(f|S)")
        sgd_counts, adam_counts = block["sgd"]["counts"], block["adam"]["counts"]
        sgd_total, adam_total = max(sum(sgd_counts.values()), 1), max(sum(adam_counts.values()), 1)
        for key in sorted(sgd_counts, key=sgd_counts.get, reverse=True)[:6]:
            p_rej = block["rejection"].get(key, 0) / max(block["accepted"], 1)
            low, high = block["certified"].get(key, (math.nan, math.nan))
            print(
                f"    {test_error(key, block['test_labels']):.3f}  {sgd_counts[key] / sgd_total:9.2e} "
                f"{adam_counts.get(key, 0) / adam_total:9.2e} {p_rej:9.2e} {10 ** block['ep'].get(key, math.nan):9.2e}"
                f"  [{10**low:.1e}, {10**high:.1e}]"
            )
    print("\nseconds: " + ", ".join(f"{k} {v:.0f}" for k, v in result["seconds"].items()))
    return table


def plot(result, table, args) -> None:
    """Per target: P_SGD vs P_B (EP) log-log (left); test-error distributions, exact rejection P_B included (right)."""
    names = list(result["targets"])
    figure, axes = plt.subplots(len(names), 2, figsize=(12, 4.3 * len(names)), squeeze=False)
    styles = {"sgd": ("o", "tab:blue", "SGD"), "adam": ("^", "tab:orange", "Adam")}
    for row, name in enumerate(names):
        block = result["targets"][name]
        ax, low = axes[row, 0], 0.0
        for arm, (marker, color, label) in styles.items():
            counts = block[arm]["counts"]
            frequency = log10_frequencies(counts)
            keys = [k for k, c in counts.items() if c >= args.min_count and k in block["ep"]]
            if keys:
                xs, ys = np.array([block["ep"][k] for k in keys]), np.array([frequency[k] for k in keys])
                r, count, _ = table[name][arm, "ep"]
                ax.scatter(
                    10**xs,
                    10**ys,
                    s=14,
                    alpha=0.6,
                    marker=marker,
                    color=color,
                    label=f"{label}: r = {r:.2f} over {count} functions",
                )
                low = min(low, xs.min(), ys.min())
        sgd = log10_frequencies(block["sgd"]["counts"])
        for index, (key, (a, b)) in enumerate(block["certified"].items()):
            ax.plot(
                [10 ** max(a, low - 2), 10**b],
                [10 ** sgd[key]] * 2,
                color="black",
                lw=0.8,
                label="NNGP certified range of P_B, top SGD functions" if index == 0 else None,
            )
        ax.plot([10 ** (low - 2), 1], [10 ** (low - 2), 1], color="grey", lw=0.8, ls="--", label="P_SGD = P_B")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(10 ** (low - 0.3), 1.5)
        ax.set_xlabel("P_B(f|S), NNGP + EP")
        ax.set_ylabel("P_SGD(f|S)")
        ax.set_title(f"{name} (C_LZ {block['lz']:.0f}): functions with >= {args.min_count} counts", fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
        ax = axes[row, 1]
        bins = np.linspace(0, 0.5, 49)
        for source, counts, color in (
            ("SGD", block["sgd"]["counts"], "tab:blue"),
            ("Adam", block["adam"]["counts"], "tab:orange"),
            (f"P_B by rejection (exact, {block['accepted']:,} draws)", block["rejection"], "black"),
        ):
            if counts:
                errors, weights = error_samples(counts, block["test_labels"])
                ax.hist(
                    errors,
                    bins=bins,
                    weights=weights / weights.sum(),
                    histtype="step",
                    color=color,
                    lw=1.4,
                    label=f"{source}: mean {np.average(errors, weights=weights):.3f}",
                )
        ax.set_xlabel("test error of the function on the 96 test inputs")
        ax.set_ylabel("probability")
        ax.set_title(f"{name}: test-error distribution under P_SGD and P_B", fontsize=9)
        ax.legend(fontsize=7)
    figure.suptitle(f"Is SGD a Bayesian sampler? 7-bit Boolean, m = {args.m}, {args.runs:,} runs per optimiser")
    figure.tight_layout()
    figure.savefig(args.out, dpi=100)


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--m", type=int, default=32)
    parser.add_argument("--targets", nargs="+", default=list(DEFAULT_TARGETS), choices=list(TARGETS), metavar="TARGET")
    parser.add_argument("--runs", type=int, default=100_000, help="training runs per target and optimiser")
    parser.add_argument("--batch-runs", type=int, default=500, help="networks trained together (cache-sized)")
    parser.add_argument("--batch", type=int, default=8, help="minibatch size")
    parser.add_argument("--sgd-lr", type=float, default=0.5)
    parser.add_argument("--adam-lr", type=float, default=0.03)
    parser.add_argument("--max-epochs", type=int, default=2000)
    parser.add_argument("--draws", type=int, default=32_000_000, help="prior networks for rejection sampling")
    parser.add_argument("--heads", type=int, default=32, help="output layers per draw of the hidden layers")
    parser.add_argument("--min-count", type=int, default=10)
    parser.add_argument("--certify-top", type=int, default=3)
    parser.add_argument("--top", type=int, default=20, help="most frequent SGD functions whose total mass is compared")
    parser.add_argument("--delta", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for these small tensors)")
    parser.add_argument("--out", default="sgd_bayes.png")
    parser.add_argument("--quick", action="store_true", help="tiny budgets: 2 targets, 500 runs, 320,000 draws")
    args = parser.parse_args(argv)
    if args.quick:
        args.targets, args.runs, args.draws, args.min_count, args.certify_top = args.targets[:2], 500, 320_000, 3, 1
    if not 0 < args.m < 2**N_INPUTS:
        raise InputError(f"--m must be between 1 and {2**N_INPUTS - 1}, got {args.m}")
    if not 0 < args.delta < 1:
        raise InputError(f"--delta must be in (0, 1), got {args.delta}")
    return args


def main(argv=None) -> dict:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run(args)
    table = report(result, args)
    plot(result, table, args)
    print(f"saved {args.out}")
    return {"result": result, "correlations": table}


if __name__ == "__main__":
    main()
