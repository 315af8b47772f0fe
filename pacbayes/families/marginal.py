"""The marginal-likelihood bound family end to end: model -> NNGP kernel -> ln P(S) -> bound.

Valle-Pérez, Camargo & Louis (ICLR 2019), Corollary 1, with ln P(S) the log probability that a
function drawn from the network's NNGP prior labels every training point correctly (Mingard et al.
2021). Two numbers come out:

- ``marginal-ep``: the bound evaluated at the EP estimate of ln P(S) -- an *estimate* (EP is
  accurate for orthant probabilities but is not a bound in either direction);
- ``marginal-certified``: the bound evaluated at a certified lower bound on ln P(S) (minimax-tilted
  importance sampling, Botev 2017, with Markov's inequality). The bound is decreasing in ln P(S),
  so it holds with probability >= 1 - (delta_pac_bayes + delta_markov), the two spent from this
  family's share of the report's delta.

Both certify the Gibbs error of Q*, the NNGP prior restricted to the functions that fit S; the
trained weights enter only through the zero-training-error check (:meth:`MarginalFamily.check`).
"""

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from scipy import special

from pacbayes.attempts import fingerprint, ledger_option, record_attempt
from pacbayes.bounds import MARGINAL_VARIANTS, marginal_likelihood_bound, series_delta, split_delta
from pacbayes.data import signs
from pacbayes.errors import InputError
from pacbayes.evidence import certified_log_evidence, ep_log_evidence, ep_predict
from pacbayes.families.base import Baseline, FamilyOutcome, RunContext, Tracked, stamped
from pacbayes.kernels import MonteCarloNNGP, nngp_for_module
from pacbayes.models import predict_labels
from pacbayes.options import option
from pacbayes.results import BoundResult

CERTIFIES = "Gibbs error of the NNGP-Bayes posterior Q* (NNGP prior restricted to functions that fit S)"
CLASSIFIER = "q-star"

DEFAULT_JITTER = 1e-6
DEFAULT_KERNEL_SAMPLES = 4096
KERNEL_CHOICES = ("auto", "analytic", "monte-carlo")


@dataclass(frozen=True)
class MarginalSettings:
    """Everything that fixes the prior and the estimators; chosen before seeing S.

    kernel: "auto" (analytic if the architecture is recognised, else Monte Carlo), "analytic"
    or "monte-carlo". sigma_w / sigma_b: None infers PyTorch's default initialisation.
    jitter: absolute epsilon added to the kernel diagonal; part of the prior (K + eps I).
    jitter_grid: instead of one jitter, a grid G declared before seeing the data: the smallest
        value for which K + eps I is positive definite is used, and every grid point's prior gets
        delta / |G| (a union bound over G, i.e. ln|G| nats), so the choice may depend on S.
    attempts_ledger: JSON-lines file counting runs on this data and prior (any seed): attempt k
        spends 6 delta / (pi^2 k^2) (:mod:`pacbayes.attempts`), so keeping the best seed is valid.
    """

    kernel: str = option(
        "auto",
        "--kernel-type",
        "NNGP prior: analytic for recognised FC/CNN ReLU nets, else Monte Carlo.",
        choices=KERNEL_CHOICES,
        aliases=("--kernel",),
    )
    sigma_w: Optional[float] = option(None, "--sigma-w", "Weight std (default: PyTorch's default init).")
    sigma_b: Optional[float] = option(None, "--sigma-b", "Bias std (default: PyTorch's default init).")
    kernel_samples: int = option(
        DEFAULT_KERNEL_SAMPLES, "--kernel-samples", "Random initialisations for the Monte Carlo kernel."
    )
    jitter: float = option(
        DEFAULT_JITTER, "--jitter", "Absolute epsilon added to the kernel diagonal; part of the prior K + eps I."
    )
    jitter_grid: tuple = option(
        (),
        "--jitter-grid",
        "Comma-separated ascending jitters declared before seeing the data (overrides "
        "--jitter): the smallest with K + eps I positive definite is used; costs ln|G| "
        "nats of delta.",
    )
    attempts_ledger: Optional[str] = ledger_option()
    variant: str = option(
        "langford",
        "--variant",
        "langford: Valle-Pérez et al. Cor. 1; mcallester: the authors' code.",
        choices=MARGINAL_VARIANTS,
    )
    seed: int = 0
    device: Optional[str] = None
    quiet: bool = True


