"""The marginal family's two long phases, kept in a phase cache (:mod:`pacbayes.cache`) so that a rerun or a
stopped run resumes: the kernel and EP. Without a cache they run as before and nothing is hashed.

- ``marginal-kernel``: K(train, train) and, for a Monte Carlo kernel, the Q* test kernels from the same pass
  (K(train, test) and the test diagonal), with the kernel's ``describe()``, ``diagnostics`` and the seconds the
  pass took (a JSON record), so that a resumed run reports what a fresh one does. Keyed by the kernel's kind
  and settings (an analytic kernel's description, which lists its layers; a Monte Carlo kernel's requested
  sample count, seed, precision, estimator, target error, batch of initialisations, initialisation), sigma_w
  and sigma_b, the model (its repr, every module's class and code, which repr does not show, and every
  parameter and buffer: conservative, an analytic kernel reads no weights), the training inputs, for a Monte
  Carlo kernel the held-out inputs (its pilot and the Q* test inputs), and the device's type.
- ``marginal-ep``: the EP result's sites and plain fields (:mod:`pacbayes.evidence.ep_store`; its m x m parts
  are rebuilt from K and the sites). Keyed by K's bytes, the labels, the classes, the jitter, the EP functions'
  default options, and the device's type.

The device's type is in both keys because it changes the numbers' last bits (another BLAS, another
convolution): a resumed run then gives exactly a fresh run's numbers on that kind of device. With a cache, K
is hashed twice a run (its entry's checksum, EP's key): about 0.26 s each for m = 5,000 (docs/files.md).
"""

import inspect
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from pacbayes.cache import Phase, PhaseCache, PhaseCacheWarning, cached, phase_cache
from pacbayes.device import resolve_device
from pacbayes.evidence.ep import ep_log_evidence
from pacbayes.evidence.ep_store import RECORD, ep_arrays, ep_expected, json_array, json_record, restored_ep
from pacbayes.evidence.multiclass_ep import multiclass_ep_log_evidence
from pacbayes.families.settings import MarginalSettings
from pacbayes.kernels import MonteCarloNNGP

PHASE_VERSION = 1
"""Version of what the cached phases (kernel, EP) compute; raise it on a change."""
_UNKEYED_OPTIONS = (
    "jitter",
    "device",
    "quiet",
    "check_definite",
)  # jitter: keyed on its own; the rest change no number


@dataclass(frozen=True)
class KernelPass:
    """The kernel phase's result: K, the Q* test kernels ((K(train, test), test diagonal) of a Monte Carlo
    kernel, else None), the kernel's ``describe()`` and ``diagnostics`` once K was computed, and the seconds
    that took. Read as a kernel is by :func:`pacbayes.families.marginal.kernel_summary`."""

    K: torch.Tensor
    test_kernels: tuple | None
    described: dict
    diagnostics: dict
    seconds: float

    def describe(self) -> dict:
        """The kernel's ``describe()`` once K was computed."""
        return self.described


def model_record(model: torch.nn.Module) -> dict:
    """What a key reads of ``model`` besides its tensors: its repr, each module's class and each class's code
    (the compiled code of TorchScript and torch.fx modules, else the class's source outside torch; None where
    there is none to read), since repr shows neither what forward does nor a change of it."""
    modules: dict[str, str] = {}
    code: dict[str, str | None] = {}
    for name, module in model.named_modules():
        kind = type(module)
        label = modules[name] = f"{kind.__module__}.{kind.__qualname__}"
        compiled = getattr(module, "code", None)
        if isinstance(compiled, str):
            code[f"{label} {name}"] = compiled
        elif label not in code and not kind.__module__.startswith("torch."):
            try:
                code[label] = inspect.getsource(kind)
            except (OSError, TypeError):
                code[label] = None
    return {"repr": repr(model), "modules": modules, "code": code}


def model_tensors(model: torch.nn.Module) -> dict:
    """Every parameter and buffer of ``model`` by name: inputs of the kernel phase's key."""
    return {
        **{f"parameter:{name}": p for name, p in model.named_parameters()},
        **{f"buffer:{name}": b for name, b in model.named_buffers()},
    }


def _kernel_settings(kernel) -> dict:
    """The kernel's settings that fix its numbers (module docstring)."""
    if not isinstance(kernel, MonteCarloNNGP):
        return {"kind": kernel.kind, "described": kernel.describe()}
    return {
        "kind": kernel.kind,
        "samples": kernel.samples if kernel.sample_rule.get("rule") == "given" else "auto",
        "seed": kernel.seed,
        "precision": str(kernel.dtype),
        "estimator": kernel.requested,
        "target_error": kernel.target_error,
        "batch_size": kernel.batch_size,
        "entry_errors": kernel.entry_errors,
        "init": kernel.describe()["init"],
        "custom_init": kernel.custom_init,
        "projection": kernel.projection,
    }


def _fresh_or_cached(cache: PhaseCache, phase: Phase, compute: Callable, to_arrays: Callable):
    """(``compute()``'s result, None) when ``cache`` has no entry for ``phase`` (the entry is then written from
    ``to_arrays(result)``), else (None, the stored arrays)."""
    fresh = []

    def computed() -> dict:
        fresh.append(compute())
        return to_arrays(fresh[0])

    arrays = cached(cache, phase, computed)
    return (fresh[0], None) if fresh else (None, arrays)


