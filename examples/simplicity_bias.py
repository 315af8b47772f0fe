"""Simplicity bias of the parameter-function map on tiny Boolean inputs (Valle-Pérez et al. 2019).

For n = 2, 3, 4 inputs the network sees all 2^n Boolean inputs x in {0,1}^n (n = 4 is the
2x2-pixel binary-image case, 2^16 = 65,536 possible functions). Many random networks are drawn
from their initialisation distribution (weights N(0, sigma_w^2 / fan_in), biases N(0, sigma_b^2)),
each network's truth table f(x) = [logit(x) > 0] is recorded, and the frequency of each function
estimates its prior probability P(f). Architectures: a perceptron with no hidden layer, and ReLU
nets with one and two hidden layers of ``--width`` units.

Complexity measures of a truth table (the 2^n output bits, input x read as a binary number with
x_1 the most significant bit, listed in increasing order):

- Lempel-Ziv complexity as in Valle-Pérez et al. (2019, Sec. 4) and Dingle et al. (Nat. Commun.
  2018, Methods): C_LZ(x) = log2(N) for the constant strings, else
  log2(N) [N_w(x_1..x_N) + N_w(x_N..x_1)] / 2, with N_w the number of words of the LZ76 exhaustive
  parsing (Lempel & Ziv 1976; counted with the Kaspar & Schuster 1987 scan);
- entropy of the truth table: the binary entropy H(k/N) of its fraction of ones, in bits;
- exact minimal formula size over the basis {AND, OR, NOT}: the fewest literal leaves of a formula
  computing f (negations pushed to the leaves by De Morgan's laws, so they cost nothing); the two
  constant functions have size 0. Computed exactly for every function by building all formulas
  level by level (size k = AND / OR of sizes i and k - i).

For n = 2 the perceptron's probability of each of the 16 functions is also computed exactly: the
parameters (w_1, w_2, b) are an isotropic Gaussian once rescaled, and f is picked by the polyhedral
cone {s_x (w.x + b) > 0 for all four x}, whose probability is its solid angle over 4 pi (spherical
polygon, summed over triangles with the Van Oosterom & Strackee 1983 formula). The two functions
that are not linearly separable (XOR and XNOR) get exactly 0.

The plot's dotted horizontal line is 1/N, N the number of sampled networks: the smallest nonzero
frequency a function can have (seen once). Points on it are functions seen once, whose true P(f)
may be far smaller; functions never seen (P(f) below about 1/N) cannot appear, so the floor, not
the network, cuts off the complex end of each panel.

    python examples/simplicity_bias.py [--samples 500000] [--width 40] [--out simplicity_bias.png]
    python examples/simplicity_bias.py --quick     # n = 2, 3 only (for the tests)
"""

import argparse
import math
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from boolean_functions import boolean_inputs, lz76_words, lz_complexity  # noqa: E402, F401  (lz76_words: tests)
from scipy.stats import spearmanr  # noqa: E402

ARCHITECTURES = {"perceptron": 0, "relu-1-hidden": 1, "relu-2-hidden": 2}
TWO_INPUT_NAMES = {
    0b0000: "FALSE",
    0b1000: "AND",
    0b0100: "x1 AND NOT x2",
    0b1100: "x1",
    0b0010: "NOT x1 AND x2",
    0b1010: "x2",
    0b0110: "XOR",
    0b1110: "OR",
    0b0001: "NOR",
    0b1001: "XNOR",
    0b0101: "NOT x2",
    0b1101: "x1 OR NOT x2",
    0b0011: "NOT x1",
    0b1011: "NOT x1 OR x2",
    0b0111: "NAND",
    0b1111: "TRUE",
}


# ---------------------------------------------------------------- truth tables and complexity
def truth_table(code: int, n: int) -> str:
    """The output bits f(x_0) f(x_1) ... of the function whose bit i is f(input i)."""
    return "".join(str((code >> i) & 1) for i in range(2**n))


