"""Which NNGP kernel a run computes when both kinds are possible: the analytic one or the Monte Carlo one.

A pure rule on the two kernels' estimates (docs/kernels.md#choosing-the-kernel): with ``--kernel-type auto``
the Monte Carlo kernel is taken when the analytic kernel is estimated at least :data:`SLOWER` times slower
AND the Monte Carlo kernel, at its automatic sample count, is expected to meet its target entry standard
error with room for rank m; otherwise the analytic kernel is kept. Whenever the analytic kernel is the slower
of the two, the run says so before any work, naming both estimates and ``--kernel-type monte-carlo``.
"""

from dataclasses import dataclass

SLOWER = 3.0  # auto takes the Monte Carlo kernel when the analytic one is estimated this many times slower
COMPARE_SECONDS = 30.0  # an analytic kernel estimated below this is not compared (the Monte Carlo pilot costs more)


@dataclass(frozen=True)
class MonteCarloForecast:
    """What the Monte Carlo kernel would cost and give on m inputs, before any of its entries is computed:
    estimated seconds, the automatic sample count, the entry standard error expected at that count (relative
    to the mean diagonal), its target, and the largest rank it can reach (samples x features per draw)."""

    seconds: float
    samples: int
    relative_error: float
    target_error: float
    rank: int

    def meets(self, m: int) -> bool:
        """Whether it meets its target standard error and can reach rank m."""
        return self.relative_error <= self.target_error and self.rank >= m

    def describe(self) -> str:
        return (
            f"{duration(self.seconds)} ({self.samples} initialisations, entry standard error about "
            f"{self.relative_error:.1e} of the mean diagonal against a target of {self.target_error:g}, "
            f"rank up to {self.rank:,})"
        )


@dataclass(frozen=True)
class KernelChoice:
    """The kernel kind chosen ("analytic" or "monte-carlo"), why (one line for the report), and what to say
    before any work ("" when nothing)."""

    kind: str
    reason: str
    notice: str = ""


def duration(seconds: float) -> str:
    """Seconds as a short human figure: "42 s", "77 min", "5.8 h"."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def choose_kernel(requested: str, analytic_seconds: float, monte_carlo: MonteCarloForecast | None, m: int):
    """The :class:`KernelChoice` between an analytic kernel estimated at ``analytic_seconds`` for the m x m
    matrix and the Monte Carlo kernel's ``monte_carlo`` forecast (None: not compared, the analytic kernel
    being cheap). ``requested``: "auto" or "analytic" (the kernel type asked for)."""
    analytic = f"the analytic kernel is estimated at {duration(analytic_seconds)}"
    if monte_carlo is None:
        return KernelChoice("analytic", f"analytic: every operation has a kernel rule and {analytic}")
    ratio = analytic_seconds / max(monte_carlo.seconds, 1e-9)
    both = f"{analytic}, the Monte Carlo kernel at {monte_carlo.describe()}"
    if requested == "auto" and ratio >= SLOWER and monte_carlo.meets(m):
        reason = f"Monte Carlo (auto): {both}; the analytic kernel is {ratio:.1f} x slower"
        return KernelChoice("monte-carlo", reason, f"kernel: {reason}; --kernel-type analytic keeps the analytic one")
    if requested != "auto":
        why = "asked for (--kernel-type analytic)"
    elif not monte_carlo.meets(m):
        why = f"the Monte Carlo kernel would not meet its target standard error or rank >= m = {m:,}"
    else:
        why = f"it is less than {SLOWER:g} x slower"
    reason = f"analytic: {why}; {both}"
    notice = f"kernel: {both}; --kernel-type monte-carlo would be faster" if ratio > 1.0 else ""
    return KernelChoice("analytic", reason, notice)


def monte_carlo_forecast(kernel, m: int, input_shape, device=None, inputs=None) -> MonteCarloForecast:
    """The :class:`MonteCarloForecast` of a :class:`~pacbayes.kernels.monte_carlo.MonteCarloNNGP` on m inputs of
    ``input_shape``: its estimate times a batch on ``inputs`` (None: seeded Gaussian probes) and fixes the sample
    count from its pilot (on the kernel's ``pilot_inputs``, else on Gaussian probes, whose spread real images
    can exceed several times over); the expected standard error is the pilot's spread over sqrt(samples)
    (unknown, so not met, for a sample count given by hand)."""
    seconds, _ = kernel.estimate(m, input_shape=input_shape, inputs=inputs, device=device)
    spread = kernel.sample_rule.get("pilot_relative_sd")
    error = float("inf") if spread is None else spread / kernel.samples**0.5
    return MonteCarloForecast(seconds, kernel.samples, error, kernel.target_error, kernel.samples * kernel.width)
