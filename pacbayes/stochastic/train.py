"""Optimising the posterior N(w, diag(s)) and the prior variance lambda, and learning a
data-dependent prior mean (PBB).

Objectives (one Monte Carlo weight sample per minibatch, reparameterised gradients):
  dr       Dziugaite & Roy (2017), eq. (6): logistic surrogate / ln 2 + sqrt(B_RE / 2)
  quad     Pérez-Ortiz et al. (2021) f_quad on the bounded cross-entropy
  lambda   Pérez-Ortiz et al. (2021) f_lambda, tradeoff t updated in closed form each step
  classic  Pérez-Ortiz et al. (2021) f_classic
The surrogate risk is, by default ("auto"), the logistic one for "dr" and PBB's bounded cross-entropy
for the others; "sigmoid" replaces it by a smooth 0-1 loss (:func:`pacbayes.stochastic.network.sigmoid_surrogate`).
With a prior variance fixed in advance the complexity term is that of a single prior (no grid). With
the lambda grid, lambda is optimised continuously as lambda = c exp(-j/b) with j >= 1, the term pays
2 ln j + ln(pi^2/6) nats, and lambda is rounded to the grid when the bound is certified
(:mod:`pacbayes.stochastic.certificate`).
"""

import contextlib
import functools
import math
from dataclasses import dataclass

import torch

from pacbayes import bounds
from pacbayes.bounds.stochastic import langford_seeger_complexity, maurer_complexity
from pacbayes.defaults import (  # noqa: F401  (OBJECTIVES: imported from here too)
    DEFAULT_POSTERIOR_LR,
    DEFAULT_POSTERIOR_LR_VAR,
    DEFAULT_POSTERIOR_MOMENTUM,
    DEFAULT_POSTERIOR_OPTIMIZER,
    DEFAULT_TRAINING_PRECISION,
    OBJECTIVES,
    POSTERIOR_EPOCHS,
    POSTERIOR_OPTIMIZERS,
    SURROGATES,
    TRAINING_PRECISIONS,
)
from pacbayes.errors import InputError
from pacbayes.progress import progress
from pacbayes.stochastic.dropout import activation_dropout
from pacbayes.stochastic.gaussian import DiagonalGaussian, Layout, gaussian_kl
from pacbayes.stochastic.local import point_layers, point_logits
from pacbayes.stochastic.network import (
    DEFAULT_SIGMOID_TEMPERATURE,
    bounded_cross_entropy,
    forward,
    logistic_surrogate,
    sigmoid_surrogate,
)


@dataclass(frozen=True)
class Schedule:
    """Optimiser settings: ``optimizer`` ("adam", or "sgd" with ``momentum``) on the mean (lr) and on
    log s and log lambda (lr_var). Around MODEL's weights the posterior starts at log s = log lambda_0 +
    init_log_ratio (from the prior it starts at s = lambda_0, KL 0). A learned prior mean is always fitted
    by SGD with ``momentum`` (ERM, :func:`fit_prior_mean`; ``optimizer`` and ``lr_var`` do not apply).
    ``precision``: that of the training forward passes (:func:`training_precision`)."""

    epochs: int = POSTERIOR_EPOCHS
    batch_size: int = 250
    lr: float = DEFAULT_POSTERIOR_LR
    lr_var: float = DEFAULT_POSTERIOR_LR_VAR
    init_log_ratio: float = -2.0
    optimizer: str = DEFAULT_POSTERIOR_OPTIMIZER
    momentum: float = DEFAULT_POSTERIOR_MOMENTUM
    precision: str = DEFAULT_TRAINING_PRECISION

    def __post_init__(self):
        if (
            int(self.epochs) != self.epochs
            or self.epochs < 1
            or int(self.batch_size) != self.batch_size
            or self.batch_size < 1
        ):
            raise InputError(f"epochs and batch_size must be integers >= 1, got {self.epochs}, {self.batch_size}")
        if not (self.lr > 0.0 and self.lr_var > 0.0 and math.isfinite(self.lr) and math.isfinite(self.lr_var)):
            raise InputError(f"learning rates must be finite and > 0, got lr={self.lr}, lr_var={self.lr_var}")
        if not math.isfinite(self.init_log_ratio):
            raise InputError(f"init_log_ratio must be finite, got {self.init_log_ratio}")
        if self.optimizer not in POSTERIOR_OPTIMIZERS:
            raise InputError(f"unknown optimizer {self.optimizer!r}; use one of {', '.join(POSTERIOR_OPTIMIZERS)}")
        if not 0.0 <= self.momentum < 1.0:
            raise InputError(f"momentum must lie in [0, 1), got {self.momentum}; e.g. 0.9")
        if self.precision not in TRAINING_PRECISIONS:
            raise InputError(
                f"unknown training precision {self.precision!r}; use one of {', '.join(TRAINING_PRECISIONS)}"
            )


