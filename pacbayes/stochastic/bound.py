"""Entry point: certify a stochastic network N(w, diag(s)) (Dziugaite & Roy 2017; PBB objectives and
data-dependent priors, Pérez-Ortiz et al. 2021).

Flow: resolve the prior mean -> (optionally) learn it, with dropout, on a held-out part of S ->
optimise the posterior -> Monte Carlo error on the remaining points -> certificate. Every delta is
in the returned ledger and the ledger sums to the ``delta`` given.

Three modes, named in the result's ``details["mode"]`` and ``certifies``:

- ``learned-from-prior`` (PBB; the tight certificate): the posterior starts at the prior, mean w0
  and variance lambda (KL 0), and is trained on all of S (a posterior may depend on all of S; the
  prior only on its held-out part). It is a new stochastic network; MODEL gives its architecture.
- ``around-model``: the posterior mean starts at MODEL's trained weights (Dziugaite & Roy) and moves.
- ``around-model-fixed-mean``: N(w, s) with w = MODEL's weights held fixed; only s moves.

The prior variance lambda is fixed before seeing S (``prior_std``; PBB fix it too) or searched on
Dziugaite & Roy's grid (``lambda_grid``), which costs 2 ln j + ln(pi^2/6) nats (~13 at their
typical j ~ 600).
"""

import copy
import math
import time
from dataclasses import asdict, dataclass, is_dataclass, replace

import numpy as np
import torch

from pacbayes import bounds, checks
from pacbayes.attempts import Attempt, count_attempt
from pacbayes.cache import Phase, cached, like, phase_cache
from pacbayes.defaults import POSTERIOR_STARTS, PRIOR_EPOCHS
from pacbayes.device import resolve_device
from pacbayes.errors import InputError
from pacbayes.families.settings import DziugaiteRoySettings
from pacbayes.results import BoundResult
from pacbayes.stochastic.certificate import certify, deterministic_error, point_sampled_error, sampled_error
from pacbayes.stochastic.dropout import activation_layers
from pacbayes.stochastic.gaussian import DiagonalGaussian, Layout, gaussian_kl
from pacbayes.stochastic.hint import why_vacuous
from pacbayes.stochastic.local import MC_SAMPLINGS, point_layers, resolve_mc_sampling
from pacbayes.stochastic.network import check_labels, forward
from pacbayes.stochastic.prior import Prior, data_independent_prior, parameters_of, reinitialised
from pacbayes.stochastic.train import (
    OBJECTIVES,
    PriorVariance,
    Schedule,
    fit_posterior,
    fit_prior_mean,
    initial_prior_variance,
    surrogate_risk,
)

PHASE_VERSION = 1
"""Version of what the cached phases (learned prior, posterior, Monte Carlo error) compute; raise it on a change."""
DEFAULT_PRIOR_SCHEDULE = Schedule(epochs=PRIOR_EPOCHS, batch_size=250, lr=0.005, momentum=0.99)
"""ERM for a learned prior mean as PBB's released code runs it: 70 epochs (Pérez-Ortiz et al. 2021, Section 6),
SGD lr 0.005, momentum 0.99, batches of 250 (chosen over four data sets: benchmarks/defaults_protocol.py)."""


