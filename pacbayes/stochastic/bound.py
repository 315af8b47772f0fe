"""Entry point: certify a trained network through a Gaussian posterior around its weights
(Dziugaite & Roy 2017; PBB objectives and data-dependent priors, Pérez-Ortiz et al. 2021).

Flow: resolve the prior mean -> (optionally) learn it on a held-out part of S -> optimise the
posterior and lambda on the remaining points -> Monte Carlo error -> certificate. Every delta is in
the returned ledger and the ledger sums to the ``delta`` given.
"""

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from pacbayes import bounds
from pacbayes import checks
from pacbayes.device import resolve_device
from pacbayes.errors import InputError
from pacbayes.results import BoundResult
from pacbayes.attempts import fingerprint, record_attempt
from pacbayes.stochastic.certificate import certify, deterministic_error, sampled_error
from pacbayes.stochastic.gaussian import DiagonalGaussian, Layout
from pacbayes.stochastic.network import check_labels, forward
from pacbayes.stochastic.prior import Prior, data_independent_prior, parameters_of, reinitialised
from pacbayes.stochastic.train import OBJECTIVES, Schedule, fit_posterior, fit_prior_mean

DEFAULT_PRIOR_SCHEDULE = Schedule(epochs=10, batch_size=100, lr=0.01)


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


def _attempt_number(attempt, attempts_ledger, model, x, labels, settings) -> int:
    if attempts_ledger is not None:
        if attempt is not None:
            raise InputError("pass either attempt or attempts_ledger, not both")
        tensors = [*model.named_parameters(), ("", x), ("", labels)]  # keys as in earlier ledgers
        return record_attempt(Path(attempts_ledger), fingerprint(tensors), settings)
    if attempt is None:
        return 1
    return checks.sample_size(attempt, name="attempt", minimum=1)