def build_kernel(model: torch.nn.Module, input_shape, settings: MarginalSettings):
    """The NNGP prior of ``model``'s architecture: analytic when recognised, Monte Carlo otherwise."""
    if settings.kernel not in KERNEL_CHOICES:
        raise InputError(f"unknown kernel {settings.kernel!r}; choose one of {', '.join(KERNEL_CHOICES)}")
    if settings.kernel != "monte-carlo":
        analytic = nngp_for_module(model, input_shape, sigma_w=settings.sigma_w, sigma_b=settings.sigma_b)
        if analytic is not None:
            return analytic
        if settings.kernel == "analytic":
            raise InputError(
                "no analytic NNGP is known for this architecture (recognised: Sequential "
                "fully connected / convolutional ReLU nets with one output); "
                "use --kernel monte-carlo"
            )
    return MonteCarloNNGP(model, samples=settings.kernel_samples, seed=settings.seed)


PAC_BAYES_SHARE = "pac-bayes (marginal)"
MARKOV_SHARE = "markov (importance sampling)"


OTHER_ATTEMPTS = "other attempts (reserved for reruns, see --attempts-ledger)"
OTHER_JITTERS = "other jitter-grid points"


def split_marginal_delta(delta: float) -> dict:
    """This family's delta over its two statements: the PAC-Bayes bound and the Markov lower bound on ln P(S)."""
    return split_delta(delta, {PAC_BAYES_SHARE: 1.0, MARKOV_SHARE: 1.0})


def choose_jitter(K: torch.Tensor, settings: MarginalSettings) -> tuple:
    """(jitter, grid size): the fixed jitter, or the smallest point of the declared grid with K + eps I
    positive definite (by Cholesky). The grid's size is paid in delta by :func:`marginal_ledger`."""
    grid = tuple(settings.jitter_grid)
    if not grid:
        return settings.jitter, 1
    if any(not (isinstance(g, (int, float)) and math.isfinite(g) and g >= 0) for g in grid) or list(grid) != sorted(
        grid
    ):
        raise InputError(f"jitter grid must be ascending finite numbers >= 0, got {list(grid)}")
    for value in grid:
        prior = K.clone()
        prior.diagonal().add_(value)
        if int(torch.linalg.cholesky_ex(prior)[1]) == 0:
            return float(value), len(grid)
    raise InputError(
        f"K + eps I is not positive definite for any jitter in the declared grid {list(grid)}; "
        "declare a grid with larger values before seeing the data"
    )


def marginal_ledger(delta: float, attempt: int, grid_size: int) -> dict:
    """This family's delta spent: other attempts, the other grid points, PAC-Bayes and Markov.

    Attempt k spends 6 delta / (pi^2 k^2) whether or not a ledger is kept (as the stochastic family
    does), so a first run without a ledger stays valid when later runs are counted in one."""
    delta_attempt = series_delta(attempt, delta)
    delta_prior = delta_attempt / grid_size
    spent = {OTHER_ATTEMPTS: delta - delta_attempt, OTHER_JITTERS: delta_attempt - delta_prior}
    return {**{name: value for name, value in spent.items() if value > 0.0}, **split_marginal_delta(delta_prior)}


def attempt_number(train_x: torch.Tensor, train_signs: torch.Tensor, settings: MarginalSettings) -> int:
    """1, or this run's number in the settings' attempts ledger (keyed by the data and the prior, not the seed)."""
    if settings.attempts_ledger is None:
        return 1
    prior = replace(settings, seed=0, quiet=True, device=None, attempts_ledger=None)
    key = fingerprint([("x", train_x), ("y", train_signs)], text=f"marginal|{prior!r}")
    return record_attempt(Path(settings.attempts_ledger), key, {"family": "marginal", "seed": settings.seed})


