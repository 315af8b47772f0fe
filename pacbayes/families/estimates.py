"""Each family's long phases, estimated before any of them runs (:class:`pacbayes.estimates.PhaseEstimate`).

Every figure is a timed probe of the real code on this machine, scaled to the run's sizes: a few
steps of a training loop (seconds per step times the steps to run), a small kernel matrix on the
first training inputs (seconds per entry times the entries), a few posterior draws on the first batch
of the phase's points (seconds per draw, scaled to its points), EP's and the certified sandwich's
budgets (:mod:`pacbayes.evidence.budget`).
Probes run in the thread setting the phase will run in (:func:`pacbayes.device.threads_for`,
:func:`pacbayes.device.threads_for_network`); short ones take the median of five.
Training loops that stop at convergence (``patience``) are estimated at their most epochs.
"""

import copy
import math
from collections.abc import Callable
from dataclasses import replace
from functools import partial

import torch

from pacbayes import checks
from pacbayes.device import resolve_device, threads_for, threads_for_network
from pacbayes.estimates import PhaseEstimate, best_time, seconds_per_step
from pacbayes.evidence.budget import evidence_budgets, orthant_dimension, seconds_per_cube
from pacbayes.evidence.certified import DEFAULT_SAMPLES
from pacbayes.kernels import MonteCarloNNGP
from pacbayes.kernels.monte_carlo import SPECTRUM_MULTIPLY_ADDS, lower_gram_entries

KERNEL_PROBE_SECONDS = 0.05  # the kernel probe doubles its inputs until its larger matrix takes this long
KERNEL_PROBE_MAX = 256  # ... or reaches this many inputs
KERNEL_PROBE_MIN = 16  # the smaller probe matrix has at least this many inputs (fewer: noise dominates)
MONTE_CARLO_PROBE_MIN = 32  # ... and a Monte Carlo kernel's smaller probe batch of inputs
PROBE_STEPS = 3  # timed steps of a training loop (after one untimed step that warms it up)
PROBE_DRAWS = 8  # timed per-point passes of the Monte Carlo error (a call computes its first layer's moments once)
CACHE_READ_BYTES_PER_SECOND = 4e8  # a cache entry read and its checksum hashed (0.26 s a hash of 200 MB measured)

KERNEL_CHEAPER = "a smaller --m, fewer --kernel-samples, or --kernel-type monte-carlo for a costly analytic kernel"
EVIDENCE_CHEAPER = "a smaller --m"
DR_CHEAPER = "fewer --posterior-epochs / --prior-epochs, fewer --mc-samples, or a smaller --m"
SUBSPACE_CHEAPER = (
    "a smaller --subspace-dim, fewer --subspace-epochs / --subspace-qat-epochs, fewer --subspace-levels, "
    "or a smaller --m"
)


