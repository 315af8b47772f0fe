"""Each long phase's announced estimate beside its measured time, at realistic sizes.

For the demo MLP (784-512-512, mnist-embedded) the marginal family's kernel, EP, certified sandwich and
Q* cross kernel at binary m = 2,000 and ten-class m = 500, the Dziugaite-Roy phases (--objective quad
--prior-split 0.5) and the subspace phases (--subspace-dim 500) at m = 1,000, and a CNN's analytic
kernel at n = 200; and the Dziugaite-Roy phases of PBB's MNIST CNN (ten classes, per-point draws)
at m = 5,000, with 2 prior and 2 posterior epochs, and the seconds its estimates took. Each phase is
estimated (pacbayes.families.estimates) and then run on its own, the estimate taken just before the
measurement. Prints phase, estimate, measurement and their ratio.

    python benchmarks/bench_estimates.py                          # all sections (many minutes)
    python benchmarks/bench_estimates.py --sections dziugaite-roy # one section
    python benchmarks/bench_estimates.py --quick                  # small sizes (seconds)
"""

import argparse
import functools
import sys
import time
from dataclasses import replace

import torch

from pacbayes.data import Dataset, binarise, load_dataset, take
from pacbayes.demo import demo_network
from pacbayes.device import threads_for
from pacbayes.estimates import duration
from pacbayes.evidence.budget import orthant_dimension
from pacbayes.evidence.label_model import label_model
from pacbayes.families import RunContext
from pacbayes.families.dziugaite_roy import FAMILY as DR_FAMILY
from pacbayes.families.estimates import dziugaite_roy_estimates, kernel_estimate, marginal_estimates, subspace_estimates
from pacbayes.families.marginal import baseline_inputs, build_kernel
from pacbayes.families.settings import DziugaiteRoySettings, MarginalSettings, SubspaceSettings
from pacbayes.families.subspace import FAMILY as SUBSPACE_FAMILY
from pacbayes.stochastic import bound as stochastic_bound
from pacbayes.subspace import training as subspace_training

JITTER = 1e-6


def _timed(work) -> tuple:
    started = time.perf_counter()
    value = work()
    return value, time.perf_counter() - started


def measure_marginal(model, train: Dataset, test: Dataset, settings: MarginalSettings, classes: int) -> list:
    """Seconds of each marginal phase run as the family runs it, in the order of its estimates: the kernel,
    EP, the certified sandwich and the Q* baseline's cross kernel."""
    likelihood = label_model(classes)
    with threads_for(orthant_dimension(len(train), classes), settings.device):
        kernel = build_kernel(model, tuple(train.x.shape[1:]), settings)
        K, kernel_seconds = _timed(lambda: kernel.matrix(train.x, device=settings.device))
        ep, ep_seconds = _timed(lambda: likelihood.ep(K, train.labels, jitter=JITTER, device=settings.device))
        _, certified_seconds = _timed(
            lambda: likelihood.certified(K, train.labels, delta_prime=0.01, seed=0, jitter=JITTER, ep=ep)
        )
        points = baseline_inputs(test.x, settings)
        _, cross_seconds = _timed(lambda: kernel.matrix(train.x, points, device=settings.device))
    return [kernel_seconds, ep_seconds, certified_seconds, cross_seconds]


DR_CALLS = {  # function of pacbayes.stochastic.bound -> the phases of its successive calls
    "fit_prior_mean": ["Dziugaite-Roy prior-mean training"],
    "fit_posterior": ["Dziugaite-Roy posterior training"],
    # the bound's draws are per point (--mc-sampling point, the default's choice for the demo MLP) or per network;
    # the test error's are per network, after the bound's
    "point_sampled_error": ["Dziugaite-Roy sample convergence"],
    "sampled_error": ["Dziugaite-Roy sample convergence", "stochastic test error"],
}
SUBSPACE_CALLS = {  # function of pacbayes.subspace.training -> the phases of its successive calls
    "SubspaceModel": ["subspace projection"],
    "fit_subspace": ["subspace training (at most)"],
    "learn_origin": ["subspace learned origin"],
    "compress_subspace_model": ["subspace quantisation and coding"],
}


def measure_family(family, module, calls: dict, model, train: Dataset, test: Dataset, settings) -> dict:
    """Phase name -> measured seconds of ``family``'s run, each phase the time of a call of one of
    ``module``'s functions (``calls``: its name -> the phases of its successive calls), plus 'total'."""
    seconds, originals = {}, {name: getattr(module, name) for name in calls}

    def timed(name):
        def call(*args, **kwargs):
            phases = calls[name]
            phase = phases[min(sum(p in seconds for p in phases), len(phases) - 1)]
            value, spent = _timed(lambda: originals[name](*args, **kwargs))
            seconds[phase] = seconds.get(phase, 0.0) + spent
            return value

        return call

    for name in calls:
        setattr(module, name, timed(name))
    try:
        context = _context(model, train, 0)
        _, seconds["total"] = _timed(
            lambda: family.run(model, train, test, delta=0.025, settings=settings, context=context)
        )
    finally:
        for name, original in originals.items():
            setattr(module, name, original)
    return seconds


def _context(model, train, seed) -> RunContext:
    from pacbayes.models import output_dim

    return RunContext(outputs=output_dim(model, train.x[:1]), train_error=0.0, seed=seed, quiet=True)


