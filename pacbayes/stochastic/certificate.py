"""The certificate for a stochastic network Q = N(w, diag(s)) (Dziugaite & Roy 2017, Section 3):

1. hat e_n: the average 0-1 error on the bound set of n iid weight draws from Q;
2. hat e(Q) <= kl^-1(hat e_n, ln(1/delta_sc)/n)  (Langford & Caruana 2001, sample convergence);
3. e(Q) <= kl^-1(that, (KL(Q||P) + ln(2 sqrt(m)/delta_kl))/m)  (Maurer 2004 PAC-Bayes-kl) for a prior
   variance lambda fixed before seeing S; or, when lambda was searched on the grid
   lambda_j = c exp(-j/b), at the grid point next to the optimised one with delta_j = 6 delta_kl/(pi^2 j^2).

With ``mc_sampling="point"`` step 1 draws a fresh network for every (draw, point) pair instead:
the n m indicators are then independent (not identically distributed) with mean hat e(Q), so the
same Chernoff bound in kl form (Hoeffding 1963, Theorem 1, which needs independence only) gives
hat e(Q) <= kl^-1(hat e_nm, ln(1/delta_sc)/(n m)). For a stack of Linear and Conv2d layers,
activations and pooling a draw per point costs about one pass of the mean network: each Linear output
is exactly Gaussian given its input, mean W a + b and variance s_W a^2 + s_b (the local
reparameterisation of Kingma, Salimans & Welling 2015, exact for independent weights per point), and
each convolution runs with the point's own drawn kernel (:mod:`pacbayes.stochastic.local`).

On the grid both neighbouring points are tried and the smaller bound kept: the union over all j
covers the choice. Dziugaite & Roy's own form kl^-1(., B_RE) is reported alongside for comparison.
"""

import math

import torch
from torch import nn

from pacbayes import bounds
from pacbayes.bounds.stochastic import langford_seeger_complexity
from pacbayes.models import count_mistakes
from pacbayes.progress import progress
from pacbayes.stochastic.gaussian import DiagonalGaussian, gaussian_kl
from pacbayes.stochastic.local import gaussian_draw, is_drawn, linear_moments, point_layers, point_logits
from pacbayes.stochastic.network import forward

NETWORK_BATCH_SIZE = 5000
"""Inputs per forward pass of :func:`sampled_error` and :func:`deterministic_error`."""


@torch.no_grad()
def sampled_error(
    model,
    posterior: DiagonalGaussian,
    x: torch.Tensor,
    labels: torch.Tensor,
    n: int,
    *,
    generator: torch.Generator,
    batch_size: int = NETWORK_BATCH_SIZE,
    quiet: bool = True,
) -> float:
    """hat e_n: mean 0-1 error over n weight draws from ``posterior``, each scored on all of (x, labels)."""
    wrong = 0
    draws = posterior.draws(generator)
    for _ in progress(range(n), desc="Monte Carlo error", quiet=quiet, unit="net"):
        params = next(draws)
        for start in range(0, len(labels), batch_size):
            wrong += count_mistakes(
                forward(model, params, x[start : start + batch_size]), labels[start : start + batch_size]
            )
    return wrong / (n * len(labels))


POINT_BATCH_ELEMENTS = 2**25
"""Activations (elements, over all layers) of one batch of a per-point Monte Carlo pass: a CNN's batches shrink
to keep them near the caches (about 250 images for PBB's MNIST CNN, 1.5x faster per draw than 5,000 on
2 cores), while an MLP's stay at 5,000."""


