"""Is SGD a Bayesian sampler? P_SGD(f|S) against P_B(f|S) on a 7-bit Boolean task (Mingard et al. 2021).

Task: all 128 inputs x in {0,1}^7, target f*(x) = x_1 OR (x_2 AND x_3); a training set S of
``--m`` inputs drawn at random (seeded), labelled by f*; the other inputs are the test set T.
A function is the network's labelling of T (the labels on S are fixed by zero training error).

Network: 7 -> 40 -> 40 -> 1 ReLU, weights N(0, sigma_w^2 / fan_in), biases N(0, sigma_b^2) --
one Gaussian prior over parameters, used by every estimator below.

- P_SGD(f|S): ``--sgd-runs`` independent networks, each initialised from the prior and trained
  with minibatch Adam (logistic loss, batch 8) until it classifies S perfectly; the frequency of
  each f (Mingard et al. report the same agreement for plain SGD and for Adam).
- P_B(f|S), rejection: draw networks from the prior and keep those that fit S exactly --
  exact samples of the Bayesian posterior (prior restricted to S-consistent functions).
- P_B(f|S), elliptical slice sampling (Murray, Adams & MacKay 2010) over the same network's
  weights, with the hard zero-training-error likelihood: the ellipse through the current weights
  and a fresh prior draw is searched by bracket shrinking, and any proposal that fits S is
  accepted (the slice threshold of an indicator likelihood). Chains start from rejection samples
  when rejection found enough (exact posterior draws: stationary from the first step), else from
  SGD solutions with a burn-in. NUTS cannot do this: the indicator has no useful gradient.
- P_B(f|S), NNGP/EP: the infinite-width limit of the same prior is the NNGP
  (pacbayes.kernels.FullyConnectedNNGP), and P(f|S) = P(S u T labelled by f) / P(S), both
  Gaussian orthant probabilities estimated by expectation propagation (pacbayes.evidence).

Prints the Pearson correlation of log10 probabilities over functions found by both estimators
and saves a log-log plot.

    python examples/sgd_bayes.py [--m 64] [--sgd-runs 2000] [--rejection 200000] [--threads 1] [--out sgd_bayes.png]
"""

import argparse
import math
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from pacbayes.evidence import ep_log_evidence  # noqa: E402
from pacbayes.kernels import FullyConnectedNNGP  # noqa: E402

N_INPUTS = 7
WIDTHS = (40, 40)
SIGMA_W, SIGMA_B = 1.0, 0.1


def boolean_inputs(n: int = N_INPUTS) -> torch.Tensor:
    index = torch.arange(2**n)
    return ((index[:, None] >> torch.arange(n - 1, -1, -1)) & 1).to(torch.float32)


def target_function(x: torch.Tensor) -> torch.Tensor:
    """f*(x) = x_1 OR (x_2 AND x_3), as a bool per input."""
    return (x[:, 0] > 0) | ((x[:, 1] > 0) & (x[:, 2] > 0))


def layer_shapes():
    sizes = (N_INPUTS,) + WIDTHS + (1,)
    return list(zip(sizes[:-1], sizes[1:]))


def prior_scales() -> torch.Tensor:
    """Standard deviation of every parameter in the flat layout [W1, b1, W2, b2, W3, b3]."""
    parts = []
    for fan_in, fan_out in layer_shapes():
        parts += [torch.full((fan_in * fan_out,), SIGMA_W / math.sqrt(fan_in)), torch.full((fan_out,), SIGMA_B)]
    return torch.cat(parts)