def _checked_data(x, labels):
    if not isinstance(x, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise InputError("x and labels must be torch tensors")
    if labels.dim() != 1 or len(labels) != len(x):
        raise InputError(
            f"labels must be a vector with one entry per input, got shape {tuple(labels.shape)} for {len(x)} inputs"
        )
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise InputError("labels must be integer class indices (int64), e.g. 0/1 for a binary task")
    if not x.dtype.is_floating_point or not torch.isfinite(x).all():
        raise InputError("x must be a finite floating-point tensor")
    return x.float(), labels.long()


def _generators(seed: int, attempt: int, device: torch.device) -> tuple:
    states = np.random.SeedSequence([int(seed), int(attempt)]).generate_state(3)
    split = torch.Generator().manual_seed(int(states[0]))
    return split, *(torch.Generator(device=device).manual_seed(int(s)) for s in states[1:])


UNKEYED = ("seed", "mc_samples", "mc_sampling")
"""Settings left out of the attempts ledger's key: the seed, and how the same posterior's error is estimated."""


def _attempt(attempt, attempts_ledger, model, x, labels, statement, sample) -> Attempt:
    """This run's attempt: counted in ``attempts_ledger`` (keyed as :mod:`pacbayes.attempts` says; the
    weights only around MODEL), or ``attempt`` as the caller counted it (default 1)."""
    if attempts_ledger is not None:
        if attempt is not None:
            raise InputError("pass either attempt or attempts_ledger, not both")
        return count_attempt(
            attempts_ledger,
            "dziugaite-roy",
            sample=sample,
            data=(x, labels),
            statement={name: value for name, value in statement.items() if name not in UNKEYED},
            model=model,
            weights=statement["mode"] != "learned-from-prior",
            seed=statement["seed"],
        )
    return Attempt(1 if attempt is None else checks.sample_size(attempt, name="attempt", minimum=1))


def _start(model, prior_split, init_state, init_seed, seed) -> Prior:
    """The prior mean before any data: the data-independent prior, or (a prior to learn on a split of S,
    no init given) the architecture re-initialised from the run's seed."""
    if prior_split == 0.0 or init_state is not None or init_seed is not None:
        return data_independent_prior(model, init_state, init_seed)
    return Prior(
        reinitialised(model, seed), "init-seed", f"the architecture re-initialised with torch.manual_seed({int(seed)})"
    )


def _buffers(model) -> dict:
    """The model's buffers (e.g. BatchNorm statistics) by name: inputs of every cached phase."""
    return {f"buffer:{name}": b for name, b in model.named_buffers()}


def _prior(model, layout, x, labels, m_prior, start, schedule, dropout, split_gen, train_gen, quiet, cache):
    """The prior (``start``, or learned from it on ``m_prior`` held-out points of S; from ``cache`` when it
    holds it) and the indices of the points the bound is computed on."""
    m = len(labels)
    if m_prior == 0:
        return start, torch.arange(m)
    order = torch.randperm(m, generator=split_gen)
    held_out, rest = order[:m_prior], order[m_prior:]
    device = next(model.parameters()).device
    flat_start, x_prior, labels_prior = layout.flatten(start.mean), x[held_out.to(device)], labels[held_out.to(device)]
    phase = Phase(
        "dr-prior",
        PHASE_VERSION,
        {"model": repr(model), "schedule": asdict(schedule), "dropout": dropout, "device": str(device)},
        {"start": flat_start, "x": x_prior, "labels": labels_prior, **_buffers(model)},
        {"mean": like(flat_start)},
    )
    mean = cached(
        cache,
        phase,
        lambda: {
            "mean": fit_prior_mean(
                model,
                layout,
                flat_start,
                x_prior,
                labels_prior,
                schedule=schedule,
                generator=train_gen,
                dropout=dropout,
                quiet=quiet,
            )
        },
        (train_gen,),
    )["mean"].to(device)
    return Prior(
        layout.unflatten(mean),
        "data-dependent",
        f"N(w_prior, lambda I), w_prior learned on {m_prior} held-out training points ({schedule.epochs} epochs, "
        f"dropout {dropout:g} after {len(activation_layers(model))} activation layers) starting "
        f"from {start.description.split(', w0 = ')[-1]}; the bound uses the other {m - m_prior}",
    ), rest


@dataclass(frozen=True)
class StochasticCertificate:
    """The certified result with the posterior it is about (for scoring it on test data)."""

    result: BoundResult
    posterior: DiagonalGaussian
    network: torch.nn.Module

    @torch.no_grad()
    def error(self, x: torch.Tensor, labels: torch.Tensor, n: int, seed: int = 1) -> float:
        """Monte Carlo 0-1 error of the certified stochastic network on (x, labels), n weight draws."""
        device = self.posterior.mean.device
        gen = torch.Generator(device=device).manual_seed(int(seed))
        return sampled_error(
            self.network, self.posterior, x.float().to(device), labels.long().to(device), n, generator=gen
        )


def stochastic_bound(model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, *args, **run) -> list:
    """[BoundResult] of :func:`certify_stochastic_network` (same arguments)."""
    return [certify_stochastic_network(model, x, labels, *args, **run).result]


def _mode(posterior_start: str, fixed_mean: bool) -> str:
    if fixed_mean:
        return "around-model-fixed-mean"
    return "learned-from-prior" if posterior_start == "prior" else "around-model"


CERTIFIES = {
    "learned-from-prior": "the stochastic network N(w, diag(s)) learned from the prior (its posterior started at "
    "the prior, KL 0, and was trained on S; MODEL gives only the architecture), a fresh weight draw per prediction",
    "around-model": "the stochastic network N(w, diag(s)) around MODEL (w optimised starting from MODEL's trained "
    "weights), a fresh weight draw per prediction; not the deterministic network",
    "around-model-fixed-mean": "the stochastic network N(w, diag(s)) with w = MODEL's trained weights (fixed-mean "
    "mode), a fresh weight draw per prediction; not the deterministic network",
}
"""What the certificate is about, by mode (:func:`certify_stochastic_network`)."""


def _checked_settings(settings, delta) -> tuple:
    """(delta, prior_split, prior_std, prior_dropout, mc_samples), checked (InputError naming the setting)."""
    if not isinstance(settings, DziugaiteRoySettings):
        raise InputError(
            "settings must be a pacbayes.families.settings.DziugaiteRoySettings, e.g. "
            f"DziugaiteRoySettings(mc_samples=500), got {type(settings).__name__}"
        )
    delta = checks.delta(delta)
    if settings.objective not in OBJECTIVES:
        raise InputError(f"unknown objective {settings.objective!r}; use one of {', '.join(OBJECTIVES)}")
    if settings.posterior_start not in POSTERIOR_STARTS:
        raise InputError(
            f"unknown posterior_start {settings.posterior_start!r}; use one of {', '.join(POSTERIOR_STARTS)}"
        )
    prior_split = checks.probability(settings.prior_split, "prior_split")
    if prior_split >= 1.0:
        raise InputError("prior_split must be < 1: the bound needs points the prior has not seen")
    prior_std = checks.finite(settings.prior_std, "prior_std")
    if prior_std <= 0.0:
        raise InputError(f"prior_std must be > 0, got {prior_std}; PBB use 0.03 for MNIST")
    prior_dropout = checks.probability(settings.prior_dropout, "prior_dropout")
    if prior_dropout >= 1.0:
        raise InputError(f"prior_dropout must be < 1 (the drop probability), got {prior_dropout}; e.g. 0.2")
    mc_samples = checks.sample_size(settings.mc_samples, name="mc_samples", minimum=1)
    if settings.mc_sampling not in MC_SAMPLINGS:
        raise InputError(f"unknown mc_sampling {settings.mc_sampling!r}; use one of {', '.join(MC_SAMPLINGS)}")
    return delta, prior_split, prior_std, prior_dropout, mc_samples


POSTERIOR_SETTINGS = {"epochs": "posterior_epochs", "precision": "training_precision"}
"""Schedule field -> the settings field that fixes it, for the posterior's schedule."""
PRIOR_SETTINGS = {"epochs": "prior_epochs", "precision": "training_precision"}
"""The same for the prior mean's ERM (its optimiser is fixed: :data:`DEFAULT_PRIOR_SCHEDULE`)."""
POSTERIOR_OPTIMISER_SETTINGS = (
    ("optimizer", "posterior_optimizer"),
    ("lr", "posterior_lr"),
    ("lr_var", "posterior_lr_var"),
    ("momentum", "posterior_momentum"),
)
"""(Schedule field, the settings field) that sets it when no schedule is passed; an explicit schedule keeps its
own unless the setting was changed from its default too."""


def _scheduled(
    schedule: Schedule | None, default: Schedule, settings, name: str, fixed_by: dict, defers_to_schedule: tuple = ()
) -> Schedule:
    """``schedule`` (None: ``default``) with the fields that ``settings`` fix (``fixed_by``: Schedule field ->
    settings field; ``defers_to_schedule``: (Schedule field, settings field) pairs). An explicit schedule that
    disagrees with the settings on a ``fixed_by`` field, or on a ``defers_to_schedule`` field whose setting is
    not at its default, is refused (they are settings, recorded in the report)."""
    chosen = {**fixed_by, **dict(defers_to_schedule)}
    if schedule is None:
        return replace(default, **{field: getattr(settings, setting) for field, setting in chosen.items()})
    defaults = type(settings)()
    for field, setting in chosen.items():
        given, fixed = getattr(schedule, field), getattr(settings, setting)
        unset = field not in fixed_by and fixed == getattr(defaults, setting)
        if given != fixed and not unset:
            raise InputError(
                f"{name} has {field}={given!r} but settings.{setting} is {fixed!r}: it is a setting; pass "
                f"DziugaiteRoySettings({setting}={given!r})"
            )
    return schedule


def posterior_schedule(settings, schedule: Schedule | None = None) -> Schedule:
    """The posterior's training schedule: ``schedule`` (None: :class:`Schedule`'s defaults) with the epochs,
    precision and optimiser that ``settings`` fix (see :func:`_scheduled`)."""
    return _scheduled(schedule, Schedule(), settings, "schedule", POSTERIOR_SETTINGS, POSTERIOR_OPTIMISER_SETTINGS)


def prior_schedule_of(settings, schedule: Schedule | None = None) -> Schedule:
    """The learned prior mean's ERM schedule: ``schedule`` (None: :data:`DEFAULT_PRIOR_SCHEDULE`) with the
    epochs and precision that ``settings`` fix."""
    return _scheduled(schedule, DEFAULT_PRIOR_SCHEDULE, settings, "prior_schedule", PRIOR_SETTINGS)


def _training_record(schedule: Schedule) -> dict:
    """How the posterior was trained, as the ledger's statement and the report's details record it."""
    return {
        "training_precision": schedule.precision,
        "posterior_optimizer": schedule.optimizer,
        "posterior_lr": schedule.lr,
        "posterior_lr_var": schedule.lr_var,
        "posterior_momentum": schedule.momentum,
    }


def certify_stochastic_network(
    model: torch.nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    settings: DziugaiteRoySettings = DziugaiteRoySettings(),
    *,
    delta: float = 0.05,
    seed: int = 0,
    schedule: Schedule | None = None,
    prior_schedule: Schedule | None = None,
    attempt: int | None = None,
    sample: dict | None = None,
    device=None,
    cache_dir=None,
    quiet: bool = True,
) -> StochasticCertificate:
    """Certified bound on the error of a stochastic network N(w, diag(s)) with ``model``'s architecture.

    model: any nn.Module outputting one logit (binary, class 1 where > 0) or K logits (argmax).
    x, labels: the training sample S (labels int64 in 0..K-1).
    settings: the family's :class:`~pacbayes.families.settings.DziugaiteRoySettings` (its defaults
        are the defaults here), read as follows.
    init_state: the weights at initialisation (state dict or path of a weights-only .pt file), or
        init_seed: re-create them (:func:`pacbayes.stochastic.prior.reinitialised`); neither: zero prior.
    objective: "dr" (Dziugaite-Roy) or PBB's "quad", "lambda", "classic".
    surrogate: the training risk inside the objective (:data:`pacbayes.stochastic.train.SURROGATES`):
        "auto" (logistic for "dr", PBB's bounded cross-entropy otherwise), or "sigmoid", a smooth 0-1
        loss at temperature ``sigmoid_temperature``. Training only; the certificate counts 0-1 errors.
    posterior_start: "prior" (learned-from-prior mode: the posterior starts at the prior, KL 0, and is
        trained on all of S) or "model" (around-model: the mean starts at ``model``'s weights and is
        trained on the bound's points); ``fixed_mean`` overrides it (the mean stays at ``model``'s weights).
    prior_split: fraction of S held out to learn the prior mean, by ERM with ``prior_dropout`` for
        ``prior_epochs`` (0: data-independent prior).
    prior_std: the prior standard deviation, fixed before seeing S; with ``lambda_grid`` the prior
        variance is instead searched on Dziugaite & Roy's grid (starting at prior_std^2 from the prior,
        at their mean-square start around the model).
    posterior_epochs: epochs of posterior optimisation.
    mc_samples: n posterior draws for the Monte Carlo error.
    mc_sampling: "network" (each draw scored on every bound point; sample convergence over n) or
        "point" (a fresh draw per point and pass, n m independent indicators; needs an nn.Sequential
        of Linear and Conv2d layers, activations and pooling, :func:`pacbayes.stochastic.local.point_layers`).
    per_point_training: train the posterior with a fresh weight draw per input (local
        reparameterisation; same model requirement) instead of one draw per minibatch.
    attempts_ledger: counts this attempt on this data and these settings (see :mod:`pacbayes.attempts`).
    (``test_draws`` is the family's, for its test-error baseline, and is not read here.)

    The run: ``delta`` and ``seed``; ``schedule`` / ``prior_schedule``: the optimisers of the posterior
    and of the learned prior mean (batch size, learning rates; None: :class:`Schedule`'s defaults and
    :data:`DEFAULT_PRIOR_SCHEDULE`), running the settings' epochs; ``attempt``: which attempt this is when
    the caller counts them instead of a ledger (default 1); ``sample``: what S was drawn from, for the
    ledger's key (:func:`pacbayes.attempts.sample_record`; None: S itself); ``device``, ``cache_dir``
    (:mod:`pacbayes.cache`) and ``quiet`` (no progress bars).
    Returns the certificate: a BoundResult named "dziugaite-roy" or "pbb-<objective>" (certified=True;
    ``details["mode"]`` names the mode, ``details["why_vacuous"]`` explains a bound at or above
    chance), the posterior and the network copy it lives on.
    """
    started = time.perf_counter()
    delta, prior_split, prior_std, prior_dropout, mc_samples = _checked_settings(settings, delta)
    schedule = posterior_schedule(settings, schedule)
    prior_schedule = prior_schedule_of(settings, prior_schedule)
    objective, surrogate = settings.objective, settings.surrogate
    mc_sampling = resolve_mc_sampling(settings.mc_sampling, model)
    init_state, init_seed, fixed_mean = settings.init_state, settings.init_seed, settings.fixed_mean
    lambda_grid, per_point_training = settings.lambda_grid, settings.per_point_training
    sigmoid_temperature = checks.finite(settings.sigmoid_temperature, "sigmoid_temperature")
    risk_of = surrogate_risk(surrogate, objective, sigmoid_temperature)
    x, labels = _checked_data(x, labels)
    checks.sample_size(len(labels), name="the number of training points m", minimum=8)
    mode = _mode(settings.posterior_start, fixed_mean)
    statement = {
        "objective": objective,
        "surrogate": surrogate,
        "sigmoid_temperature": float(sigmoid_temperature),
        "prior_split": prior_split,
        "seed": int(seed),
        "mc_samples": mc_samples,
        "mc_sampling": mc_sampling,
        "per_point_training": bool(per_point_training),
        "fixed_mean": bool(fixed_mean),
        "mode": mode,
        "prior_std": prior_std,
        "lambda_grid": bool(lambda_grid),
        "prior_dropout": prior_dropout,
        "epochs": schedule.epochs,
        "prior_epochs": prior_schedule.epochs,
        **_training_record(schedule),
        "init": "checkpoint" if init_state is not None else "seed" if init_seed is not None else "none",
    }

    device = resolve_device(device)
    cache = phase_cache(cache_dir)
    net = copy.deepcopy(model).to(device).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    if mc_sampling == "point" or per_point_training:
        point_layers(net)
    x, labels = x.to(device), labels.to(device)
    logits = forward(net, parameters_of(net), x[:1])
    check_labels(logits, labels)
    classes = 2 if logits.dim() == 1 else int(logits.shape[1])
    m_prior = checks.prior_part_size(len(labels), prior_split) if prior_split else 0
    start_prior = _start(net, prior_split, init_state, init_seed, seed)
    attempt = _attempt(attempt, settings.attempts_ledger, model, x, labels, statement, sample)  # validated, no draw yet
    delta_attempt = attempt.share(delta)
    parts = bounds.split_delta(delta_attempt, {"pac_bayes_kl": 1.0, "sample_convergence": 1.0})
    split_gen, train_gen, mc_gen = _generators(seed, attempt.number, device)

    trained = parameters_of(net)
    layout = Layout.of(trained)
    prior, bound_idx = _prior(
        net,
        layout,
        x,
        labels,
        m_prior,
        start_prior,
        prior_schedule,
        prior_dropout,
        split_gen,
        train_gen,
        quiet,
        cache,
    )
    bound_idx = bound_idx.to(device)
    xb, yb = x[bound_idx], labels[bound_idx]
    m = len(yb)
    prior_mean = layout.flatten(prior.mean)
    from_prior = mode == "learned-from-prior"
    start = prior_mean if from_prior else layout.flatten(trained)
    if lambda_grid and not from_prior:
        lam0 = initial_prior_variance(start, prior_mean)
    else:
        lam0 = prior_std**2
    start_variance = lam0 if from_prior else lam0 * math.exp(schedule.init_log_ratio)
    fit_x, fit_labels = (x, labels) if from_prior else (xb, yb)
    posterior, lam = _posterior(
        cache,
        net,
        layout,
        start,
        prior_mean,
        fit_x,
        fit_labels,
        train_gen,
        surrogate={"surrogate": surrogate, "sigmoid_temperature": float(sigmoid_temperature)},
        objective=objective,
        delta=parts["pac_bayes_kl"],
        m=m,
        prior_variance=PriorVariance(lam0, on_grid=bool(lambda_grid)),
        start_variance=start_variance,
        fixed_mean=fixed_mean,
        schedule=schedule,
        risk_of=risk_of,
        per_point=bool(per_point_training),
        quiet=quiet,
    )
    sampled = _sampled_error(cache, net, posterior, xb, yb, mc_samples, mc_sampling, mc_gen, quiet)
    draws = mc_samples * m if mc_sampling == "point" else mc_samples
    cert = certify(
        posterior,
        prior_mean,
        lam,
        sampled,
        draws,
        m,
        parts["pac_bayes_kl"],
        parts["sample_convergence"],
        on_grid=bool(lambda_grid),
    )
    log_lam0 = torch.tensor(math.log(lam0), dtype=torch.float64, device=device)
    start_kl = float(gaussian_kl(start, torch.full_like(start, math.log(start_variance)), prior_mean, log_lam0))
    details = {
        "mode": mode,
        "objective": objective,
        "surrogate": surrogate,
        "sigmoid_temperature": float(sigmoid_temperature) if surrogate == "sigmoid" else None,
        "kl": cert["kl"],
        "kl_at_start": start_kl,
        "sampled_error": sampled,
        "mc_samples": mc_samples,
        "mc_sampling": mc_sampling,
        "mc_draws": draws,
        "per_point_training": bool(per_point_training),
        "empirical_error_bound": cert["empirical_bound"],
        "prior_variance": cert["lambda"],
        "prior_std": math.sqrt(cert["lambda"]),
        "lambda_search": "grid" if lambda_grid else "fixed in advance",
        "grid_index": cert["j"],
        "prior_kind": prior.kind,
        "prior": prior.description,
        "m": m,
        "m_prior": len(labels) - m,
        "posterior_points": len(labels) if from_prior else m,
        "posterior_epochs": schedule.epochs,
        **_training_record(schedule),
        "parameters": posterior.size(),
        "mean_mode": "fixed" if fixed_mean else "optimised",
        "posterior_std_median": float(torch.exp(0.5 * posterior.log_var.double()).median()),
        "mean_network_error": deterministic_error(net, posterior.mean_params(), xb, yb),
        "model_error": deterministic_error(net, trained, xb, yb),
        "dziugaite_roy_form": cert["dziugaite_roy_form"],
        "why_vacuous": why_vacuous(
            cert["value"],
            kl=cert["kl"],
            m=m,
            delta_kl=cert["delta_j"],
            sampled_error=sampled,
            empirical_bound=cert["empirical_bound"],
            mc_samples=draws,
            classes=classes,
            mode=mode,
        ),
        "attempt": attempt.number,
        "seed": int(seed),
        "device": str(device),
        "seconds": time.perf_counter() - started,
    }
    return StochasticCertificate(_bound_result(cert, details, delta, attempt, parts, prior), posterior, net)


def _posterior(cache, net, layout, start, prior_mean, x, labels, generator, *, surrogate: dict, **fit) -> tuple:
    """:func:`pacbayes.stochastic.train.fit_posterior`'s (posterior, final prior variance), from ``cache`` when
    it holds them for these inputs: ``fit``'s settings but the risk function and ``quiet`` (``surrogate`` names
    the risk), the start, the prior mean, (x, labels), the model and its buffers, and the generator's state."""
    keyed = {name: asdict(v) if is_dataclass(v) else v for name, v in fit.items() if name not in ("risk_of", "quiet")}
    phase = Phase(
        "dr-posterior",
        PHASE_VERSION,
        {**keyed, **surrogate, "model": repr(net), "device": str(start.device)},
        {"start": start, "prior_mean": prior_mean, "x": x, "labels": labels, **_buffers(net)},
        {"mean": like(start), "log_var": like(start), "prior_variance": ((), np.float64)},
    )

    def fitted() -> dict:
        posterior, lam = fit_posterior(net, layout, start, prior_mean, x, labels, generator=generator, **fit)
        return {
            "mean": posterior.mean,
            "log_var": posterior.log_var,
            "prior_variance": torch.tensor(lam, dtype=torch.float64),
        }

    result = cached(cache, phase, fitted, (generator,))
    posterior = DiagonalGaussian(result["mean"].to(start.device), result["log_var"].to(start.device), layout)
    return posterior, float(result["prior_variance"])


def _sampled_error(cache, net, posterior, x, labels, n: int, mc_sampling: str, generator, quiet: bool) -> float:
    """hat e_n of :func:`sampled_error` (or :func:`point_sampled_error` for ``mc_sampling="point"``), from
    ``cache`` when it holds it for this posterior, data, model, n and generator state."""
    sampler = point_sampled_error if mc_sampling == "point" else sampled_error
    phase = Phase(
        "dr-sampled-error",
        PHASE_VERSION,
        {"mc_samples": n, "mc_sampling": mc_sampling, "model": repr(net), "device": str(posterior.mean.device)},
        {"mean": posterior.mean, "log_var": posterior.log_var, "x": x, "labels": labels, **_buffers(net)},
        {"error": ((), np.float64)},
    )

    def measured() -> dict:
        error = sampler(net, posterior, x, labels, n, generator=generator, quiet=quiet)
        return {"error": torch.tensor(error, dtype=torch.float64)}

    return float(cached(cache, phase, measured, (generator,))["error"])


def _bound_result(cert, details, delta, attempt, parts, prior) -> BoundResult:
    ledger = attempt.reserve(delta)
    if cert["j"] is not None:
        ledger["lambda_grid_other_points"] = parts["pac_bayes_kl"] - cert["delta_j"]
    ledger["pac_bayes_kl"] = cert["delta_j"]
    ledger["sample_convergence"] = parts["sample_convergence"]
    variance = (
        "the prior variance was searched on the grid lambda_j = 0.1 exp(-j/100), every j union-bounded"
        if cert["j"] is not None
        else f"the prior std {details['prior_std']:.4g} was fixed before seeing the bound's points"
    )
    assumptions = (
        "the training points are iid draws from the data distribution",
        "the prior mean was fixed before seeing the bound's points: " + prior.description,
        variance,
        "buffers (e.g. BatchNorm running statistics) are held fixed and do not depend on the bound's points",
        *attempt.assumptions(),
    )
    return BoundResult(
        name="dziugaite-roy" if details["objective"] == "dr" else f"pbb-{details['objective']}",
        value=cert["value"],
        certified=True,
        certifies=CERTIFIES[details["mode"]],
        delta=ledger,
        assumptions=assumptions,
        details=details,
        family="dziugaite-roy",
        classifier="stochastic-network",
    )
