"""Expected seconds and peak memory of each long phase of a run, said before it starts.

A :class:`PhaseEstimate` names a phase (the kernel, EP, the certified sandwich, a training loop, ...),
its expected seconds and peak bytes, and the settings that would make it cheaper. The figures come
from cheap timed probes on this machine (a few steps of the real loop, a tile of the real kernel, a
matrix product for dense algebra; :func:`best_time`), scaled to the run's sizes; they are estimates
to plan by, not guarantees. :func:`check_time_budget` refuses a run whose estimates add up to more
than the user's ``max_minutes`` before any of its work starts.
"""

import functools
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from pacbayes.errors import InputError
from pacbayes.memory import format_bytes
from pacbayes.progress import announce

LONG_SECONDS = 600.0
"""Above this a phase's announcement names the settings that would make it cheaper."""


@dataclass(frozen=True)
class PhaseEstimate:
    """Expected ``seconds`` and ``peak_bytes`` of one phase; ``cheaper``: the settings that shorten it."""

    phase: str
    seconds: float
    peak_bytes: int = 0
    cheaper: str = ""

    def line(self) -> str:
        """The announcement: '<phase>: expected ~T, ~M peak', naming ``cheaper`` when the phase is long."""
        memory = f", ~{format_bytes(self.peak_bytes)} peak" if self.peak_bytes else ""
        hint = f"; cheaper: {self.cheaper}" if self.cheaper and self.seconds > LONG_SECONDS else ""
        return f"{self.phase}: expected ~{duration(self.seconds)}{memory} (estimate from a timed probe){hint}"


def duration(seconds: float) -> str:
    """Seconds as '0.42 s', '12 s' or '3.5 min'."""
    if seconds < 10:
        return f"{seconds:.2f} s"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def best_time(work, repeats: int = 2) -> float:
    """The least wall-clock seconds of ``repeats`` calls of ``work()`` (the probe's noise is mostly upward)."""
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def median_time(work, repeats: int = 5) -> float:
    """The median wall-clock seconds of ``repeats`` calls of ``work()``: for probes of a few milliseconds
    on a busy machine, where one call may be descheduled for longer than it runs and the least call is
    luckier than a long loop will be."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


PROBE_SECONDS = 0.04  # a timed probe call of :func:`seconds_per_step` is lengthened until it takes this long ...
PROBE_STEPS_MAX = 256  # ... or runs this many steps


def seconds_per_step(run, steps: int) -> float:
    """Seconds per step of a loop: after one untimed ``run(1)`` (warm-up), the median of five ``run(k)``
    over ``k``, where ``k`` starts at ``steps`` and doubles until one call takes PROBE_SECONDS (so that a
    call's own set-up, an optimiser and a network copy, and the scheduler's noise are a small part of a
    timing of a few-millisecond step)."""
    run(1)
    while best_time(functools.partial(run, steps), repeats=1) < PROBE_SECONDS and steps < PROBE_STEPS_MAX:
        steps *= 2
    return median_time(functools.partial(run, steps)) / steps


def seconds_per_multiply_add(dtype, device, shape: tuple) -> float:
    """Seconds per multiply-add of a matrix product in ``dtype`` on ``device``, (rows x depth) times
    (depth x cols) with ``shape`` = (rows, cols, depth), accumulated into its output as dense algebra
    runs: the best of five (:func:`best_time`), measured once per dtype, device, shape and torch's thread
    count (:func:`remeasure_products` forgets the measurements)."""
    return _product_probe(dtype, torch.device(device), tuple(shape), torch.get_num_threads())


@functools.lru_cache(maxsize=32)
def _product_probe(dtype, device, shape: tuple, threads: int) -> float:
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn((rows, shape[2]), generator=generator, dtype=dtype).to(device) for rows in shape[:2])
    out = torch.zeros(shape[:2], dtype=dtype, device=device)

    def product():
        out.addmm_(a, b.T)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return best_time(product, repeats=5) / math.prod(shape)


def remeasure_products() -> None:
    """Forget :func:`seconds_per_multiply_add`'s measurements, so that the next one measures the machine as it is."""
    _product_probe.cache_clear()


@contextmanager
def preserved_numpy_random():
    """numpy's global random state, put back on exit (probes must not shift a run's draws)."""
    state = np.random.get_state()
    try:
        yield
    finally:
        np.random.set_state(state)


def announce_estimates(estimates, *, quiet: bool = False) -> None:
    """One line per phase on stderr (silenced by ``quiet``)."""
    for estimate in estimates:
        announce(estimate.line(), quiet=quiet)


def total_seconds(estimates) -> float:
    """Expected seconds of all ``estimates`` together."""
    return float(sum(e.seconds for e in estimates))


def check_time_budget(estimates, max_minutes) -> None:
    """InputError when the estimates add up to more than ``max_minutes`` (None: no limit), naming the
    longest phases and the settings that would make them cheaper; called before any of the work."""
    if max_minutes is None:
        return
    if not (isinstance(max_minutes, (int, float)) and math.isfinite(max_minutes) and max_minutes > 0):
        raise InputError(f"--max-minutes must be a positive number of minutes, got {max_minutes!r}")
    expected = total_seconds(estimates)
    if expected <= 60.0 * max_minutes:
        return
    longest = sorted(estimates, key=lambda e: -e.seconds)[:3]
    phases = ", ".join(f"{e.phase} ~{duration(e.seconds)}" for e in longest)
    hints = list(dict.fromkeys(e.cheaper for e in longest if e.cheaper))
    cheaper = f"; cheaper: {'; '.join(hints)}" if hints else ""
    raise InputError(
        f"the run is expected to take ~{expected / 60:.1f} min, above --max-minutes {max_minutes:g} "
        f"({phases}){cheaper}; or raise --max-minutes"
    )


__all__ = [
    "LONG_SECONDS",
    "PhaseEstimate",
    "announce_estimates",
    "best_time",
    "check_time_budget",
    "duration",
    "median_time",
    "preserved_numpy_random",
    "total_seconds",
]