def logits(theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Outputs (R, n) of R networks with flat parameters theta (R, D) on inputs x (n, 7)."""
    h, offset = x.expand(theta.shape[0], -1, -1), 0
    shapes = layer_shapes()
    for layer, (fan_in, fan_out) in enumerate(shapes):
        weight = theta[:, offset : offset + fan_in * fan_out].reshape(-1, fan_in, fan_out)
        offset += fan_in * fan_out
        bias = theta[:, offset : offset + fan_out].unsqueeze(1)
        offset += fan_out
        h = torch.baddbmm(bias, h, weight)
        if layer < len(shapes) - 1:
            h = torch.relu(h)
    return h.squeeze(-1)


def fits(theta, x_train, y_train) -> torch.Tensor:
    return ((logits(theta, x_train) > 0) == y_train).all(dim=1)


def function_keys(theta, x_test) -> np.ndarray:
    """Each network's labelling of the test inputs, packed into bytes (one row per network)."""
    with torch.no_grad():
        bits = (logits(theta, x_test) > 0).numpy()
    return np.packbits(bits, axis=1)


def count_functions(keys: np.ndarray) -> dict:
    if len(keys) == 0:
        return {}
    unique, counts = np.unique(keys, axis=0, return_counts=True)
    return {row.tobytes(): int(c) for row, c in zip(unique, counts)}


def rejection_samples(x_train, y_train, draws: int, generator, chunk: int = 20_000) -> torch.Tensor:
    """Parameters of every prior draw (out of ``draws``) that fits S exactly."""
    scales = prior_scales()
    kept = []
    with torch.no_grad():
        for start in range(0, draws, chunk):
            theta = torch.randn(min(chunk, draws - start), scales.numel(), generator=generator) * scales
            kept.append(theta[fits(theta, x_train, y_train)])
    return torch.cat(kept)


def elliptical_slice_chains(
    start: torch.Tensor, x_train, y_train, steps: int, generator, max_shrinks: int = 200
) -> list:
    """Run one elliptical slice sampler per row of ``start`` (which must fit S); states after each step.

    Whitened coordinates u = theta / scales ~ N(0, I). For the indicator likelihood every proposal
    that fits S lies on the slice, so a step draws nu ~ N(0, I), an angle phi in [0, 2 pi) and the
    bracket [phi - 2 pi, phi], and shrinks the bracket towards 0 until u cos phi + nu sin phi fits S.
    """
    scales = prior_scales()
    u = start / scales
    states = []
    with torch.no_grad():
        for _ in range(steps):
            nu = torch.randn(u.shape, generator=generator)
            phi = torch.rand(u.shape[0], generator=generator) * 2 * math.pi
            low, high = phi - 2 * math.pi, phi.clone()
            pending = torch.ones(u.shape[0], dtype=torch.bool)
            new = u.clone()
            for _ in range(max_shrinks):
                index = pending.nonzero().squeeze(1)
                if index.numel() == 0:
                    break
                angle = phi[index, None]
                proposal = u[index] * torch.cos(angle) + nu[index] * torch.sin(angle)
                ok = fits(proposal * scales, x_train, y_train)
                new[index[ok]] = proposal[ok]
                pending[index[ok]] = False
                rejected = index[~ok]
                negative = phi[rejected] < 0
                low[rejected] = torch.where(negative, phi[rejected], low[rejected])
                high[rejected] = torch.where(negative, high[rejected], phi[rejected])
                phi[rejected] = low[rejected] + torch.rand(rejected.numel(), generator=generator) * (
                    high[rejected] - low[rejected]
                )
            u = new  # a chain still pending after max_shrinks keeps its state (phi -> 0)
            states.append(u * scales)
    return states


def sgd_solutions(x_train, y_train, runs: int, generator, *, lr: float, batch: int, max_steps: int) -> torch.Tensor:
    """Train ``runs`` networks from the prior until each fits S; return those that did.

    Each network draws its own minibatches of ``batch`` training points and takes Adam steps
    (Kingma & Ba 2015, elementwise, so the networks stay independent) on the logistic loss; a
    network stops the moment it classifies S perfectly.
    """
    scales = prior_scales()
    theta = (torch.randn(runs, scales.numel(), generator=generator) * scales).requires_grad_()
    first, second = torch.zeros(theta.shape), torch.zeros(theta.shape)
    targets = y_train.to(torch.float32)
    active = ~fits(theta.detach(), x_train, y_train)
    m = x_train.shape[0]
    for step in range(1, max_steps + 1):
        if not active.any():
            break
        index = torch.rand(runs, m, generator=generator).argsort(dim=1)[:, :batch]
        out = logits(theta, x_train)  # (runs, m); the loss sees each net's minibatch
        chosen = torch.zeros_like(out).scatter_(1, index, 1.0)
        loss = (
            torch.nn.functional.binary_cross_entropy_with_logits(out, targets.expand_as(out), reduction="none") * chosen
        ).sum() / batch
        (grad,) = torch.autograd.grad(loss, theta)
        with torch.no_grad():
            first.mul_(0.9).add_(0.1 * grad)
            second.mul_(0.999).add_(0.001 * grad * grad)
            update = (first / (1 - 0.9**step)) / ((second / (1 - 0.999**step)).sqrt() + 1e-8)
            theta -= lr * update * active[:, None]
            active &= ~fits(theta, x_train, y_train)
    with torch.no_grad():
        return theta.detach()[fits(theta.detach(), x_train, y_train)]


def ep_conditional_log10(keys: list, x_all, train_index, test_index, y_train) -> dict:
    """log10 P(f|S) under the NNGP prior: [ln P(S u T labelled f) - ln P(S)] / ln 10, both by EP."""
    kernel = FullyConnectedNNGP(depth=len(WIDTHS), activation="relu", sigma_w=SIGMA_W, sigma_b=SIGMA_B)
    K = kernel.matrix(x_all.to(torch.float64))
    order = torch.cat([train_index, test_index])
    K_all = K[order][:, order]
    train_signs = y_train.to(torch.float64) * 2 - 1
    log_train = ep_log_evidence(K_all[: len(train_index), : len(train_index)], train_signs).log_evidence
    result = {}
    for key in keys:
        bits = np.unpackbits(np.frombuffer(key, dtype=np.uint8))[: len(test_index)]
        signs = torch.cat([train_signs, torch.tensor(bits, dtype=torch.float64) * 2 - 1])
        result[key] = (ep_log_evidence(K_all, signs).log_evidence - log_train) / math.log(10)
    return result, log_train


def log10_frequencies(counts: dict) -> dict:
    total = sum(counts.values())
    return {key: math.log10(c / total) for key, c in counts.items()}


def correlation(x: dict, y: dict, min_count_keys=None):
    keys = [k for k in x if k in y and (min_count_keys is None or k in min_count_keys)]
    if len(keys) < 3:
        return float("nan"), len(keys)
    return float(np.corrcoef([x[k] for k in keys], [y[k] for k in keys])[0, 1]), len(keys)


def run(args):
    generator = torch.Generator().manual_seed(args.seed)
    x_all = boolean_inputs()
    y_all = target_function(x_all)
    permutation = torch.randperm(2**N_INPUTS, generator=generator)
    train_index, test_index = permutation[: args.m].sort().values, permutation[args.m :].sort().values
    x_train, y_train, x_test = x_all[train_index], y_all[train_index], x_all[test_index]
    seconds = {}

    started = time.perf_counter()
    sgd = sgd_solutions(
        x_train, y_train, args.sgd_runs, generator, lr=args.lr, batch=args.batch, max_steps=args.max_steps
    )
    p_sgd = count_functions(function_keys(sgd, x_test))
    seconds["sgd"] = time.perf_counter() - started

    started = time.perf_counter()
    accepted = rejection_samples(x_train, y_train, args.rejection, generator)
    p_rejection = count_functions(function_keys(accepted, x_test))
    seconds["rejection"] = time.perf_counter() - started

    started = time.perf_counter()
    # Rejection samples are exact posterior draws (no burn-in needed); where rejection found too
    # few, chains start at SGD solutions and the first ``ess_burn`` states are discarded.
    exact_start = len(accepted) >= args.chains
    pool = accepted if exact_start else sgd
    starts = pool[torch.randint(len(pool), (args.chains,), generator=generator)]
    burn = 0 if exact_start else args.ess_burn
    states = elliptical_slice_chains(starts, x_train, y_train, burn + args.ess_steps, generator)
    kept = torch.cat(states[burn + args.ess_thin - 1 :: args.ess_thin])
    p_ess = count_functions(function_keys(kept, x_test))
    moved = float(
        (function_keys(states[burn - 1] if burn else starts, x_test) != function_keys(states[-1], x_test))
        .any(axis=1)
        .mean()
    )
    seconds["ess"] = time.perf_counter() - started

    started = time.perf_counter()
    ranked = sorted(p_sgd, key=p_sgd.get, reverse=True)[: args.ep_functions]
    p_ep, log_evidence_train = ep_conditional_log10(ranked, x_all, train_index, test_index, y_train)
    seconds["ep"] = time.perf_counter() - started
    return {
        "sgd": p_sgd,
        "rejection": p_rejection,
        "ess": p_ess,
        "ep": p_ep,
        "seconds": seconds,
        "sgd_converged": len(sgd),
        "accepted": len(accepted),
        "log_evidence_train_ep": log_evidence_train,
        "ess_start": "rejection samples" if exact_start else f"SGD solutions, burn-in {burn}",
        "ess_moved": moved,
    }


def report(result, args):
    sgd = log10_frequencies(result["sgd"])
    frequent = {k for k, c in result["sgd"].items() if c >= args.min_count}
    estimates = {
        "rejection": log10_frequencies(result["rejection"]),
        "ess": log10_frequencies(result["ess"]),
        "ep": result["ep"],
    }
    print(f"7-bit task, target x1 OR (x2 AND x3), m = {args.m} training inputs, {2**N_INPUTS - args.m} test inputs")
    print(
        f"  SGD: {result['sgd_converged']} of {args.sgd_runs} runs reached zero training error; "
        f"{len(result['sgd'])} distinct functions"
    )
    print(
        f"  rejection: {result['accepted']} of {args.rejection:,} prior draws fit S "
        f"(P(S) ~ {result['accepted'] / args.rejection:.2e}; NNGP/EP: ln P(S) = "
        f"{result['log_evidence_train_ep']:.3f}, P(S) = {math.exp(result['log_evidence_train_ep']):.2e}); "
        f"{len(result['rejection'])} distinct functions"
    )
    print(
        f"  elliptical slice: {args.chains} chains x {args.ess_steps} kept steps, thinned by {args.ess_thin}, "
        f"started at {result['ess_start']}; {len(result['ess'])} distinct functions; "
        f"{result['ess_moved']:.0%} of chains changed function over the kept steps"
    )
    print(f"  NNGP/EP: P(f|S) for the {len(result['ep'])} most frequent SGD functions")
    print(
        f"\n  Pearson correlation of log10 P_SGD(f|S) with log10 P_B(f|S) "
        f"(functions found by SGD at least {args.min_count} times and by the estimator):"
    )
    correlations = {}
    for name, values in estimates.items():
        r, count = correlation(sgd, values, frequent)
        correlations[name] = (r, count)
        print(f"    {name:<10} r = {r:6.3f} over {count} functions")
    print("\n  the 8 most frequent SGD functions: P_SGD, P_B rejection, P_B ESS, P_B EP")
    for key in sorted(result["sgd"], key=result["sgd"].get, reverse=True)[:8]:
        cells = [10 ** sgd[key]] + [
            10 ** estimates[n][key] if key in estimates[n] else float("nan") for n in ("rejection", "ess", "ep")
        ]
        print("    " + "  ".join(f"{v:9.2e}" for v in cells))
    print("  seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in result["seconds"].items()))
    return sgd, estimates, correlations


def plot(sgd, estimates, correlations, out, args):
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    titles = {
        "rejection": "P_B by rejection sampling",
        "ess": "P_B by elliptical slice sampling",
        "ep": "P_B by NNGP + EP",
    }
    for ax, (name, values) in zip(axes, estimates.items()):
        keys = [k for k in sgd if k in values]
        if keys:
            xs, ys = np.array([10 ** values[k] for k in keys]), np.array([10 ** sgd[k] for k in keys])
            ax.scatter(xs, ys, s=12, alpha=0.6)
            low = min(xs.min(), ys.min())
            ax.plot([low, 1], [low, 1], color="grey", lw=0.8, ls="--")
        else:
            ax.text(
                0.5,
                0.5,
                "no function found by both\n(rejection: no prior draw fit S)",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"P_B(f|S) ({name})")
        ax.set_ylabel("P_SGD(f|S)")
        r, count = correlations[name]
        ax.set_title(f"{titles[name]}\nr = {r:.3f} over {count} functions")
    figure.suptitle(f"Is SGD a Bayesian sampler? 7-bit Boolean task, m = {args.m}")
    figure.tight_layout()
    figure.savefig(out, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--m", type=int, default=64)
    parser.add_argument("--sgd-runs", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=0.01, help="Adam step size")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument("--rejection", type=int, default=200_000, help="prior draws for rejection sampling")
    parser.add_argument("--chains", type=int, default=400)
    parser.add_argument("--ess-steps", type=int, default=100)
    parser.add_argument(
        "--ess-burn",
        type=int,
        default=60,
        help="steps discarded when chains start at SGD solutions (none from rejection samples)",
    )
    parser.add_argument("--ess-thin", type=int, default=5)
    parser.add_argument("--ep-functions", type=int, default=100)
    parser.add_argument("--min-count", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="sgd_bayes.png")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (1 is fastest on a busy machine)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sgd, estimates, correlations = report(run(args), args)
    plot(sgd, estimates, correlations, args.out, args)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