def _kernel_phase(kernel, model, train_x: torch.Tensor, held_out: torch.Tensor, settings: MarginalSettings) -> Phase:
    """The ``marginal-kernel`` phase of :func:`kernel_pass` (module docstring: its key)."""
    monte_carlo = isinstance(kernel, MonteCarloNNGP)
    m, q = int(train_x.shape[0]), int(held_out.shape[0])
    tests = {"cross": ((m, q), np.float64), "diagonal": ((q,), np.float64)} if monte_carlo else {}
    return Phase(
        "marginal-kernel",
        PHASE_VERSION,
        {
            "kernel": _kernel_settings(kernel),
            "sigma_w": settings.sigma_w,
            "sigma_b": settings.sigma_b,
            "model": model_record(model),
            "device": resolve_device(settings.device).type,
        },
        {"train_x": train_x, **({"held_out": held_out} if monte_carlo else {}), **model_tensors(model)},
        {"K": ((m, m), np.float64), **tests, RECORD: ((None,), np.uint8)},
    )


def kernel_entry_exists(
    cache_dir, kernel, model, train_x: torch.Tensor, held_out: torch.Tensor, settings: MarginalSettings
) -> bool:
    """Whether ``cache_dir`` holds an entry for :func:`kernel_pass` with these arguments (the run will read it
    instead of computing the kernel, unless it then proves unreadable): for the time estimates. Hashes the
    key's inputs, not the entry."""
    cache = phase_cache(cache_dir)
    if cache is None:
        return False
    phase = _kernel_phase(kernel, model, train_x, held_out, settings)
    return os.path.lexists(cache.path(phase, phase.key()))


def kernel_pass(
    cache: PhaseCache | None, kernel, model, train_x: torch.Tensor, held_out: torch.Tensor, settings: MarginalSettings
) -> KernelPass:
    """K(train, train) of ``kernel`` (and, for a Monte Carlo kernel, the test kernels on ``held_out`` from the
    same pass: :meth:`~pacbayes.kernels.MonteCarloNNGP.train_and_test`), from ``cache`` when it holds them."""
    monte_carlo = isinstance(kernel, MonteCarloNNGP)

    def compute() -> KernelPass:
        started = time.perf_counter()
        if monte_carlo:
            K, cross, diagonal = kernel.train_and_test(train_x, held_out, device=settings.device, quiet=settings.quiet)
            test_kernels: tuple | None = (cross, diagonal)
        else:
            K, test_kernels = kernel.matrix(train_x, device=settings.device, quiet=settings.quiet), None
        return KernelPass(K, test_kernels, kernel.describe(), dict(kernel.diagnostics), time.perf_counter() - started)

    if cache is None:
        return compute()
    phase = _kernel_phase(kernel, model, train_x, held_out, settings)

    def to_arrays(result: KernelPass) -> dict:
        record = {"described": result.described, "diagnostics": result.diagnostics, "seconds": result.seconds}
        tests = (
            {} if result.test_kernels is None else dict(zip(("cross", "diagonal"), result.test_kernels, strict=True))
        )
        return {"K": result.K, **tests, RECORD: json_array(record)}

    fresh, arrays = _fresh_or_cached(cache, phase, compute, to_arrays)
    if fresh is not None:
        return fresh
    record, device = json_record(arrays[RECORD]), resolve_device(settings.device)
    test_kernels = (arrays["cross"].to(device), arrays["diagonal"].to(device)) if monte_carlo else None
    return KernelPass(
        arrays["K"].to(device), test_kernels, record["described"], record["diagnostics"], record["seconds"]
    )


def _ep_options() -> dict:
    """The options EP runs with besides K, the labels and the jitter: the EP functions' defaults."""
    return {
        function.__name__: {
            name: parameter.default
            for name, parameter in inspect.signature(function).parameters.items()
            if parameter.default is not parameter.empty and name not in _UNKEYED_OPTIONS
        }
        for function in (ep_log_evidence, multiclass_ep_log_evidence)
    }


def ep_pass(cache: PhaseCache | None, likelihood, K: torch.Tensor, labels: torch.Tensor, jitter: float, settings):
    """``likelihood.ep`` of K and ``labels`` (class indices) at ``jitter``, from ``cache`` when it holds it.

    The certified sandwich follows on the same prior: EP runs with ``likelihood.ep_options_before_certified()``
    (the binary EP leaves the proof that K + jitter I is positive definite to the sandwich)."""
    deferred = likelihood.ep_options_before_certified()

    def compute():
        return likelihood.ep(K, labels, jitter=jitter, device=settings.device, quiet=settings.quiet, **deferred)

    if cache is None:
        return compute()
    device = resolve_device(settings.device)
    phase = Phase(
        "marginal-ep",
        PHASE_VERSION,
        {"classes": likelihood.classes, "jitter": jitter, "options": _ep_options(), "device": device.type},
        {"K": K, "labels": labels},
        ep_expected(int(K.shape[0]), likelihood.classes),
    )
    fresh, arrays = _fresh_or_cached(cache, phase, compute, ep_arrays)
    if fresh is not None:
        return fresh
    try:
        return restored_ep(arrays, K, labels, likelihood.classes, settings.device, **deferred)
    except (KeyError, TypeError, ValueError) as err:  # an entry is untrusted input: its record must be EP's
        warnings.warn(
            f"cache entry {cache.path(phase, phase.key())} is ignored and recomputed: its record is not an EP "
            f"result's ({type(err).__name__})",
            PhaseCacheWarning,
            stacklevel=2,
        )
        return compute()


__all__ = [
    "PHASE_VERSION",
    "KernelPass",
    "ep_pass",
    "kernel_entry_exists",
    "kernel_pass",
    "model_record",
    "model_tensors",
]
