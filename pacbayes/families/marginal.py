"""The marginal-likelihood bound family end to end: model -> NNGP kernel -> ln P(S) -> bound.

Valle-Pérez, Camargo & Louis (ICLR 2019), Corollary 1, with ln P(S) the log probability that a
function drawn from the network's NNGP prior labels every training point correctly (Mingard et al.
2021). Two numbers come out:

- ``marginal-ep``: the bound evaluated at the EP estimate of ln P(S) -- an *estimate* (EP is
  accurate for orthant probabilities but is not a bound in either direction);
- ``marginal-certified``: the bound evaluated at a certified lower bound on ln P(S) (importance
  sampling from the EP cavity conditionals, :mod:`pacbayes.evidence.ep_cavity`, with Markov's
  inequality; psi* of Botev's 2017 minimax tilting as the upper end). The bound is decreasing in ln P(S),
  so it holds with probability >= 1 - (delta_pac_bayes + delta_markov), the two spent from this
  family's share of the report's delta.

Both certify the Gibbs error of Q*, the NNGP prior restricted to the functions that fit S; the
trained weights enter only through the zero-training-error check (:meth:`MarginalFamily.check`).
"""

import math
import time
import weakref
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from pacbayes.attempts import OTHER_ATTEMPTS, Attempt, count_attempt
from pacbayes.bounds import marginal_likelihood_bound, marginal_likelihood_complexity, split_delta
from pacbayes.cache import phase_cache
from pacbayes.device import resolve_device, threads_for
from pacbayes.errors import InputError
from pacbayes.evidence.budget import orthant_dimension
from pacbayes.evidence.label_model import label_model
from pacbayes.evidence.multiclass import validate_class_labels
from pacbayes.families.base import Baseline, FamilyBase, FamilyOutcome, RunContext, Tracked, stamped
from pacbayes.families.estimates import marginal_evidence_budgets
from pacbayes.families.marginal_cache import ep_pass, kernel_pass
from pacbayes.families.settings import DEFAULT_JITTER, KERNEL_CHOICES, MarginalSettings
from pacbayes.hashing import tensors_sha256
from pacbayes.kernels import MonteCarloNNGP, analytic_kernel_or_reason
from pacbayes.kernels.choice import COMPARE_SECONDS, choose_kernel, monte_carlo_forecast
from pacbayes.models import predict_labels
from pacbayes.progress import announce
from pacbayes.results import BoundResult

CERTIFIES = "Gibbs error of the NNGP-Bayes posterior Q* (NNGP prior restricted to functions that fit S)"
CLASSIFIER = "q-star"


def build_kernel(
    model: torch.nn.Module, input_shape, settings: MarginalSettings, m: int | None = None, pilot_inputs=None
):
    """The NNGP prior of ``model``'s architecture: analytic when the kernel compiler maps every operation
    of its graph to a layer rule (:mod:`pacbayes.kernels`), Monte Carlo otherwise (saying why).

    With ``m`` (the training points), an analytic kernel is first weighed against the Monte Carlo kernel
    (:func:`_weigh`). The kernel's ``selection`` says why it was chosen. ``pilot_inputs``: held-out inputs
    (never the training sample's) on which a Monte Carlo kernel chooses its sample count (None: Gaussian
    probes; docs/kernels.md)."""
    if settings.kernel not in KERNEL_CHOICES:
        raise InputError(f"unknown kernel {settings.kernel!r}; choose one of {', '.join(KERNEL_CHOICES)}")
    if settings.kernel == "monte-carlo":
        return _monte_carlo(model, settings, "Monte Carlo: asked for (--kernel-type monte-carlo)", pilot_inputs)
    analytic, reason = analytic_kernel_or_reason(model, input_shape, sigma_w=settings.sigma_w, sigma_b=settings.sigma_b)
    if analytic is None:
        if settings.kernel == "analytic":
            raise InputError(f"no analytic NNGP for this model: {reason}; use --kernel monte-carlo")
        announce(
            f"kernel: fell back to Monte Carlo ({settings.kernel_samples or 'auto'} initialisations): {reason}",
            quiet=settings.quiet,
        )
        return _monte_carlo(model, settings, f"Monte Carlo: no analytic kernel ({reason})", pilot_inputs)
    if m is None:
        analytic.selection = "analytic: every operation has a kernel rule"
        return analytic
    return _weigh(analytic, model, input_shape, m, settings, pilot_inputs)