def gibbs_test_error(mean: np.ndarray, variance: np.ndarray, signs: np.ndarray) -> float:
    """Expected 0-1 error of a Gibbs classifier sign(f) with f ~ N(mean, variance): mean Phi(-y mean / sd)."""
    z = -np.asarray(signs, dtype=np.float64) * mean / np.sqrt(np.maximum(variance, 1e-300))
    return float(special.ndtr(z).mean())


def bayes_agreement(model_signs: np.ndarray, mean: np.ndarray, variance: np.ndarray) -> dict:
    """How Bayes-like MODEL is on the test points: a *diagnostic* of the SGD ~ Bayes premise, never a bound.

    With Q*'s predictive f(x) ~ N(mean, variance) (EP) and its posterior-mean classifier sign(mean):
    ``bayes_agreement`` is the fraction of test points where MODEL's label equals sign(mean);
    ``gibbs_agreement`` is the same rate for Q*'s own Gibbs draws, E[1{sign f = sign mean}] = mean
    Phi(|mean| / sd), the level a sampler of Q* itself would reach; ``model_gibbs_agreement`` is
    E[1{sign f = MODEL's label}]. Mingard et al. (JMLR 2021) argue SGD samples functions like the
    Bayesian posterior; a ``bayes_agreement`` far below ``gibbs_agreement`` is evidence against
    that premise for this network.
    """
    model_signs = np.asarray(model_signs, dtype=np.float64)
    posterior_mean_signs = np.where(mean >= 0.0, 1.0, -1.0)
    return {
        "bayes_agreement": float(np.mean(model_signs == posterior_mean_signs)),
        "gibbs_agreement": 1.0 - gibbs_test_error(mean, variance, posterior_mean_signs),
        "model_gibbs_agreement": 1.0 - gibbs_test_error(mean, variance, model_signs),
        "points": int(model_signs.shape[0]),
        "kind": "diagnostic (EP predictive of Q*; not certified)",
    }


def marginal_estimate(
    model: torch.nn.Module,
    train_x: torch.Tensor,
    train_signs: torch.Tensor,
    *,
    delta: float,
    settings: MarginalSettings = MarginalSettings(),
) -> tuple:
    """(EP ln P(S), the bound at it): the ``marginal-ep`` number of :func:`marginal_bounds` for a first
    attempt, without the certified sandwich or the test-set work (for tracking during training)."""
    kernel = build_kernel(model, tuple(train_x.shape[1:]), settings)
    K = kernel.matrix(train_x, device=settings.device, quiet=settings.quiet)
    jitter, grid_size = choose_jitter(K, settings)
    ep = ep_log_evidence(K, train_signs, jitter=jitter, device=settings.device, quiet=settings.quiet)
    delta_pb = marginal_ledger(delta, 1, grid_size)[PAC_BAYES_SHARE]
    return ep.log_evidence, marginal_likelihood_bound(
        ep.log_evidence, int(train_x.shape[0]), delta_pb, settings.variant
    )