def training_precision(precision: str, device: torch.device):
    """The context in which a training step's forward pass runs: as given ("float32"), or under
    ``torch.autocast(device.type, torch.bfloat16)`` ("bfloat16"; convolutions and matrix products in bfloat16,
    the weights, their gradients and the optimiser's state in float32; Micikevicius et al. 2018 for mixed
    precision training). Only training is affected: the posterior it finds is certified in float32 like any
    other. bfloat16 is fast where the hardware has it (CPUs with AVX-512 BF16 or AMX, recent GPUs) and
    slower elsewhere."""
    if precision == "bfloat16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _batches(n: int, batch_size: int, epochs: int, generator: torch.Generator):
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator, device=generator.device)
        for start in range(0, n, batch_size):
            yield order[start : start + batch_size]


def _steps(n: int, schedule: Schedule) -> int:
    return schedule.epochs * math.ceil(n / schedule.batch_size)


def fit_prior_mean(
    model,
    layout: Layout,
    start: torch.Tensor,
    x: torch.Tensor,
    labels: torch.Tensor,
    *,
    schedule: Schedule,
    generator: torch.Generator,
    dropout: float = 0.0,
    quiet: bool = True,
) -> torch.Tensor:
    """ERM on the held-out prior set: SGD with ``schedule.momentum`` on the logistic surrogate from ``start``,
    with ``dropout`` after the activation layers (:mod:`pacbayes.stochastic.dropout`).

    This is PBB's data-dependent prior mean (Pérez-Ortiz et al. 2021, Section 4: ERM with dropout);
    it sees only the prior part of S, so it is independent of the points the bound is computed on.
    """
    flat = start.detach().clone().requires_grad_(True)
    opt = torch.optim.SGD([flat], lr=schedule.lr, momentum=schedule.momentum)
    bar = progress(
        _batches(len(labels), schedule.batch_size, schedule.epochs, generator),
        total=_steps(len(labels), schedule),
        desc="prior mean",
        quiet=quiet,
        unit="step",
    )
    with activation_dropout(model, dropout, generator):
        for idx in bar:
            opt.zero_grad()
            with training_precision(schedule.precision, flat.device):
                logits = forward(model, layout.unflatten(flat), x[idx])
            logistic_surrogate(logits.float(), labels[idx]).backward()
            opt.step()
    return flat.detach()


def initial_prior_variance(mean: torch.Tensor, prior_mean: torch.Tensor) -> float:
    """Dziugaite-Roy start for a searched lambda: the mean square of the prior mean, or of w where the
    prior is zero-centred (at most the first grid point)."""
    ref = prior_mean if bool(prior_mean.any()) else mean
    return min(float((ref.double() ** 2).mean()), bounds.grid_variance(1.0))


def complexity(objective: str, kl, m: int, delta: float, j=None):
    """The objective's complexity term: Dziugaite & Roy's B_RE (objective "dr") or PBB's C (the others),
    at a prior fixed in advance (``j`` None) or at grid point ``j`` of the lambda grid."""
    if j is None:
        return langford_seeger_complexity(kl, m, delta) if objective == "dr" else maurer_complexity(kl, m, delta)
    if objective == "dr":
        return bounds.dziugaite_roy_complexity(kl, m, delta, j)
    return bounds.pbb_complexity(kl, m, delta, j)


def objective_value(objective: str, risk, kl, m: int, delta: float, j=None, tradeoff=None):
    """The training objective (a bound form of :mod:`pacbayes.bounds.stochastic`) at a risk and KL.

    "dr" is risk + sqrt(B_RE / 2) (Dziugaite & Roy 2017, eq. 6), the same Pinsker form as f_classic
    with B_RE in place of C."""
    term = complexity(objective, kl, m, delta, j)
    if objective in ("dr", "classic"):
        return bounds.pbb_classic(risk, term)
    if objective == "quad":
        return bounds.pbb_quad(risk, term)
    return bounds.pbb_lambda(risk, term, tradeoff)


