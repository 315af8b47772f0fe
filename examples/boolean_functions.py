"""Boolean-input experiments: truth tables, their Lempel-Ziv complexity, and many small ReLU nets at once.

A helper module of the examples, not part of the pacbayes package (run the examples from this folder's
parent, ``python examples/sgd_bayes.py``: Python puts examples/ on the import path). Shared by the
simplicity-bias and SGD-vs-Bayes examples (Valle-Pérez, Camargo & Louis, ICLR 2019;
Mingard, Valle-Pérez, Skalse & Louis, JMLR 2021):

* :func:`boolean_inputs`, :func:`lz76_words`, :func:`lz_complexity`: the 2^n inputs and the
  complexity measure of a truth table used in both papers;
* :class:`ReluNets`: a fully connected ReLU architecture with its Gaussian initialisation, whose
  parameters for R networks are one (R, D) tensor, evaluated with batched matrix products;
* :func:`train_to_fit`: R independent networks trained at once with minibatch SGD or Adam until
  each classifies the training set perfectly (runs that fit drop out of the batch);
* :func:`fitting_prior_functions`: rejection sampling of the Bayesian posterior (prior draws that
  fit S exactly), checked against several labellings of the same training inputs in one pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from pacbayes import checks
from pacbayes.errors import InputError

OPTIMISERS = ("sgd", "adam")
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # Kingma & Ba (2015) defaults


def boolean_inputs(n: int) -> np.ndarray:
    """All 2^n inputs in {0,1}^n as float64 rows; row i holds the binary digits of i (x_1 most significant)."""
    n = checks.integer_at_least(n, "number of Boolean inputs n", 1)
    index = np.arange(2**n)
    return ((index[:, None] >> np.arange(n - 1, -1, -1)) & 1).astype(np.float64)


def lz76_words(s: str) -> int:
    """Words of the LZ76 exhaustive parsing of ``s`` (Lempel & Ziv 1976; Kaspar & Schuster 1987, Phys. Rev. A 36, 842).

    A word grows while it can be copied from an earlier start (overlap allowed); the last word
    counts even if it ends the string while still copyable.
    """
    n = len(s)
    if n <= 1:
        return n
    words, start = 1, 1  # the first symbol is always a word of its own
    while start < n:
        longest, source = 0, 0
        while source < start:
            length = 0
            while start + length < n and s[source + length] == s[start + length]:
                length += 1
            longest = max(longest, length)
            source += 1
        words += 1
        start += longest + 1
    return words


def lz_complexity(s: str) -> float:
    """C_LZ of a binary string (Valle-Pérez et al. 2019, Sec. 4; Dingle et al., Nat. Commun. 2018, Methods).

    log2(N) for the two constant strings, else log2(N) [N_w(x_1..x_N) + N_w(x_N..x_1)] / 2 with
    N_w the LZ76 word count: the parsing symmetrised over the string and its reverse, in bits.
    """
    if len(s) < 2 or set(s) - {"0", "1"}:
        raise InputError(f"C_LZ needs a string of 0s and 1s of length >= 2, got {s[:20]!r}; pass a truth table")
    scale = math.log2(len(s))
    if len(set(s)) == 1:
        return scale
    return scale * (lz76_words(s) + lz76_words(s[::-1])) / 2.0


@dataclass(frozen=True)
class ReluNets:
    """Fully connected ReLU nets ``n_inputs -> widths -> 1``; weights N(0, sigma_w^2 / fan_in), biases N(0, sigma_b^2).

    This is the parameter prior whose infinite-width limit is
    ``pacbayes.kernels.FullyConnectedNNGP(depth=len(widths), activation="relu", sigma_w, sigma_b)``.
    Parameters of R networks are one float32 tensor (R, D), laid out layer by layer as
    [W_1 (fan_in x fan_out, row-major), b_1, W_2, b_2, ...]; the output is one logit.
    """

    n_inputs: int
    widths: tuple[int, ...]
    sigma_w: float = 1.0
    sigma_b: float = 0.1

    def __post_init__(self) -> None:
        checks.integer_at_least(self.n_inputs, "n_inputs", 1)
        if len(self.widths) == 0:
            raise InputError("ReluNets needs at least one hidden layer; pass widths such as (40, 40)")
        for width in self.widths:
            checks.integer_at_least(width, "hidden width", 1)
        if not (self.sigma_w > 0 and self.sigma_b >= 0):
            raise InputError(f"need sigma_w > 0 and sigma_b >= 0, got {self.sigma_w}, {self.sigma_b}")

    def shapes(self) -> list[tuple[int, int]]:
        sizes = (self.n_inputs, *self.widths, 1)
        return list(zip(sizes[:-1], sizes[1:], strict=False))

    @property
    def size(self) -> int:
        """Number of parameters D of one network."""
        return sum(fan_in * fan_out + fan_out for fan_in, fan_out in self.shapes())

    def scales(self) -> torch.Tensor:
        """Prior standard deviation of every parameter, in the flat layout (D,)."""
        parts = []
        for fan_in, fan_out in self.shapes():
            parts += [
                torch.full((fan_in * fan_out,), self.sigma_w / math.sqrt(fan_in)),
                torch.full((fan_out,), float(self.sigma_b)),
            ]
        return torch.cat(parts)

    def sample(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """``count`` independent draws from the prior, (count, D) float32."""
        return torch.randn(count, self.size, generator=generator) * self.scales()

    def layers(self, theta: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Views (W (R, fan_in, fan_out), b (R, 1, fan_out)) of every layer of the flat parameters (R, D)."""
        result, offset = [], 0
        for fan_in, fan_out in self.shapes():
            weight = theta[:, offset : offset + fan_in * fan_out].reshape(-1, fan_in, fan_out)
            offset += fan_in * fan_out
            result.append((weight, theta[:, offset : offset + fan_out].unsqueeze(1)))
            offset += fan_out
        return result

    def activations(self, theta: torch.Tensor, x: torch.Tensor) -> list[torch.Tensor]:
        """[input, h_1, ..., h_L, logits] of R nets; x is (n, d) shared by all nets or (R, n, d) per net.

        Hidden entries are post-ReLU (R, n, width); the last entry is the logit (R, n, 1).
        """
        values = [x]
        layers = self.layers(theta)
        for index, (weight, bias) in enumerate(layers):
            h = values[-1]
            h = torch.baddbmm(bias, h, weight) if h.dim() == 3 else torch.matmul(h, weight) + bias
            values.append(torch.relu(h) if index < len(layers) - 1 else h)
        return values

    def logits(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Logits (R, n) of R nets (parameters (R, D)) on inputs x (n, d)."""
        return self.activations(theta, x)[-1].squeeze(-1)

    def fits(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Which of the R nets label every row of x as y (bool, [logit > 0] is class 1)."""
        return ((self.logits(theta, x) > 0) == y).all(dim=1)

    def logistic_gradient(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Gradient (R, D) of each net's mean logistic loss on its own minibatch x (R, b, d), y (R, b).

        Backpropagation written out for the batched layout: dL/dlogit = (sigmoid(z) - y) / b, then
        dW = h^T g, db = sum g, and g <- (g W^T) * [h > 0] down the layers.
        """
        values = self.activations(theta, x)
        layers = self.layers(theta)
        g = (torch.sigmoid(values[-1]) - y.unsqueeze(-1).to(values[-1].dtype)) / y.shape[1]
        pieces: list[torch.Tensor] = []
        for index in range(len(layers) - 1, -1, -1):
            below = values[index]
            pieces = [torch.bmm(below.transpose(1, 2), g).flatten(1), g.sum(dim=1)] + pieces
            if index:
                g = torch.bmm(g, layers[index][0].transpose(1, 2)) * (below > 0)
        return torch.cat(pieces, dim=1)


@dataclass
class TrainResult:
    """Outcome of :func:`train_to_fit`: final parameters (R, D), whether each run fits S, epochs it took."""

    theta: torch.Tensor
    converged: torch.Tensor
    epochs: torch.Tensor


def train_to_fit(
    nets: ReluNets,
    theta: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    optimiser: str,
    lr: float,
    batch: int,
    max_epochs: int,
    generator: torch.Generator,
) -> TrainResult:
    """Train R networks (initial parameters theta (R, D)) independently until each classifies (x, y) perfectly.

    Each run reshuffles the m training points every epoch (its own permutation) and takes m / batch
    steps of plain SGD or of Adam (Kingma & Ba 2015, default betas) on the mean logistic loss of
    its minibatch -- the set-up of Mingard et al. (JMLR 2021, Sec. 5), which stop a run at the
    first epoch end with zero training error. The training error is checked before the first
    epoch and after every epoch; a run that fits leaves the batch with its parameters frozen.
    ``batch`` must divide m. Runs still unfit after ``max_epochs`` are returned with converged False.
    """
    if optimiser not in OPTIMISERS:
        raise InputError(f"unknown optimiser {optimiser!r}; choose one of {', '.join(OPTIMISERS)}")
    m = x.shape[0]
    batch = checks.integer_at_least(batch, "batch size", 1)
    if m % batch:
        raise InputError(f"batch size {batch} must divide the {m} training points; pick a divisor of {m}")
    if not lr > 0:
        raise InputError(f"learning rate must be positive, got {lr}")
    theta = theta.detach().clone()
    done = torch.zeros(theta.shape[0], dtype=torch.bool)
    epochs = torch.full((theta.shape[0],), max_epochs, dtype=torch.int64)
    active = torch.arange(theta.shape[0])
    current = theta.clone()
    first, second = torch.zeros_like(current), torch.zeros_like(current)
    targets = y.to(torch.float32)
    step = 0
    for epoch in range(max_epochs + 1):
        with torch.no_grad():
            fit = nets.fits(current, x, y)
        finished = active[fit]
        theta[finished], done[finished], epochs[finished] = current[fit], True, epoch
        keep = ~fit
        active, current, first, second = active[keep], current[keep], first[keep], second[keep]
        if active.numel() == 0 or epoch == max_epochs:
            break
        order = torch.rand(active.numel(), m, generator=generator).argsort(dim=1)
        for start in range(0, m, batch):
            index = order[:, start : start + batch]
            step += 1
            grad = nets.logistic_gradient(current, x[index], targets[index])
            if optimiser == "sgd":
                current -= lr * grad
                continue
            first.mul_(ADAM_BETAS[0]).add_(grad, alpha=1 - ADAM_BETAS[0])
            second.mul_(ADAM_BETAS[1]).addcmul_(grad, grad, value=1 - ADAM_BETAS[1])
            denominator = (second / (1 - ADAM_BETAS[1] ** step)).sqrt_().add_(ADAM_EPS)
            current -= (lr / (1 - ADAM_BETAS[0] ** step)) * first / denominator
    theta[active] = current
    return TrainResult(theta=theta, converged=done, epochs=epochs)


def fitting_prior_functions(
    nets: ReluNets,
    x_train: torch.Tensor,
    labellings: torch.Tensor,
    x_eval: torch.Tensor,
    draws: int,
    generator: torch.Generator,
    *,
    heads: int = 1,
    chunk: int = 4096,
) -> list[torch.Tensor]:
    """Rejection sampling of P_B(f|S): the labelling of x_eval by every prior draw that fits S exactly.

    ``labellings`` (T, m) are T label vectors of the same training inputs x_train (m, d); of
    ``draws`` prior networks, those whose sign pattern on x_train equals labelling t are exact
    draws from the posterior of S_t (the prior restricted to functions consistent with S_t), and
    their outputs on x_eval (n, d) are returned as one bool tensor (accepted, n) per labelling.

    ``heads``: output layers drawn per draw of the hidden layers (``draws`` counts networks, so
    draws / heads hidden draws). Every network is still marginally an exact prior draw and the
    acceptance frequencies stay unbiased, but networks sharing hidden layers are dependent: the
    counts' spread can exceed the independent-draw (Poisson) spread by up to a factor sqrt(heads).
    ``heads = 1`` gives independent draws. Most networks fail on x_train, so the outputs on
    x_eval are computed only for hidden draws with an accepted network.
    """
    draws = checks.integer_at_least(draws, "number of prior draws", 1)
    heads = checks.integer_at_least(heads, "heads (output layers per hidden draw)", 1)
    if draws % heads:
        raise InputError(
            f"{draws} prior draws do not split into groups of {heads} heads; make draws a multiple of heads"
        )
    width, hidden_total = nets.widths[-1], draws // heads
    kept: list[list[torch.Tensor]] = [[] for _ in range(labellings.shape[0])]
    with torch.no_grad():
        for start in range(0, hidden_total, chunk):
            count = min(chunk, hidden_total - start)
            theta = nets.sample(count, generator)  # its own output layer is replaced by the heads below
            weight = torch.randn(count, width, heads, generator=generator) * (nets.sigma_w / math.sqrt(width))
            bias = torch.randn(count, 1, heads, generator=generator) * nets.sigma_b
            features = nets.activations(theta, x_train)[-2]  # last hidden layer (count, m, width)
            signs = (torch.baddbmm(bias, features, weight) > 0).transpose(1, 2)  # (count, heads, m)
            match = (signs[:, :, None, :] == labellings[None, None]).all(dim=3)  # (count, heads, T)
            rows = match.any(dim=(1, 2)).nonzero().squeeze(1)
            if rows.numel() == 0:
                continue
            features = nets.activations(theta[rows], x_eval)[-2]
            eval_signs = (torch.baddbmm(bias[rows], features, weight[rows]) > 0).transpose(1, 2)
            for target in range(labellings.shape[0]):
                kept[target].append(eval_signs[match[rows, :, target]])
    return [torch.cat(parts) if parts else torch.zeros(0, x_eval.shape[0], dtype=torch.bool) for parts in kept]