def _monte_carlo(model: torch.nn.Module, settings: MarginalSettings, selection: str, pilot_inputs) -> MonteCarloNNGP:
    kernel = MonteCarloNNGP(
        model,
        samples=settings.kernel_samples,
        seed=settings.seed,
        pilot_inputs=pilot_inputs,
        target_error=settings.kernel_error,
        projection=settings.kernel_projection,
    )
    kernel.selection = selection
    return kernel


_FORECASTS: "weakref.WeakKeyDictionary[torch.nn.Module, dict]" = weakref.WeakKeyDictionary()


def _forecast(model: torch.nn.Module, monte_carlo, m: int, input_shape, settings: MarginalSettings, pilot_inputs):
    """:func:`monte_carlo_forecast` (a pilot of random initialisations: it depends on the architecture and the
    pilot inputs, not on the trained weights) once per model, m, input shape, settings and pilot inputs, so that
    a run's phase estimates and the run itself share one pilot."""
    memo = _FORECASTS.setdefault(model, {})
    key = (m, tuple(input_shape), settings, None if pilot_inputs is None else tensors_sha256(pilot_inputs))
    if key not in memo:
        memo[key] = monte_carlo_forecast(monte_carlo, m, input_shape, settings.device)
    return memo[key]


def _weigh(analytic, model: torch.nn.Module, input_shape, m: int, settings: MarginalSettings, pilot_inputs):
    """The analytic kernel, or the Monte Carlo one where :func:`~pacbayes.kernels.choice.choose_kernel` takes it
    (docs/kernels.md#choosing-the-kernel), from both kernels' estimates for the m x m matrix; an analytic kernel
    slower than the Monte Carlo one is announced, with both estimates, before any work."""
    seconds, _ = analytic.estimate(m, input_shape=input_shape, device=settings.device)
    monte_carlo, forecast = None, None
    if seconds >= COMPARE_SECONDS:
        monte_carlo = _monte_carlo(model, settings, "", pilot_inputs)
        forecast = _forecast(model, monte_carlo, m, input_shape, settings, pilot_inputs)
    choice = choose_kernel(settings.kernel, seconds, forecast, m)
    announce(choice.notice, quiet=settings.quiet or not choice.notice)
    kernel = monte_carlo if monte_carlo is not None and choice.kind == "monte-carlo" else analytic
    kernel.selection = choice.reason
    return kernel


PAC_BAYES_SHARE = "pac-bayes (marginal)"
MARKOV_SHARE = "markov (importance sampling)"


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


def marginal_ledger(delta: float, attempt: Attempt, grid_size: int) -> dict:
    """This family's delta spent: other attempts, the other grid points, PAC-Bayes and Markov.

    Attempt k spends 6 delta / (pi^2 k^2) whether or not a ledger is kept (as the stochastic family
    does), so a first run without a ledger stays valid when later runs are counted in one."""
    delta_attempt = attempt.share(delta)
    delta_prior = delta_attempt / grid_size
    others = {OTHER_JITTERS: delta_attempt - delta_prior} if grid_size > 1 else {}
    return {**attempt.reserve(delta), **others, **split_marginal_delta(delta_prior)}