def cnn() -> torch.nn.Module:
    """A small CNN on 1 x 28 x 28 inputs: conv-ReLU x2, flatten, linear read-out."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, stride=2),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, stride=2),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 6 * 6, 1),
    )


def row(phase: str, estimate: float, measured) -> None:
    if measured is None:
        print(f"{phase:<62} {duration(estimate):>10} {'-':>10}")
        return
    print(f"{phase:<62} {duration(estimate):>10} {duration(measured):>10} {estimate / max(measured, 1e-9):6.2f}")


def compare(title: str, estimates: list, measured: dict) -> None:
    """Rows of estimate against measurement by phase name, and the family's total when measured."""
    print(f"\n{title}")
    for e in estimates:
        row(e.phase, e.seconds, measured.get(e.phase))
    if "total" in measured:
        row("total (all phases)", sum(e.seconds for e in estimates), measured["total"])


def data(m: int, n_test: int, binary: bool) -> tuple:
    train = take(load_dataset("mnist-embedded", split="train"), m, seed=0)
    test = take(load_dataset("mnist-embedded", split="test"), n_test, seed=0)
    return (binarise(train), binarise(test)) if binary else (train, test)


def trained(model, train: Dataset, epochs: int = 30) -> torch.nn.Module:
    """``model`` after a few seeded Adam epochs (a plausible posterior start; zero error is not needed here)."""
    from pacbayes.demo import train_to_zero_error
    from pacbayes.errors import ConvergenceError

    try:
        train_to_zero_error(model, train, seed=0, max_epochs=epochs, quiet=True)
    except ConvergenceError:
        pass
    return model.eval()


def marginal_section(scale: int) -> None:
    settings = MarginalSettings()
    for m, classes in ((2000 // scale, 2), (500 // scale, 10)):
        train, test = data(m, 1000, classes == 2)
        model = demo_network(outputs=1 if classes == 2 else 10)
        estimates = marginal_estimates(model, train, test, settings, classes)
        measured = dict(
            zip((e.phase for e in estimates), measure_marginal(model, train, test, settings, classes), strict=False)
        )
        compare(f"marginal, demo MLP, m = {m}, {classes} classes", estimates, measured)


def _family_data(scale: int) -> tuple:
    train, test = data(1000 // scale, 500, True)
    model = trained(demo_network(), train)
    return model, train, test, _context(model, train, 0)


def dziugaite_roy_section(scale: int) -> None:
    model, train, test, context = _family_data(scale)
    dr = DziugaiteRoySettings(objective="quad", prior_split=0.5)
    if scale > 1:
        dr = replace(dr, posterior_epochs=2, prior_epochs=2, mc_samples=20)
    estimates = dziugaite_roy_estimates(model, train, test, dr, context)
    measured = measure_family(DR_FAMILY, stochastic_bound, DR_CALLS, model, train, test, dr)
    compare(f"dziugaite-roy --objective quad --prior-split 0.5, demo MLP, m = {len(train)}", estimates, measured)


def dziugaite_roy_cnn_section(scale: int, precision: str = "float32") -> None:
    """PBB's MNIST CNN, ten classes, drawn per point through its convolutions: the sample-convergence probe
    times the first batch of bound points (247 images) and scales it to all of them. ``precision``: that of the
    training phases (``--training-precision``), which their probes time in it."""
    from bench_pbb_mnist import cnn as pbb_cnn

    train, test = data(5000 // scale, 1000 // scale, False)
    train, test = (replace(d, x=d.x.reshape(-1, 1, 28, 28)) for d in (train, test))
    torch.manual_seed(0)
    model = pbb_cnn().eval()
    dr = DziugaiteRoySettings(
        prior_split=0.5,
        prior_epochs=2,
        posterior_epochs=2,
        mc_samples=20,
        test_draws=20,
        training_precision=precision,
    )
    estimates, probing = _timed(lambda: dziugaite_roy_estimates(model, train, test, dr, _context(model, train, 0)))
    measured = measure_family(DR_FAMILY, stochastic_bound, DR_CALLS, model, train, test, dr)
    title = f"dziugaite-roy --prior-split 0.5 --training-precision {precision}, PBB's MNIST CNN (per point)"
    compare(f"{title}, m = {len(train)}", estimates, measured)
    print(f"(the estimates themselves took {duration(probing)})")


def subspace_section(scale: int) -> None:
    model, train, test, context = _family_data(scale)
    sub = SubspaceSettings(dim=500, epochs=300, patience=20)
    if scale > 1:
        sub = replace(sub, dim=50, epochs=3, patience=0, qat_epochs=1)
    estimates = subspace_estimates(model, train, sub, context)
    measured = measure_family(SUBSPACE_FAMILY, subspace_training, SUBSPACE_CALLS, model, train, test, sub)
    compare(f"subspace --subspace-dim {sub.dim}, demo MLP, m = {len(train)}", estimates, measured)


def cnn_section(scale: int) -> None:
    n = 200 // scale
    train, _ = data(n, 10, True)
    images = train.x.reshape(-1, 1, 28, 28)
    kernel = build_kernel(cnn(), (1, 28, 28), MarginalSettings())
    estimate = kernel_estimate(kernel, images, phase=f"CNN {kernel.kind} NNGP kernel")
    _, seconds = _timed(lambda: kernel.matrix(images))
    compare(f"CNN kernel, n = {n}", [estimate], {estimate.phase: seconds})


SECTIONS = {
    "marginal": marginal_section,
    "dziugaite-roy": dziugaite_roy_section,
    "dziugaite-roy-cnn": dziugaite_roy_cnn_section,
    "dziugaite-roy-cnn-bfloat16": functools.partial(dziugaite_roy_cnn_section, precision="bfloat16"),
    "subspace": subspace_section,
    "cnn": cnn_section,
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run in seconds)")
    parser.add_argument("--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    print(f"{'phase':<62} {'estimate':>10} {'measured':>10} {'ratio':>6}")
    for name in args.sections:
        SECTIONS[name](10 if args.quick else 1)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