def surrogate_risk(surrogate: str, objective: str, temperature: float = DEFAULT_SIGMOID_TEMPERATURE):
    """The training risk (logits, labels) -> scalar named by ``surrogate`` (see :data:`SURROGATES`)."""
    if surrogate not in SURROGATES:
        raise InputError(f"unknown surrogate {surrogate!r}; use one of {', '.join(SURROGATES)}")
    if not (math.isfinite(temperature) and temperature > 0.0):
        raise InputError(f"the sigmoid temperature must be finite and > 0, got {temperature}; e.g. 0.15")
    if surrogate == "auto":
        surrogate = "logistic" if objective == "dr" else "bounded-ce"
    if surrogate == "sigmoid":
        return functools.partial(sigmoid_surrogate, temperature=temperature)
    return logistic_surrogate if surrogate == "logistic" else bounded_cross_entropy


@dataclass(frozen=True)
class PriorVariance:
    """lambda of P = N(w0, lambda I): its starting value and whether it is searched on the grid
    (``on_grid``) or fixed before seeing S."""

    value: float
    on_grid: bool


def fit_posterior(
    model,
    layout: Layout,
    start: torch.Tensor,
    prior_mean: torch.Tensor,
    x: torch.Tensor,
    labels: torch.Tensor,
    *,
    objective: str,
    delta: float,
    m: int,
    prior_variance: PriorVariance,
    start_variance: float,
    fixed_mean: bool,
    schedule: Schedule,
    generator: torch.Generator,
    risk_of=None,
    per_point: bool = False,
    quiet: bool = True,
):
    """Minimise ``objective`` over (w, s[, lambda]) on (x, labels), starting at w = ``start`` and
    s = ``start_variance`` (every coordinate).

    ``m`` is the number of points the bound is computed on (the complexity term's m); (x, labels)
    may be all of S. With ``fixed_mean`` w stays at ``start``; lambda moves only when
    ``prior_variance.on_grid``. ``delta`` is the failure probability of the PAC-Bayes statement
    (before any lambda-grid split). Returns the posterior and the final prior variance (the given
    value, exactly, when it is fixed). ``risk_of``: the surrogate risk (:func:`surrogate_risk`; default
    that of ``objective``). ``per_point``: draw the weights afresh for every input of a minibatch by the
    local reparameterisation (:mod:`pacbayes.stochastic.local`; the same expected risk, lower-variance
    gradients) instead of one draw per minibatch.
    """
    surrogate = risk_of or surrogate_risk("auto", objective)
    mean = start.detach().clone().requires_grad_(not fixed_mean)
    log_var = torch.full_like(start, math.log(start_variance)).requires_grad_(True)
    log_lam = torch.tensor(
        math.log(prior_variance.value), dtype=torch.float32, device=start.device, requires_grad=prior_variance.on_grid
    )
    posterior = DiagonalGaussian(mean, log_var, layout)
    groups = [{"params": [log_var, log_lam] if prior_variance.on_grid else [log_var], "lr": schedule.lr_var}]
    if not fixed_mean:
        groups.append({"params": [mean], "lr": schedule.lr})
    opt = (
        torch.optim.Adam(groups)
        if schedule.optimizer == "adam"
        else torch.optim.SGD(groups, momentum=schedule.momentum)
    )
    log_c = math.log(bounds.DR_GRID_C)
    tradeoff = 1.0
    bar = progress(
        _batches(len(labels), schedule.batch_size, schedule.epochs, generator),
        total=_steps(len(labels), schedule),
        desc=f"posterior ({objective})",
        quiet=quiet,
        unit="step",
    )
    layers = point_layers(model) if per_point else None
    for idx in bar:
        opt.zero_grad()
        with training_precision(schedule.precision, mean.device):
            if per_point:
                var = layout.unflatten(torch.exp(log_var))
                logits = point_logits(layers, layout.unflatten(mean), var, x[idx], generator)
            else:
                logits = forward(model, posterior.sample(generator), x[idx])
        risk = surrogate(logits.float(), labels[idx])
        kl = gaussian_kl(mean, log_var, prior_mean, log_lam, dtype=torch.float32)
        j = torch.clamp(bounds.DR_GRID_B * (log_c - log_lam), min=1.0) if prior_variance.on_grid else None
        loss = objective_value(objective, risk, kl, m, delta, j, tradeoff)
        loss.backward()
        opt.step()
        bar.set_postfix(
            objective=f"{float(loss.detach()):.4f}",
            kl=f"{float(kl.detach()):.1f}",
            risk=f"{float(risk.detach()):.4f}",
            refresh=False,
        )
        if objective == "lambda":
            term = float(complexity(objective, kl.detach(), m, delta, None if j is None else j.detach()))
            tradeoff = bounds.pbb_lambda_tradeoff(max(float(risk.detach()), 0.0), term)
    final = float(torch.exp(log_lam.detach())) if prior_variance.on_grid else prior_variance.value
    return posterior.detached(), final