def prior_statement(kernel, settings: MarginalSettings) -> dict:
    """What this family's statement is about besides S, for the attempts ledger's key: the prior
    K + eps I as resolved (kernel kind, sigma_w, sigma_b, the Monte Carlo sample count, the jitter or
    the declared grid). Not --variant (the same statement by another formula), the baseline or the seed."""
    grid = list(settings.jitter_grid)
    return {
        "kernel": kernel.kind,
        "sigma_w": settings.sigma_w,
        "sigma_b": settings.sigma_b,
        "kernel_samples": (settings.kernel_samples or "auto") if kernel.kind == MonteCarloNNGP.kind else None,
        "kernel_projection": settings.kernel_projection if kernel.kind == MonteCarloNNGP.kind else None,
        "jitter": None if grid else settings.jitter,
        "jitter_grid": grid,
    }


def gibbs_losses(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per test point, the expected 0-1 loss of Q*'s Gibbs classifier: 1 - Pr_{f ~ Q*}[argmax f(x_i) = y_i]."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    return 1.0 - probabilities[np.arange(probabilities.shape[0]), np.asarray(labels, dtype=np.int64)]


def gibbs_test_error(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Expected 0-1 error of Q*'s Gibbs classifier over the test points, from its class probabilities (n, C)."""
    return float(gibbs_losses(probabilities, labels).mean())


def bayes_agreement(model_labels: np.ndarray, probabilities: np.ndarray) -> dict:
    """How Bayes-like MODEL is on the test points: a *diagnostic* of the SGD ~ Bayes premise, never a bound.

    With Q*'s predictive class probabilities p_i (EP) and its Bayes (majority-vote) classifier
    argmax_c p_ic -- for one logit, sign of the predictive mean: ``bayes_agreement`` is the fraction of
    test points where MODEL's label equals that classifier's; ``gibbs_agreement`` is the same rate for
    Q*'s own Gibbs draws, mean_i max_c p_ic, the level a sampler of Q* itself would reach;
    ``model_gibbs_agreement`` is the rate at which Q*'s draws agree with MODEL, mean_i p_i[MODEL's label].
    Mingard et al. (JMLR 2021) argue SGD samples functions like the Bayesian posterior; a
    ``bayes_agreement`` far below ``gibbs_agreement`` is evidence against that premise for this network.
    """
    model_labels = np.asarray(model_labels, dtype=np.int64)
    bayes_labels = np.argmax(probabilities, axis=1)
    return {
        "bayes_agreement": float(np.mean(model_labels == bayes_labels)),
        "gibbs_agreement": 1.0 - gibbs_test_error(probabilities, bayes_labels),
        "model_gibbs_agreement": 1.0 - gibbs_test_error(probabilities, model_labels),
        "points": int(model_labels.shape[0]),
        "kind": "diagnostic (EP predictive of Q*; not certified)",
    }


def baseline_subset(n: int, settings: MarginalSettings) -> np.ndarray:
    """Indices of the test points Q*'s baseline uses: all n, or a seeded subset of ``q_star_test_points``
    (they are also the held-out inputs on which a Monte Carlo kernel chooses its sample count)."""
    limit = settings.q_star_test_points
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng([settings.seed, 0x51A5]).choice(n, size=limit, replace=False))


def baseline_inputs(test_x: torch.Tensor, settings: MarginalSettings) -> torch.Tensor:
    """The test inputs of Q*'s baseline (:func:`baseline_subset`): held out, so a Monte Carlo kernel also
    chooses its sample count on them."""
    return test_x[torch.as_tensor(baseline_subset(int(test_x.shape[0]), settings))]


def q_star_baseline(
    model, kernel, ep, likelihood, train_x, test, settings: MarginalSettings, test_kernels=None
) -> dict:
    """Q*'s Gibbs test error (EP predictive) and the agreement diagnostic on a seeded subset of the test set.
    ``test_kernels``: (K(train, test), the test diagonal) on that subset when already computed, else computed.

    The standard error is that of a mean over points drawn without replacement from the n test points
    (finite-population corrected), so it is 0 when the whole test set is used."""
    test_x, test_labels = test
    n = int(test_x.shape[0])
    chosen = baseline_subset(n, settings)
    x = baseline_inputs(test_x, settings)
    announce(f"Q* baseline: EP predictive at {len(chosen):,} of {n:,} test points", quiet=settings.quiet)
    if test_kernels is None:
        test_kernels = (
            kernel.matrix(train_x, x, device=settings.device, quiet=settings.quiet),
            kernel.diagonal(x, device=settings.device),
        )
    cross, diagonal = test_kernels
    probabilities = likelihood.class_probabilities(ep, cross, diagonal, seed=settings.seed)
    losses = gibbs_losses(probabilities, test_labels.cpu().numpy()[chosen])
    k = len(chosen)
    spread = float(np.std(losses, ddof=1)) if k > 1 else 0.0
    standard_error = spread / math.sqrt(k) * math.sqrt(max(0.0, (n - k) / max(n - 1, 1)))
    agreement = bayes_agreement(predict_labels(model, x).cpu().numpy(), probabilities)
    return {
        "q_star_test_error_ep": float(losses.mean()),
        "q_star_test_error_ep_se": standard_error,
        "q_star_test_points": k,
        **agreement,
    }


def _classes(outputs: int) -> int:
    """Classes of Q*'s labelling: one logit is binary; C logits are C classes (two logits: binary again)."""
    return 2 if outputs == 1 else outputs


def class_indices(labels, classes: int) -> torch.Tensor:
    """``labels`` as int64 class indices 0..classes-1 (with 2 classes, -1/+1 signs are mapped -1 -> 0)."""
    labels = torch.as_tensor(labels)
    if classes == 2:
        labels = torch.where(labels == -1, 0, labels)
    return torch.as_tensor(validate_class_labels(labels, classes))


def kernel_summary(kernel) -> str:
    """One line naming the prior's kernel for the report: the analytic layer chain, or the Monte Carlo
    estimate with its sample count, rank and the standard error of its entries."""
    described = kernel.describe()
    if described.get("kind") != "monte-carlo":
        chain = " > ".join(described.get("layers") or [str(described.get("kind"))])
        outputs = described.get("outputs", 1)
        return f"analytic NNGP {chain} ({outputs} logit{'s' if outputs != 1 else ''})"
    measured = kernel.diagnostics
    rank = measured.get("rank")
    largest, mean = measured.get("standard_error_max_relative"), measured.get("standard_error_mean_relative")
    return (
        f"Monte Carlo NNGP of {described.get('module')} ({measured.get('estimator')} estimator, "
        f"{described.get('samples')} initialisations"
        + ("" if rank is None else f", rank {rank}")
        + ("" if largest is None else f", entry standard error max {largest:.1e}, mean {mean:.1e} of the mean diagonal")
        + ")"
    )


def _evidence_budgets(m: int, classes: int, settings: MarginalSettings) -> None:
    """Say the expected time and memory of EP and the certified sandwich; refuse what cannot fit."""
    device = str(resolve_device(settings.device))
    budgets = marginal_evidence_budgets(m, classes, settings)
    for budget in budgets:
        announce(budget.line(), quiet=settings.quiet)
        budget.check_fits(device, "use fewer training points (--m) or a device with more memory (--device)")


def marginal_estimate(
    model: torch.nn.Module,
    train_x: torch.Tensor,
    train_labels: torch.Tensor,
    *,
    classes: int,
    delta: float,
    settings: MarginalSettings = MarginalSettings(),
) -> tuple:
    """(EP ln P(S), the bound at it): the ``marginal-ep`` number of :func:`marginal_bounds` for a first
    attempt, without the certified sandwich or the test-set work (for tracking during training)."""
    kernel = build_kernel(model, tuple(train_x.shape[1:]), settings, m=int(train_x.shape[0]))
    K = kernel.matrix(train_x, device=settings.device, quiet=settings.quiet)
    jitter, grid_size = choose_jitter(K, settings)
    train_labels = class_indices(train_labels, classes)
    ep = label_model(classes).ep(K, train_labels, jitter=jitter, device=settings.device, quiet=settings.quiet)
    delta_pb = marginal_ledger(delta, Attempt(), grid_size)[PAC_BAYES_SHARE]
    return ep.log_evidence, marginal_likelihood_bound(
        ep.log_evidence, int(train_x.shape[0]), delta_pb, settings.variant
    )


def marginal_bounds(
    model: torch.nn.Module,
    train_x: torch.Tensor,
    train_labels: torch.Tensor,
    test_x: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    classes: int,
    delta: float,
    settings: MarginalSettings = MarginalSettings(),
    sample: dict | None = None,
    cache_dir=None,
):
    """The EP estimate and the certified marginal-likelihood bound, plus Q*'s estimated test error.

    ``train_labels``/``test_labels`` are class indices in 0..classes-1 (binary: 0/1; -1/+1 signs are
    accepted too when classes = 2). ``classes`` = 2 is the one-logit orthant P(S) = Pr[y_i f(x_i) > 0];
    ``classes`` = C >= 3 is the multi-class P(S) = Pr[f_{y_i}(x_i) > f_c(x_i) for all i, c != y_i] of C
    independent GPs sharing the one-logit kernel (docs/bounds.md). Langford's realisable bound holds for
    the multi-class 0-1 loss unchanged. ``delta`` is this family's share of the report's failure
    probability. ``sample``: what S was drawn from, for the attempts ledger's key
    (:func:`pacbayes.attempts.sample_record`; None: S itself). ``cache_dir``: a folder where the kernel and EP
    are kept, keyed by their exact inputs (:mod:`pacbayes.families.marginal_cache`): a rerun reads them and
    certifies the same numbers; None: no cache. Returns (list of BoundResult, dict of diagnostics).
    """
    m = int(train_x.shape[0])
    if m < 2:
        raise InputError(f"the marginal-likelihood bound needs at least 2 training points, got {m}")
    likelihood = label_model(classes)
    train_labels = class_indices(train_labels, classes)
    test_labels = class_indices(test_labels, classes)
    _evidence_budgets(m, classes, settings)  # before the kernel: what will not fit is refused before any work
    started = time.perf_counter()
    held_out = baseline_inputs(test_x, settings)
    kernel = build_kernel(model, tuple(train_x.shape[1:]), settings, m=m, pilot_inputs=held_out)
    chosen_seconds, cache = time.perf_counter() - started, phase_cache(cache_dir)
    computed = kernel_pass(cache, kernel, model, train_x, held_out, settings)  # and a Monte Carlo kernel's Q* tests
    K, test_kernels = computed.K, computed.test_kernels
    kernel_seconds = chosen_seconds + computed.seconds  # a resumed run reports the seconds K took when computed
    summary, kernel_estimate = kernel_summary(computed), dict(computed.diagnostics)  # of K, before the test kernels

    jitter, grid_size = choose_jitter(K, settings)
    attempt = count_attempt(  # every input is validated; the sampling below depends on nothing else
        settings.attempts_ledger,
        "marginal",
        sample=sample,
        data=(train_x, train_labels),
        statement=prior_statement(kernel, settings),
        model=model,
        seed=settings.seed,
    )
    ep = ep_pass(cache, likelihood, K, train_labels, jitter, settings)
    deltas = marginal_ledger(delta, attempt, grid_size)
    delta_pb = deltas[PAC_BAYES_SHARE]
    certified = likelihood.certified(
        K,
        train_labels,
        delta_prime=deltas[MARKOV_SHARE],
        seed=settings.seed,
        jitter=jitter,
        device=settings.device,
        quiet=settings.quiet,
        ep=ep,
        upper=not settings.no_upper,
        method=settings.certified_method,
        sample_tolerance=settings.sample_tolerance or None,
    )
    del K
    baseline = q_star_baseline(
        model, kernel, ep, likelihood, train_x, (test_x, test_labels), settings, test_kernels=test_kernels
    )

    prior = dict(computed.describe(), jitter=jitter, classes=classes, summary=summary, estimate=kernel_estimate)
    prior["selection"] = kernel.selection
    if grid_size > 1:
        prior["jitter_grid"] = list(settings.jitter_grid)
    labelling = (
        "one logit: P(S) = Pr[y_i f(x_i) > 0]"
        if classes == 2
        else f"{classes} logits, independent GPs sharing the one-logit kernel: P(S) = Pr[f_y(x) > f_c(x) on S]"
    )
    assumptions = (
        "S is an iid sample from the data distribution",
        f"the prior is the NNGP K + eps I of the architecture, K = {summary} (eps = {jitter:g}; "
        f"{kernel.selection}), "
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
        )
        + f"; {labelling}",
        "realisable: the trained model has zero training error",
        *attempt.assumptions(),
        "the number is for Q*; it applies to the trained network only if SGD samples functions "
        "like the Bayesian posterior (Mingard et al. 2021) and the network is close to its NNGP limit",
    )
    diagnostics = {
        "kernel": prior,
        "kernel_seconds": kernel_seconds,
        "classes": classes,
        "ep": ep.to_dict(),
        "certified": certified.to_dict(),
        **baseline,
        "attempt": attempt.number,
    }
    shared: dict[str, Any] = {
        "certifies": CERTIFIES,
        "assumptions": assumptions,
        "family": "marginal",
        "classifier": CLASSIFIER,
    }
    results = [
        BoundResult(
            name="marginal-ep",
            value=marginal_likelihood_bound(ep.log_evidence, m, delta_pb, settings.variant),
            certified=False,
            delta={PAC_BAYES_SHARE: delta_pb},
            log_evidence=ep.log_evidence,
            details={
                "estimator": "expectation propagation (Heaviside likelihood)",
                "variant": settings.variant,
                "sweeps": ep.sweeps,
                "classes": classes,
                "why_vacuous": why_vacuous(ep.log_evidence, m, delta_pb, settings.variant, classes),
            },
            **shared,
        ),
        BoundResult(
            name="marginal-certified",
            value=marginal_likelihood_bound(certified.lower, m, delta_pb, settings.variant),
            certified=True,
            delta=deltas,
            log_evidence=certified.lower,
            details={
                "estimator": f"importance sampling ({certified.proposal} proposal) + Markov",
                "variant": settings.variant,
                "classes": classes,
                "why_vacuous": why_vacuous(certified.lower, m, delta_pb, settings.variant, classes),
                "log_estimate": certified.log_estimate,  # ln Z_hat; log_evidence is it minus ln(1/delta_markov)
                "log_evidence_upper": certified.upper,  # psi*, None if not certified
                "log_evidence_upper_note": certified.upper_reason,
                "best_possible_bound": None
                if certified.upper is None
                else marginal_likelihood_bound(min(certified.upper, 0.0), m, delta_pb, settings.variant),
            },
            **shared,
        ),
    ]
    return results, diagnostics