def point_batch_size(layers: list, x: torch.Tensor, most: int = NETWORK_BATCH_SIZE) -> int:
    """Inputs per batch of :func:`point_sampled_error`: as many as keep the batch's activations, through every
    layer of ``layers`` (from :func:`point_layers`), within :data:`POINT_BATCH_ELEMENTS`; between 1 and ``most``."""
    a, elements = x[:1], 0
    for _, module in layers:
        a = module(a)
        elements += a.numel()
    return max(1, min(most, POINT_BATCH_ELEMENTS // max(elements, 1)))


@torch.no_grad()
def point_sampled_error(
    model,
    posterior: DiagonalGaussian,
    x: torch.Tensor,
    labels: torch.Tensor,
    n: int,
    *,
    generator: torch.Generator,
    batch_size: int | None = None,
    quiet: bool = True,
) -> float:
    """hat e_nm: mean 0-1 error over n passes, each with an independent posterior draw for every point
    (the n m indicators are independent; :mod:`pacbayes.stochastic.local`). The parameter-free layers
    before the first drawn layer run once per batch, and so do the moments of that layer when it is a
    Linear one (they do not depend on the draw). ``batch_size`` None: :func:`point_batch_size`."""
    mean, var = posterior.mean_params(), posterior.layout.unflatten(torch.exp(posterior.log_var))
    layers = point_layers(model)
    first = next(i for i, (_, module) in enumerate(layers) if is_drawn(module))
    wrong = 0
    if batch_size is None:
        batch_size = point_batch_size(layers, x)
    batches = [slice(s, s + batch_size) for s in range(0, len(labels), batch_size)]
    for part in progress(batches, desc="Monte Carlo error (per point)", quiet=quiet, unit="batch"):
        a = x[part]
        for _, module in layers[:first]:
            a = module(a)
        moments = linear_moments(*layers[first], mean, var, a) if isinstance(layers[first][1], nn.Linear) else None
        rest = layers[first:] if moments is None else layers[first + 1 :]
        for _ in range(n):
            inputs = a if moments is None else gaussian_draw(moments, generator)
            wrong += count_mistakes(point_logits(rest, mean, var, inputs, generator), labels[part])
    return wrong / (n * len(labels))


@torch.no_grad()
def deterministic_error(
    model, params: dict, x: torch.Tensor, labels: torch.Tensor, batch_size: int = NETWORK_BATCH_SIZE
) -> float:
    """0-1 error of the network at fixed ``params``."""
    wrong = sum(
        count_mistakes(forward(model, params, x[s : s + batch_size]), labels[s : s + batch_size])
        for s in range(0, len(labels), batch_size)
    )
    return wrong / len(labels)


@torch.no_grad()
def certify(
    posterior: DiagonalGaussian,
    prior_mean: torch.Tensor,
    prior_variance: float,
    sampled: float,
    n: int,
    m: int,
    delta_kl: float,
    delta_sc: float,
    on_grid: bool = True,
) -> dict:
    """The certified bound from hat e_n: at ``prior_variance`` itself when it was fixed in advance
    (``on_grid`` False; j is None), else at the neighbouring grid point j that gives the smaller value.

    Returns value, j, lambda, KL (nats), the sample-convergence bound on hat e(Q), the Dziugaite-Roy
    form of the same bound, and the delta spent on the PAC-Bayes statement (delta_j on the grid).
    """
    empirical = bounds.sample_convergence_bound(sampled, n, delta_sc)
    candidates = bounds.grid_candidates(prior_variance) if on_grid else (None,)
    best = None
    for j in candidates:
        lam = prior_variance if j is None else bounds.grid_variance(j)
        log_lam = torch.tensor(math.log(lam), dtype=torch.float64, device=posterior.mean.device)
        kl = float(gaussian_kl(posterior.mean, posterior.log_var, prior_mean, log_lam))
        delta_j = delta_kl if j is None else bounds.series_delta(j, delta_kl)
        value = bounds.pac_bayes_kl_bound(empirical, kl, m, delta_j)
        if best is None or value < best["value"]:
            if j is None:
                dr_term = langford_seeger_complexity(kl, m, delta_kl)
            else:
                dr_term = bounds.dziugaite_roy_complexity(kl, m, delta_kl, j)
            best = {
                "value": value,
                "j": j,
                "lambda": lam,
                "kl": kl,
                "delta_j": delta_j,
                "empirical_bound": empirical,
                "dziugaite_roy_form": bounds.kl_inverse_upper(empirical, dr_term),
            }
    return best