def _two_size_probe(seconds_at, start: int, limit: int, units) -> tuple:
    """(fixed seconds of a call, seconds per unit of work) from calls on s and 2s inputs (best of three each),
    s doubling from ``start`` until the larger takes KERNEL_PROBE_SECONDS or reaches ``limit`` inputs; the
    difference over the extra units(2s) - units(s) is the cost of a unit, so that what a call costs besides
    its units (preprocessing, tiling, drawing weights) is not scaled with the run's size. Probes of a few
    milliseconds are too noisy to difference, hence the doubling."""
    size = min(start, max(limit // 2, 1))
    while True:
        double = min(2 * size, limit)
        few = best_time(partial(seconds_at, size), 3)
        many = best_time(partial(seconds_at, double), 3)
        if many >= KERNEL_PROBE_SECONDS or double >= limit:
            per_unit = max(many - few, 0.1 * many) / max(units(double) - units(size), 1)
            return max(few - per_unit * units(size), 0.0), per_unit
        size = double


def _kernel_probe(kernel, x: torch.Tensor, device) -> tuple:
    """(fixed seconds of a matrix call, seconds per entry) of an analytic kernel: matrices on the first s
    and 2s inputs (:func:`_two_size_probe`; 3 s^2 extra entries), s from KERNEL_PROBE_MIN."""
    return _two_size_probe(
        lambda n: kernel.matrix(x[:n], device=device),
        KERNEL_PROBE_MIN,
        min(len(x), KERNEL_PROBE_MAX),
        lambda n: n**2,
    )


def _monte_carlo_forward(kernel, x: torch.Tensor, inputs: int, device) -> float:
    """Seconds of a Monte Carlo kernel's draws and forward passes on ``inputs`` inputs: a copy with one batch
    of initialisations timed on the first s and 2s inputs (:func:`_two_size_probe`); the cost per input times
    ``inputs`` plus the cost of drawing a batch, both times the batches of the kernel's samples."""
    probe = copy.deepcopy(kernel)
    probe.samples = min(kernel.samples, kernel.batch_size)
    fixed, per_input = _two_size_probe(
        lambda n: probe.matrix(x[:n], device=device),
        MONTE_CARLO_PROBE_MIN,
        min(len(x), KERNEL_PROBE_MAX),
        lambda n: n,
    )
    return kernel.samples / probe.samples * (fixed + per_input * inputs)


def kernel_estimate(
    kernel, x: torch.Tensor, n2=None, *, device=None, phase="NNGP kernel", test_points: int = 0
) -> PhaseEstimate:
    """The kernel on ``x`` (n2 None: K(x, x); else the n x n2 cross kernel); with ``test_points``, a Monte Carlo
    kernel's one pass that also gives K(x, tests) and the test diagonal (``train_and_test``, as certify runs it).

    Analytic kernels: probe matrices on the first inputs give a call's fixed cost and the cost per
    entry, times n x n2 (tiles are computed whole, so a symmetric matrix costs its n^2 entries). Monte
    Carlo kernels: a timed batch of initialisations (:func:`_monte_carlo_forward`; the sample count
    is fixed for n inputs first, as the run will) on every input of the pass, plus the products of the
    features (2 S r flops per entry: K's lower block triangle in float64, a cross kernel after float32
    forwards in float32 at half the time) and, for K(x, x), its eigenvalues."""
    n1 = len(x)
    if isinstance(kernel, MonteCarloNNGP):
        shape = tuple(x.shape[1:])
        _, peak = kernel.estimate(n1, n2, shape, device=device, test_points=test_points)  # fixes S for n1
        forward = _monte_carlo_forward(kernel, x, n1 + (0 if n2 is None else int(n2)) + test_points, device)
        flop = 3.0 * seconds_per_cube(str(resolve_device(device)))  # seconds per float64 flop
        per_entry = 2.0 * int(kernel.samples or 0) * (kernel.width or 1) * flop
        cross_entries = n1 * ((0 if n2 is None else int(n2)) + test_points)
        cross_cost = 0.5 if kernel.dtype == torch.float32 else 1.0
        products = per_entry * (lower_gram_entries(n1) * (n2 is None) + cross_cost * cross_entries)
        eigen = SPECTRUM_MULTIPLY_ADDS * 2.0 * flop * n1**3 if n2 is None else 0.0  # the rank diagnostic
        seconds = forward + products + eigen
    else:
        columns = n1 if n2 is None else int(n2)
        fixed, per_entry = _kernel_probe(kernel, x, device)
        seconds = fixed + per_entry * n1 * columns
        peak = 8 * n1 * columns * 2
    return PhaseEstimate(phase, seconds, int(peak), KERNEL_CHEAPER)


def marginal_evidence_budgets(m: int, classes: int, settings) -> tuple:
    """(EP, certified sandwich) :class:`pacbayes.evidence.budget.Budget` for m points and ``classes`` classes as
    the marginal ``settings`` run them (device, psi* or not, multi-class sampler, draw count)."""
    return evidence_budgets(
        m,
        classes,
        DEFAULT_SAMPLES,
        str(resolve_device(settings.device)),
        upper=not settings.no_upper,
        method=settings.certified_method,
        sample_tolerance=settings.sample_tolerance or None,
    )


def evidence_estimates(m: int, classes: int, settings) -> list:
    """EP and the certified sandwich for m points and ``classes`` classes under the marginal ``settings``
    (:mod:`pacbayes.evidence.budget`)."""
    ep, certified = marginal_evidence_budgets(m, classes, settings)
    return [
        PhaseEstimate(budget.what, budget.seconds, budget.peak_bytes, EVIDENCE_CHEAPER) for budget in (ep, certified)
    ]


def marginal_estimates(model, train, test, settings, classes: int, cache_dir=None) -> list:
    """The marginal family's phases: K, EP, the certified sandwich and the Q* baseline's cross kernel (for a Monte
    Carlo kernel, part of K's pass: one phase, as the run computes them). A kernel pass that ``cache_dir`` holds
    (:func:`pacbayes.families.marginal_cache.kernel_entry_exists`) is estimated as
    reading its entry, together with a Monte Carlo kernel's cross kernel (the same pass)."""
    from pacbayes.families.marginal import baseline_inputs, build_kernel
    from pacbayes.families.marginal_cache import kernel_entry_exists

    m = len(train)
    with threads_for(orthant_dimension(m, classes), settings.device):
        held_out = baseline_inputs(test.x, settings)  # as the run pilots
        kernel = build_kernel(model, tuple(train.x.shape[1:]), settings, m=m, pilot_inputs=held_out)
        name, points = f"{kernel.kind} NNGP kernel", len(held_out)
        monte_carlo = isinstance(kernel, MonteCarloNNGP)
        cached = kernel_entry_exists(cache_dir, kernel, model, train.x, held_out, settings)
        if cached:
            stored = 8 * m * (m + (points + 1 if monte_carlo else 0))  # float64 K and a Monte Carlo pass's tests
            phases = [PhaseEstimate(f"{name}, read from --cache-dir", stored / CACHE_READ_BYTES_PER_SECOND, stored)]
        elif monte_carlo:  # one pass gives K and the Q* baseline's test kernels
            phase = f"{name} (with the Q* baseline's test kernels)"
            phases = [kernel_estimate(kernel, train.x, device=settings.device, phase=phase, test_points=points)]
        else:
            phases = [kernel_estimate(kernel, train.x, device=settings.device, phase=name)]
        phases += evidence_estimates(m, classes, settings)
        if not monte_carlo:
            phases.append(
                kernel_estimate(kernel, train.x, points, device=settings.device, phase="Q* baseline cross kernel")
            )
    return phases


def _batches(tensor: torch.Tensor, count: int, batch: int) -> torch.Tensor:
    """``count`` full minibatches of ``batch`` rows from ``tensor`` (its rows repeated when it has fewer)."""
    return tensor[torch.arange(count * batch, device=tensor.device) % len(tensor)]


def _generator(device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(0)


def dziugaite_roy_estimates(model, train, test, settings, context) -> list:
    """Prior-mean training, posterior training, the sample-convergence draws and the test-error draws of
    the Dziugaite-Roy family, from a few timed steps of each of its loops on the first training points
    (with the thread count the family runs with)."""
    with threads_for_network(model, context.device):
        return _dziugaite_roy_phases(model, train, test, settings, context)


def _seconds_per_draw(sampler, net, posterior, x, labels, batch: int, draws: int, device) -> float:
    """Seconds of one posterior draw scored on all of (x, labels) by ``sampler``: from ``draws`` up (doubled as
    a loop's steps), timed on the sampler's first batch (``batch`` points) and scaled by the points, which the
    passes are linear in batch by batch; so that a CNN's probe, whose draws on tens of thousands of points take
    seconds each, costs a few percent of its phase."""
    points = min(len(labels), batch)
    per_draw = seconds_per_step(
        lambda k: sampler(net, posterior, x[:points], labels[:points], k, generator=_generator(device)), draws
    )
    return per_draw * len(labels) / max(points, 1)


def _dziugaite_roy_phases(model, train, test, settings, context) -> list:
    from pacbayes.stochastic.bound import posterior_schedule, prior_schedule_of
    from pacbayes.stochastic.certificate import (
        NETWORK_BATCH_SIZE,
        point_batch_size,
        point_sampled_error,
        sampled_error,
    )
    from pacbayes.stochastic.gaussian import Layout
    from pacbayes.stochastic.local import point_layers, resolve_mc_sampling
    from pacbayes.stochastic.prior import parameters_of
    from pacbayes.stochastic.train import PriorVariance, fit_posterior, fit_prior_mean, surrogate_risk

    device = resolve_device(context.device)
    net = copy.deepcopy(model).to(device).eval()
    for parameter in net.parameters():
        parameter.requires_grad_(False)
    x, labels = train.x.to(device), train.labels.to(device)
    layout = Layout.of(parameters_of(net))
    start = layout.flatten(parameters_of(net))
    m = len(labels)
    m_prior = checks.prior_part_size(m, settings.prior_split) if settings.prior_split else 0
    m_bound = m - m_prior
    posterior_probe = replace(posterior_schedule(settings), epochs=1)
    posterior_batch = posterior_probe.batch_size
    from_prior = settings.posterior_start == "prior" and not settings.fixed_mean  # trained on all of S
    posterior_steps = settings.posterior_epochs * math.ceil((m if from_prior else m_bound) / posterior_batch)
    phases = []
    if m_prior:
        prior_schedule = prior_schedule_of(settings)
        batch = min(prior_schedule.batch_size, m_prior)  # the loop's batches are never larger than S_prior
        prior_step = seconds_per_step(
            lambda k: fit_prior_mean(
                net,
                layout,
                start,
                _batches(x, k, batch),
                _batches(labels, k, batch),
                schedule=replace(prior_schedule, epochs=1, batch_size=batch),
                generator=_generator(device),
                dropout=settings.prior_dropout,
            ),
            PROBE_STEPS,
        )
        steps = settings.prior_epochs * math.ceil(m_prior / batch)
        phases.append(PhaseEstimate("Dziugaite-Roy prior-mean training", prior_step * steps, 0, DR_CHEAPER))
    fitted = {}

    def posterior_steps_of(k):
        fitted["posterior"] = fit_posterior(
            net,
            layout,
            start,
            start,
            _batches(x, k, posterior_batch),
            _batches(labels, k, posterior_batch),
            objective=settings.objective,
            delta=0.025,
            m=m_bound,
            prior_variance=PriorVariance(settings.prior_std**2, on_grid=bool(settings.lambda_grid)),
            start_variance=settings.prior_std**2,
            fixed_mean=settings.fixed_mean,
            schedule=posterior_probe,
            generator=_generator(device),
            risk_of=surrogate_risk(settings.surrogate, settings.objective, settings.sigmoid_temperature),
            per_point=bool(settings.per_point_training),
        )[0]

    posterior_step = seconds_per_step(posterior_steps_of, PROBE_STEPS)
    phases.append(PhaseEstimate("Dziugaite-Roy posterior training", posterior_step * posterior_steps, 0, DR_CHEAPER))
    sampler: Callable[..., float]
    if resolve_mc_sampling(settings.mc_sampling, model) == "point":
        sampler, batch, draws = point_sampled_error, point_batch_size(point_layers(net), x), PROBE_DRAWS
    else:
        sampler, batch, draws = sampled_error, NETWORK_BATCH_SIZE, 1  # each draw is a whole network's
    posterior = fitted["posterior"]
    per_draw = _seconds_per_draw(sampler, net, posterior, x[:m_bound], labels[:m_bound], batch, draws, device)
    test_x, test_labels = test.x.to(device), test.labels.to(device)
    per_test_draw = _seconds_per_draw(sampled_error, net, posterior, test_x, test_labels, NETWORK_BATCH_SIZE, 1, device)
    phases.append(PhaseEstimate("Dziugaite-Roy sample convergence", per_draw * settings.mc_samples, 0, DR_CHEAPER))
    phases.append(PhaseEstimate("stochastic test error", per_test_draw * settings.test_draws, 0, DR_CHEAPER))
    return phases


def subspace_estimates(model, train, settings, context) -> list:
    """The subspace family's phases: the projection, z's training (at most ``epochs``), the learned
    origin, and per level count the quantisation-aware fine-tuning and the arithmetic coding (with the
    thread count the family runs with)."""
    with threads_for_network(model, context.device):
        return _subspace_phases(model, train, settings, context)


def _subspace_phases(model, train, settings, context) -> list:
    from pacbayes.subspace.model import SubspaceModel
    from pacbayes.subspace.training import compress_subspace_model, fit_subspace, level_grid

    if settings.compressed is not None or settings.dim is None:
        return []  # a compressed model is only evaluated; no dimension: the family refuses the run
    levels = level_grid(settings.levels, settings.dim)
    device = resolve_device(context.device)
    built = {}

    def build():
        built["model"] = SubspaceModel(model, dim=settings.dim, seed=context.seed).to(device)

    projection = best_time(build, repeats=1)
    x, labels, batch = train.x.to(device), train.labels.to(device), 128
    subspace_model = built["model"]
    step = seconds_per_step(
        lambda k: fit_subspace(
            subspace_model,
            _batches(x, k, batch),
            _batches(labels, k, batch),
            epochs=1,
            batch_size=batch,
            patience=None,
            quiet=True,
        ),
        PROBE_STEPS,
    )
    m_prior = checks.prior_part_size(len(train), settings.prior_split) if settings.prior_split else 0
    batches = math.ceil((len(train) - m_prior) / batch)

    def code_one_level():
        compress_subspace_model(subspace_model, x[:batch], labels[:batch], levels=levels[:1], qat_epochs=0, quiet=True)

    code_one_level()  # untimed: the first call loads what coding needs
    coding = best_time(code_one_level)  # per level count: its quantisation, coding and evaluation
    phases = [
        PhaseEstimate("subspace projection", projection, 0, SUBSPACE_CHEAPER),
        PhaseEstimate("subspace training (at most)", step * settings.epochs * batches, 0, SUBSPACE_CHEAPER),
    ]
    if m_prior:
        origin_steps = settings.prior_epochs * math.ceil(m_prior / 64)
        phases.append(PhaseEstimate("subspace learned origin", step * origin_steps, 0, SUBSPACE_CHEAPER))
    phases.append(
        PhaseEstimate(
            "subspace quantisation and coding",
            len(levels) * (coding + step * settings.qat_epochs * batches),
            0,
            SUBSPACE_CHEAPER,
        )
    )
    return phases


__all__ = [
    "dziugaite_roy_estimates",
    "evidence_estimates",
    "kernel_estimate",
    "marginal_estimates",
    "subspace_estimates",
]