def marginal_bounds(
    model: torch.nn.Module,
    train_x: torch.Tensor,
    train_signs: torch.Tensor,
    test_x: torch.Tensor,
    test_signs: torch.Tensor,
    *,
    delta: float,
    settings: MarginalSettings = MarginalSettings(),
):
    """The EP estimate and the certified marginal-likelihood bound, plus Q*'s estimated test error.

    ``train_signs``/``test_signs`` are labels in {-1, +1}; ``delta`` is this family's share of the
    report's failure probability. Returns (list of BoundResult, dict of diagnostics).
    """
    m = int(train_x.shape[0])
    if m < 2:
        raise InputError(f"the marginal-likelihood bound needs at least 2 training points, got {m}")
    started = time.perf_counter()
    kernel = build_kernel(model, tuple(train_x.shape[1:]), settings)
    K = kernel.matrix(train_x, device=settings.device, quiet=settings.quiet)
    kernel_seconds = time.perf_counter() - started

    jitter, grid_size = choose_jitter(K, settings)
    attempt = attempt_number(train_x, train_signs, settings)
    ep = ep_log_evidence(K, train_signs, jitter=jitter, device=settings.device, quiet=settings.quiet)
    deltas = marginal_ledger(delta, attempt, grid_size)
    delta_pb = deltas[PAC_BAYES_SHARE]
    certified = certified_log_evidence(
        K,
        train_signs,
        delta_prime=deltas[MARKOV_SHARE],
        seed=settings.seed,
        jitter=jitter,
        device=settings.device,
        quiet=settings.quiet,
    )

    cross = kernel.matrix(train_x, test_x, device=settings.device, quiet=settings.quiet)
    mean, variance = ep_predict(ep, cross, kernel.diagonal(test_x, device=settings.device))
    q_star_test_error = gibbs_test_error(mean, variance, test_signs.cpu().numpy())
    model_signs = predict_labels(model, test_x).cpu().numpy() * 2.0 - 1.0
    agreement = bayes_agreement(model_signs, mean, variance)

    prior = dict(kernel.describe(), jitter=jitter)
    if grid_size > 1:
        prior["jitter_grid"] = list(settings.jitter_grid)
    assumptions = (
        "S is an iid sample from the data distribution",
        "the prior is the NNGP of the architecture with kernel K + eps I (eps = "
        f"{jitter:g}), "
        + (
            f"the smallest positive-definite point of the grid {list(settings.jitter_grid)} "
            "declared before seeing S (union bound over the grid)"
            if grid_size > 1
            else "fixed before seeing S"
        )
        + (
            "; a Monte Carlo kernel is exact for that random-feature prior"
            if prior.get("kind") == "monte-carlo"
            else ""
        ),
        "realisable: the trained model has zero training error",
        f"this is attempt {attempt} on this data and prior; every run with another seed is counted "
        "in the attempts ledger (delta_k = 6 delta / (pi^2 k^2))"
        if settings.attempts_ledger
        else "no other seed was tried on this data and prior (or pass an attempts ledger that counts them)",
        "the number is for Q*; it applies to the trained network only if SGD samples functions "
        "like the Bayesian posterior (Mingard et al. 2021) and the network is close to its NNGP limit",
    )
    diagnostics = {
        "kernel": prior,
        "kernel_seconds": kernel_seconds,
        "ep": {
            "log_evidence": ep.log_evidence,
            "sweeps": ep.sweeps,
            "final_change": ep.final_change,
            "seconds": ep.seconds,
            "converged": ep.converged,
        },
        "certified": {
            "lower": certified.lower,
            "log_estimate": certified.log_estimate,
            "upper": certified.upper,
            "upper_note": certified.upper_reason,
            "grad_norm": certified.grad_norm,
            "samples": certified.samples,
            "seed": certified.seed,
            "seconds": certified.seconds,
            "delta_prime": certified.delta_prime,
        },
        "q_star_test_error_ep": q_star_test_error,
        **agreement,
        "attempt": attempt,
    }
    results = [
        BoundResult(
            name="marginal-ep",
            value=marginal_likelihood_bound(ep.log_evidence, m, delta_pb, settings.variant),
            certified=False,
            certifies=CERTIFIES,
            delta={PAC_BAYES_SHARE: delta_pb},
            log_evidence=ep.log_evidence,
            assumptions=assumptions,
            details={
                "estimator": "expectation propagation (Heaviside likelihood)",
                "variant": settings.variant,
                "sweeps": ep.sweeps,
            },
            family="marginal",
            classifier=CLASSIFIER,
        ),
        BoundResult(
            name="marginal-certified",
            value=marginal_likelihood_bound(certified.lower, m, delta_pb, settings.variant),
            certified=True,
            certifies=CERTIFIES,
            delta=deltas,
            log_evidence=certified.lower,
            assumptions=assumptions,
            details={
                "estimator": "minimax-tilted importance sampling (Botev 2017) + Markov",
                "variant": settings.variant,
                "log_evidence_upper": certified.upper,  # psi*, None if not certified
                "log_evidence_upper_note": certified.upper_reason,
                "best_possible_bound": None
                if certified.upper is None
                else marginal_likelihood_bound(min(certified.upper, 0.0), m, delta_pb, settings.variant),
            },
            family="marginal",
            classifier=CLASSIFIER,
        ),
    ]
    return results, diagnostics