def _prior(model, layout, x, labels, prior_split, init_state, init_seed, seed, schedule, split_gen, train_gen, quiet):
    """The prior and the indices of the points the bound is computed on."""
    m = len(labels)
    if prior_split == 0.0:
        return data_independent_prior(model, init_state, init_seed), torch.arange(m)
    m_prior = int(round(prior_split * m))
    if m_prior < 1 or m - m_prior < 8:
        raise InputError(
            f"prior_split={prior_split} leaves {m_prior} prior and {m - m_prior} bound points; "
            "both parts need points (the bound needs >= 8): choose a split in (0, 1) such as 0.5"
        )
    order = torch.randperm(m, generator=split_gen)
    held_out, rest = order[:m_prior], order[m_prior:]
    if init_state is None and init_seed is None:
        start = Prior(
            reinitialised(model, seed),
            "init-seed",
            f"the architecture re-initialised with torch.manual_seed({int(seed)})",
        )
    else:
        start = data_independent_prior(model, init_state, init_seed)
    device = next(model.parameters()).device
    mean = fit_prior_mean(
        model,
        layout,
        layout.flatten(start.mean),
        x[held_out.to(device)],
        labels[held_out.to(device)],
        schedule=schedule,
        generator=train_gen,
        quiet=quiet,
    )
    return Prior(
        layout.unflatten(mean),
        "data-dependent",
        f"N(w_prior, lambda I), w_prior learned on {m_prior} held-out training points starting "
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


def stochastic_bound(model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, **options) -> list:
    """[BoundResult] of :func:`certify_stochastic_network` (same arguments): the CLI/report entry point."""
    return [certify_stochastic_network(model, x, labels, **options).result]


def certify_stochastic_network(
    model: torch.nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    *,
    delta: float = 0.05,
    init_state=None,
    init_seed: Optional[int] = None,
    objective: str = "dr",
    prior_split: float = 0.0,
    mc_samples: int = 1000,
    seed: int = 0,
    fixed_mean: bool = False,
    schedule: Schedule = Schedule(),
    prior_schedule: Schedule = DEFAULT_PRIOR_SCHEDULE,
    attempt: Optional[int] = None,
    attempts_ledger=None,
    device=None,
    quiet: bool = True,
) -> StochasticCertificate:
    """Certified bound on the error of the stochastic network N(w, diag(s)) around ``model``'s weights.

    model: any nn.Module outputting one logit (binary, class 1 where > 0) or K logits (argmax).
    x, labels: the training sample S (labels int64 in 0..K-1).
    init_state: the weights at initialisation (state dict or path of a weights-only .pt file), or
        init_seed: re-create them (:func:`pacbayes.stochastic.prior.reinitialised`); neither: zero prior.
    objective: "dr" (Dziugaite-Roy) or PBB's "quad", "lambda", "classic".
    prior_split: fraction of S held out to learn the prior mean (0: data-independent prior).
    mc_samples: n posterior draws for the Monte Carlo error; fixed_mean keeps w at the model's weights.
    attempt / attempts_ledger: which attempt on this model and data this is (see
        :mod:`pacbayes.attempts`); default 1.
    Returns the certificate: a BoundResult named "dziugaite-roy" or "pbb-<objective>" (certified=True),
    the posterior and the network copy it lives on.
    """
    started = time.perf_counter()
    delta = checks.delta(delta)
    if objective not in OBJECTIVES:
        raise InputError(f"unknown objective {objective!r}; use one of {', '.join(OBJECTIVES)}")
    prior_split = checks.probability(prior_split, "prior_split")
    if prior_split >= 1.0:
        raise InputError("prior_split must be < 1: the bound needs points the prior has not seen")
    mc_samples = checks.sample_size(mc_samples, name="mc_samples", minimum=1)
    x, labels = _checked_data(x, labels)
    checks.sample_size(len(labels), name="the number of training points m", minimum=8)
    settings = {
        "objective": objective,
        "prior_split": prior_split,
        "seed": int(seed),
        "mc_samples": mc_samples,
        "fixed_mean": bool(fixed_mean),
    }
    attempt = _attempt_number(attempt, attempts_ledger, model, x, labels, settings)
    delta_attempt = bounds.series_delta(attempt, delta)
    parts = bounds.split_delta(delta_attempt, {"pac_bayes_kl": 1.0, "sample_convergence": 1.0})

    device = resolve_device(device)
    net = copy.deepcopy(model).to(device).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    x, labels = x.to(device), labels.to(device)
    check_labels(forward(net, parameters_of(net), x[:1]), labels)
    split_gen, train_gen, mc_gen = _generators(seed, attempt, device)

    trained = parameters_of(net)
    layout = Layout.of(trained)
    prior, bound_idx = _prior(
        net, layout, x, labels, prior_split, init_state, init_seed, seed, prior_schedule, split_gen, train_gen, quiet
    )
    bound_idx = bound_idx.to(device)
    xb, yb = x[bound_idx], labels[bound_idx]
    m = len(yb)
    prior_mean = layout.flatten(prior.mean)
    posterior, lam = fit_posterior(
        net,
        layout,
        layout.flatten(trained),
        prior_mean,
        xb,
        yb,
        objective=objective,
        delta=parts["pac_bayes_kl"],
        fixed_mean=fixed_mean,
        schedule=schedule,
        generator=train_gen,
        quiet=quiet,
    )
    sampled = sampled_error(net, posterior, xb, yb, mc_samples, generator=mc_gen, quiet=quiet)
    cert = certify(
        posterior, prior_mean, lam, sampled, mc_samples, m, parts["pac_bayes_kl"], parts["sample_convergence"]
    )
    details = {
        "objective": objective,
        "kl": cert["kl"],
        "sampled_error": sampled,
        "mc_samples": mc_samples,
        "empirical_error_bound": cert["empirical_bound"],
        "prior_variance": cert["lambda"],
        "grid_index": cert["j"],
        "prior_kind": prior.kind,
        "prior": prior.description,
        "m": m,
        "m_prior": len(labels) - m,
        "parameters": posterior.size(),
        "mean_mode": "fixed" if fixed_mean else "optimised",
        "posterior_std_median": float(torch.exp(0.5 * posterior.log_var.double()).median()),
        "mean_network_error": deterministic_error(net, posterior.mean_params(), xb, yb),
        "model_error": deterministic_error(net, trained, xb, yb),
        "dziugaite_roy_form": cert["dziugaite_roy_form"],
        "attempt": attempt,
        "seed": int(seed),
        "device": str(device),
        "seconds": time.perf_counter() - started,
    }
    return StochasticCertificate(
        _bound_result(cert, details, delta, delta_attempt, parts, prior, fixed_mean), posterior, net
    )


def _bound_result(cert, details, delta, delta_attempt, parts, prior, fixed_mean) -> BoundResult:
    ledger = {
        "other_attempts": delta - delta_attempt,
        "lambda_grid_other_points": parts["pac_bayes_kl"] - cert["delta_j"],
        "pac_bayes_kl": cert["delta_j"],
        "sample_convergence": parts["sample_convergence"],
    }
    mean_kind = (
        "w = the given model's trained weights (fixed-mean mode)"
        if fixed_mean
        else "w optimised starting from the given model's trained weights"
    )
    assumptions = (
        "the training points are iid draws from the data distribution",
        "the prior mean was fixed before seeing the bound's points: " + prior.description,
        "buffers (e.g. BatchNorm running statistics) are held fixed and do not depend on the bound's points",
        f"this is attempt {details['attempt']} on this model and data, and every earlier attempt is counted "
        "(delta_k = 6 delta / (pi^2 k^2))",
    )
    return BoundResult(
        name="dziugaite-roy" if details["objective"] == "dr" else f"pbb-{details['objective']}",
        value=cert["value"],
        certified=True,
        certifies=(
            f"the stochastic network N(w, diag(s)) (a fresh weight draw per prediction), {mean_kind}; "
            "not the deterministic network"
        ),
        delta=ledger,
        assumptions=assumptions,
        details=details,
        family="dziugaite-roy",
        classifier="stochastic-network",
    )