def why_vacuous(log_evidence: float, m: int, delta: float, variant: str, classes: int) -> str:
    """Why the bound at ``log_evidence`` = ln P(S) is no better than chance 1 - 1/classes ('' when it is).

    The bound 1 - exp(-c) reaches chance where its complexity c reaches ln(classes), the per-point
    log-loss of a uniform guess; c is -ln P(S) per point plus a confidence term, and the line says which
    of the two is to blame and what would help."""
    chance, value = 1.0 - 1.0 / classes, marginal_likelihood_bound(log_evidence, m, delta, variant)
    if value < chance:
        return ""
    confidence = marginal_likelihood_complexity(0.0, m, delta, variant)
    evidence = marginal_likelihood_complexity(log_evidence, m, delta, variant) - confidence
    guess = f"ln {classes} = {math.log(classes):.3f} nats per point, a uniform guess's"
    if confidence >= math.log(classes):
        return (
            f"bound {value:.3f} >= chance {chance:.3f}: the confidence term alone costs {confidence:.3f} nats per "
            f"point, above {guess}, at m = {m:,}: more training points would help"
        )
    blame = (
        f"the prior gives the labels of S less probability than {'coin flips' if classes == 2 else 'uniform guesses'}"
        " would"
        if evidence >= math.log(classes)
        else f"together with the confidence term ({confidence:.3f}) that is too much at m = {m:,}"
    )
    return (
        f"bound {value:.3f} >= chance {chance:.3f}: -ln P(S) costs {evidence:.3f} nats per point against {guess}; "
        f"{blame}; more training points, or an architecture (prior) under which these labels are more probable, "
        "would help (random labels stay vacuous)"
    )