def table_entropy(s: str) -> float:
    """Binary entropy (bits) of the fraction of ones in the truth table."""
    p = s.count("1") / len(s)
    return 0.0 if p in (0.0, 1.0) else -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def minimal_formula_sizes(n: int) -> np.ndarray:
    """Exact minimal leaf count of an {AND, OR, NOT} formula for every function of n inputs.

    Returns an int array indexed by the function code (bit i = f(input i)); constants get 0.
    Level k holds every function whose smallest formula has k leaves: the literals at k = 1, then
    AND / OR of a level-i and a level-(k - i) function. Every smallest formula of size k >= 2 has
    such a split at its root, so the first level that reaches a function is its exact size.
    """
    points, functions = 2**n, 2**2**n
    full = functions - 1
    inputs = boolean_inputs(n).astype(np.int64)
    literals = []
    for variable in range(n):
        code = int((inputs[:, variable] << np.arange(points)).sum())
        literals += [code, full ^ code]
    size = np.full(functions, -1, dtype=np.int16)
    size[[0, full]] = 0
    levels = {1: np.unique(np.array(literals, dtype=np.int64))}
    size[levels[1]] = 1
    k = 1
    while (size < 0).any():
        k += 1
        for i in range(1, k // 2 + 1):
            left, right = levels[i], levels[k - i]
            chunk = max(1, 4_000_000 // max(len(right), 1))
            for start in range(0, len(left), chunk):
                block = left[start : start + chunk, None]
                for combined in (block & right[None, :], block | right[None, :]):
                    combined = combined.ravel()
                    combined = combined[size[combined] < 0]
                    size[combined] = k
        levels[k] = np.flatnonzero(size == k)
    return size.astype(np.int64)


# ---------------------------------------------------------------- exact perceptron volumes, n = 2
def cone_solid_angle(normals: np.ndarray) -> float:
    """Solid angle of {w in R^3 : normals @ w > 0} (0 if empty); the cone must be pointed.

    Extreme rays are the pairwise plane intersections that satisfy every constraint; ordered
    around their mean, the spherical polygon is split into triangles, each measured with
    tan(Omega/2) = |a.(b x c)| / (1 + a.b + b.c + c.a) (Van Oosterom & Strackee 1983).
    """
    rays = []
    for i in range(len(normals)):
        for j in range(i + 1, len(normals)):
            direction = np.cross(normals[i], normals[j])
            norm = np.linalg.norm(direction)
            if norm < 1e-12:
                continue
            for candidate in (direction / norm, -direction / norm):
                if np.all(normals @ candidate >= -1e-12) and not any(np.allclose(candidate, r) for r in rays):
                    rays.append(candidate)
    if len(rays) < 3:
        return 0.0
    rays = np.array(rays)
    centre = rays.mean(axis=0)
    centre /= np.linalg.norm(centre)
    if np.any(normals @ centre <= 0):
        return 0.0
    e1 = np.cross(centre, [1.0, 0.0, 0.0] if abs(centre[0]) < 0.9 else [0.0, 1.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(centre, e1)
    rays = rays[np.argsort(np.arctan2(rays @ e2, rays @ e1))]
    total = 0.0
    for b, c in zip(rays[1:-1], rays[2:], strict=False):
        a = rays[0]
        total += 2.0 * math.atan2(abs(np.dot(a, np.cross(b, c))), 1.0 + a @ b + b @ c + c @ a)
    return total


def exact_perceptron_probabilities(sigma_w: float = 1.0, sigma_b: float = 1.0) -> np.ndarray:
    """P(f) for all 16 functions of a 2-input perceptron f(x) = [w.x + b > 0], exactly.

    w ~ N(0, sigma_w^2 / 2 I), b ~ N(0, sigma_b^2): with w = sigma_w u / sqrt(2), b = sigma_b v
    and (u, v) standard normal, f is chosen by the cone {s_x (sigma_w x.u / sqrt 2 + sigma_b v) > 0}
    (s_x = +1 where f(x) = 1, else -1), whose Gaussian measure is its solid angle / (4 pi).
    """
    inputs = boolean_inputs(2)
    rows = np.hstack([sigma_w * inputs / math.sqrt(2.0), np.full((4, 1), sigma_b)])
    probabilities = np.zeros(16)
    for code in range(16):
        signs = np.array([1.0 if (code >> i) & 1 else -1.0 for i in range(4)])
        probabilities[code] = cone_solid_angle(signs[:, None] * rows) / (4.0 * math.pi)
    return probabilities


# ---------------------------------------------------------------- sampling random networks
def sample_function_counts(
    n: int,
    hidden_layers: int,
    samples: int,
    *,
    width: int = 40,
    sigma_w: float = 1.0,
    sigma_b: float = 1.0,
    seed: int = 0,
    chunk: int = 50_000,
) -> np.ndarray:
    """Counts of each of the 2^(2^n) functions over ``samples`` random networks (seeded).

    Many networks at once: the weights of a chunk of networks are one batched tensor, and the
    2^n inputs go through all of them as batched matrix products. float32 (a tie at exactly 0 has
    probability 0 either way).
    """
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.tensor(boolean_inputs(n), dtype=torch.float32)
    powers = 2 ** torch.arange(2**n, dtype=torch.int64)
    counts = np.zeros(2**2**n, dtype=np.int64)
    done = 0
    while done < samples:
        batch = min(chunk, samples - done)
        fan_in = n
        for layer in range(hidden_layers + 1):
            out = 1 if layer == hidden_layers else width
            weight = torch.randn(batch, fan_in, out, generator=generator) * (sigma_w / math.sqrt(fan_in))
            bias = torch.randn(batch, 1, out, generator=generator) * sigma_b
            if layer == 0:  # shared inputs: one matrix product for the whole chunk
                h = (inputs @ weight.permute(1, 0, 2).reshape(n, -1)).reshape(-1, batch, out).transpose(0, 1) + bias
            else:
                h = torch.baddbmm(bias, h, weight)
            if layer < hidden_layers:
                h = torch.relu(h)
            fan_in = out
        codes = ((h.squeeze(-1) > 0).to(torch.int64) * powers).sum(dim=1).numpy()
        counts += np.bincount(codes, minlength=counts.size)
        done += batch
    return counts


# ---------------------------------------------------------------- the experiment
def complexity_table(n: int):
    codes = np.arange(2**2**n)
    tables = [truth_table(int(c), n) for c in codes]
    return {
        "lz": np.array([lz_complexity(t) for t in tables]),
        "entropy": np.array([table_entropy(t) for t in tables]),
        "formula": minimal_formula_sizes(n).astype(np.float64),
    }


def run(samples: int, width: int, seed: int, inputs=(2, 3, 4)):
    results = {}
    for n in inputs:
        started = time.perf_counter()
        measures = complexity_table(n)
        probabilities = {}
        for name, depth in ARCHITECTURES.items():
            counts = sample_function_counts(n, depth, samples, width=width, seed=seed + 100 * n + depth)
            probabilities[name] = counts / samples
        results[n] = {"measures": measures, "probabilities": probabilities, "seconds": time.perf_counter() - started}
    return results


def print_two_input_table(results, exact):
    measures, probabilities = results[2]["measures"], results[2]["probabilities"]
    print("n = 2: the 16 functions (truth table f(00) f(01) f(10) f(11))")
    print(
        f"  {'function':<14} {'table':<6} {'P exact':>9} {'P sampled':>10} "
        f"{'P 1-hidden':>10} {'P 2-hidden':>10} {'C_LZ':>5} {'H':>5} {'formula':>7}"
    )
    for code in np.argsort(-exact, kind="stable"):
        print(
            f"  {TWO_INPUT_NAMES[code]:<14} {truth_table(code, 2):<6} {exact[code]:>9.5f} "
            f"{probabilities['perceptron'][code]:>10.5f} {probabilities['relu-1-hidden'][code]:>10.5f} "
            f"{probabilities['relu-2-hidden'][code]:>10.5f} {measures['lz'][code]:>5.1f} "
            f"{measures['entropy'][code]:>5.2f} {int(measures['formula'][code]):>7d}"
        )


def print_summary(results, samples):
    print(
        f"\nSpearman rank correlation of P(f) with complexity over the functions seen "
        f"({samples:,} networks per architecture):"
    )
    print(
        f"  {'n':>2} {'architecture':<14} {'seen':>6} {'LZ':>7} {'entropy':>8} {'formula':>8} "
        f"{'max P':>8} {'argmax table':>17}"
    )
    for n, block in results.items():
        for name, p in block["probabilities"].items():
            seen = p > 0
            rho = {key: spearmanr(p[seen], values[seen]).statistic for key, values in block["measures"].items()}
            best = int(np.argmax(p))
            print(
                f"  {n:>2} {name:<14} {int(seen.sum()):>6} {rho['lz']:>7.3f} {rho['entropy']:>8.3f} "
                f"{rho['formula']:>8.3f} {p[best]:>8.4f} {truth_table(best, n):>17}"
            )
    n = max(results)
    print(f"\nmean log10 P(f) by minimal formula size (n = {n}, relu-1-hidden; functions seen only):")
    p, size = results[n]["probabilities"]["relu-1-hidden"], results[n]["measures"]["formula"]
    for k in np.unique(size):
        mask = (size == k) & (p > 0)
        total = int((size == k).sum())
        if mask.any():
            print(
                f"  size {int(k):>2}: {int(mask.sum()):>5} of {total:>5} seen, "
                f"mean log10 P = {np.log10(p[mask]).mean():7.2f}, total P = {p[size == k].sum():.4f}"
            )
        else:
            print(f"  size {int(k):>2}:     0 of {total:>5} seen")


def plot(results, exact, out: str, samples: int):
    markers = {"perceptron": "o", "relu-1-hidden": "s", "relu-2-hidden": "^"}
    figure, axes = plt.subplots(2, len(results), figsize=(5 * len(results), 8.5), squeeze=False)
    for column, (n, block) in enumerate(results.items()):
        for row, (key, label) in enumerate(
            (("lz", "Lempel-Ziv complexity C_LZ"), ("formula", "minimal {AND,OR,NOT} formula size (leaves)"))
        ):
            ax = axes[row, column]
            for name, p in block["probabilities"].items():
                seen = p > 0
                jitter = 0.08 * (list(markers).index(name) - 1)
                ax.scatter(
                    block["measures"][key][seen] + jitter, p[seen], s=8, alpha=0.35, marker=markers[name], label=name
                )
            if n == 2:
                ax.scatter(
                    block["measures"][key][exact > 0],
                    exact[exact > 0],
                    s=60,
                    marker="x",
                    color="black",
                    label="perceptron, exact",
                )
            ax.set_yscale("log")
            ax.set_xlabel(label)
            ax.set_ylabel("P(f)")
            ax.set_title(f"n = {n} ({2**2**n:,} functions)")
            ax.axhline(1.0 / samples, color="grey", lw=0.8, ls=":", label=f"1/N: one hit in N = {samples:,} samples")
            ax.set_ylim(top=100.0)  # headroom: the legend sits above P = 1, where no point can be
            ax.legend(fontsize=7, loc="upper right")
    figure.suptitle(
        f"Simplicity bias: P(f) of random networks on all 2^n Boolean inputs vs complexity ({samples:,} samples each)"
    )
    figure.tight_layout()
    figure.savefig(out, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=500_000, help="random networks per architecture and n")
    parser.add_argument("--width", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="simplicity_bias.png")
    parser.add_argument("--quick", action="store_true", help="n = 2 and 3 only, 5,000 samples (seconds)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    exact = exact_perceptron_probabilities()
    inputs = (2, 3) if args.quick else (2, 3, 4)
    samples = 5_000 if args.quick else args.samples
    results = run(samples, args.width, args.seed, inputs)
    print_two_input_table(results, exact)
    print_summary(results, samples)
    plot(results, exact, args.out, samples)
    print(f"\nsaved {args.out}; {time.perf_counter() - started:.0f} s in all")
    return results


if __name__ == "__main__":
    main()