def _for_run(settings: MarginalSettings, context: RunContext) -> MarginalSettings:
    """The settings with the run's seed, progress and (when given) device."""
    return replace(
        settings,
        seed=context.seed,
        quiet=context.quiet,
        device=settings.device if context.device is None else context.device,
    )


class MarginalFamily:
    """Certifies the Gibbs error of Q* (see the module docstring); needs a realisable, single-logit fit."""

    name = "marginal"
    settings_type = MarginalSettings
    classifier = CLASSIFIER

    def check(self, context: RunContext) -> None:
        """The prior is one GP (a single logit), and the bound is for the realisable case."""
        self.check_outputs(context.outputs)
        if context.train_error > 0.0:
            raise InputError(
                f"training error is {context.train_error:.4f} > 0 but the marginal-likelihood bound "
                "is for the realisable case: train to zero training error (dropping misfit points "
                "would make S non-iid, so there is no such option)"
            )

    @staticmethod
    def check_outputs(outputs: int) -> None:
        if outputs != 1:
            raise InputError(
                f"the marginal-likelihood bound needs a single-logit binary model (its prior is "
                f"one GP); this model has {outputs} outputs: use another bound family"
            )

    def run(
        self, model, train, test, *, delta: float, settings: MarginalSettings, context: RunContext
    ) -> FamilyOutcome:
        self.check(context)
        results, diagnostics = marginal_bounds(
            model,
            train.x,
            signs(train.labels),
            test.x,
            signs(test.labels),
            delta=delta,
            settings=_for_run(settings, context),
        )
        return FamilyOutcome(
            bounds=stamped(results, self),
            diagnostics=diagnostics,
            baselines=(
                Baseline(
                    "q_star_test_error_ep",
                    diagnostics["q_star_test_error_ep"],
                    "Q* estimated test error (EP predictive)",
                ),
                Baseline("bayes_agreement", diagnostics["bayes_agreement"], "MODEL agrees with Q*'s mean (diagnostic)"),
                Baseline(
                    "gibbs_agreement", diagnostics["gibbs_agreement"], "Q*'s draws agree with its mean (diagnostic)"
                ),
            ),
        )

    def track(
        self, model, train, *, delta: float, settings: MarginalSettings, context: RunContext, cache: dict
    ) -> Tracked:
        """The bound at the EP estimate of ln P(S) (kernel and EP once, cached: they do not depend on the
        weights); it applies to the network only once it fits S. ``delta`` is what :meth:`run` would get."""
        self.check_outputs(context.outputs)
        if "value" not in cache:
            cache["log_evidence"], cache["value"] = marginal_estimate(
                model, train.x, signs(train.labels), delta=delta, settings=_for_run(settings, context)
            )
        fits = context.train_error == 0.0
        return Tracked(
            values={"marginal-ep": cache["value"]},
            certified={"marginal-ep": False},
            applies=fits,
            note=""
            if fits
            else "marginal: the network does not fit S yet (training error > 0), so "
            "the realisable bound does not apply to it",
        )


FAMILY = MarginalFamily()


__all__ = [
    "bayes_agreement",
    "FAMILY",
    "MarginalFamily",
    "MarginalSettings",
    "marginal_bounds",
    "build_kernel",
    "gibbs_test_error",
    "split_marginal_delta",
    "PAC_BAYES_SHARE",
    "MARKOV_SHARE",
    "OTHER_ATTEMPTS",
    "OTHER_JITTERS",
    "choose_jitter",
    "marginal_ledger",
    "marginal_estimate",
    "CERTIFIES",
    "CLASSIFIER",
    "DEFAULT_JITTER",
    "KERNEL_CHOICES",
]