def _for_run(settings: MarginalSettings, context: RunContext) -> MarginalSettings:
    """The settings with the run's seed, progress and (when given) device."""
    return replace(
        settings,
        seed=context.seed,
        quiet=context.quiet,
        device=settings.device if context.device is None else context.device,
    )


class MarginalFamily(FamilyBase):
    """Certifies the Gibbs error of Q* (see the module docstring); needs a realisable fit.

    One logit is the binary bound; C logits the multi-class bound of C independent GPs sharing the
    one-logit kernel (:func:`marginal_bounds`)."""

    name = "marginal"
    settings_type: type = MarginalSettings
    classifier = CLASSIFIER

    def check(self, context: RunContext) -> None:
        """The bound is for the realisable case."""
        if context.train_error > 0.0:
            raise InputError(
                f"training error is {context.train_error:.4f} > 0 but the marginal-likelihood bound "
                "is for the realisable case: train to zero training error (dropping misfit points "
                "would make S non-iid, so there is no such option)"
            )

    def estimate(self, model, train, test, *, settings: MarginalSettings, context: RunContext) -> list:
        """The expected time and memory of :meth:`run`'s phases (:mod:`pacbayes.families.estimates`)."""
        from pacbayes.families.estimates import marginal_estimates

        return marginal_estimates(
            model, train, test, _for_run(settings, context), _classes(context.outputs), cache_dir=context.cache_dir
        )

    def run(
        self, model, train, test, *, delta: float, settings: MarginalSettings, context: RunContext
    ) -> FamilyOutcome:
        self.check(context)
        classes, settings = _classes(context.outputs), _for_run(settings, context)
        with threads_for(orthant_dimension(len(train), classes), settings.device):
            results, diagnostics = marginal_bounds(
                model,
                train.x,
                train.labels,
                test.x,
                test.labels,
                classes=classes,
                delta=delta,
                settings=settings,
                sample=context.sample,
                cache_dir=context.cache_dir,
            )
        return FamilyOutcome(
            bounds=stamped(results, self),
            diagnostics=diagnostics,
            baselines=(
                Baseline(
                    "q_star_test_error_ep",
                    diagnostics["q_star_test_error_ep"],
                    f"Q* est. test error (EP; n={diagnostics['q_star_test_points']}, "
                    f"se {diagnostics['q_star_test_error_ep_se']:.4f})",
                ),
                Baseline("bayes_agreement", diagnostics["bayes_agreement"], "MODEL agrees with Q*'s vote (diagnostic)"),
                Baseline(
                    "gibbs_agreement", diagnostics["gibbs_agreement"], "Q*'s draws agree with its vote (diagnostic)"
                ),
            ),
        )

    def track(
        self, model, train, *, delta: float, settings: MarginalSettings, context: RunContext, cache: dict
    ) -> Tracked:
        """The bound at the EP estimate of ln P(S) (kernel and EP once, cached: they do not depend on the
        weights); it applies to the network only once it fits S. ``delta`` is what :meth:`run` would get."""
        if "value" not in cache:
            classes, settings = _classes(context.outputs), _for_run(settings, context)
            with threads_for(orthant_dimension(len(train), classes), settings.device):
                cache["log_evidence"], cache["value"] = marginal_estimate(
                    model, train.x, train.labels, classes=classes, delta=delta, settings=settings
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
