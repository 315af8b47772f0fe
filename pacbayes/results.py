"""The record every bound family returns, and the one shape both results carry it in.

Data flows one way: data -> kernel -> evidence -> bound -> report. Each family (marginal,
dziugaite-roy, subspace) turns its inputs into one or more :class:`BoundResult`; ``certify``
collects them into a report, and :class:`~pacbayes.monitor.BoundMonitor` into one
:class:`~pacbayes.monitor.MonitorResult` per checkpoint. Both hold their bounds the same way: a
list of :class:`BoundResult` under ``bounds``, looked up by name with :meth:`WithBounds.bound`.
Torch-free.
"""

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from pacbayes.errors import InputError


@dataclass(frozen=True)
class BoundResult:
    """One upper bound on a true error.

    name: short identifier, e.g. ``"marginal-certified"``.
    value: the upper bound on the true (0-1) error of ``certifies``, in [0, 1].
    certified: True only if ``value`` holds with probability >= 1 - sum(delta.values()) under the
        stated assumptions; estimates (EP, small Monte Carlo budgets) are False.
    certifies: the classifier the bound is about, in words (e.g. "Gibbs error of the
        NNGP-Bayes posterior Q*", "the stochastic network N(w, diag(s))").
    delta: ledger of every failure probability this number spends, by name.
    log_evidence: ln P(S) used by marginal-likelihood bounds, else None.
    assumptions: what must hold for ``value`` to mean what it says.
    details: JSON-serialisable diagnostics (KL, sweeps, sample counts, seconds, ...).
    family: the bound family that computed it (``"marginal"``, ``"dziugaite-roy"``, ``"subspace"``).
    classifier: a short stable name of the classifier ``certifies`` speaks about (``"q-star"``,
        ``"stochastic-network"``, ``"compressed-model"``); bounds on different classifiers are
        never compared or minimised together.
    """

    name: str
    value: float
    certified: bool
    certifies: str
    delta: dict = field(default_factory=dict)
    log_evidence: float | None = None
    assumptions: tuple = ()
    details: dict = field(default_factory=dict)
    family: str = ""
    classifier: str = ""

    def to_dict(self) -> dict:
        record = asdict(self)
        record["assumptions"] = list(self.assumptions)
        return record


class WithBounds:
    """Name lookups over a ``bounds`` list of :class:`BoundResult` (shared by Report and MonitorResult)."""

    bounds: list

    def bound(self, name: str) -> BoundResult:
        """The bound called ``name`` (InputError naming the ones there are if none is)."""
        for b in self.bounds:
            if b.name == name:
                return b
        raise InputError(f"no bound named {name!r} here; the bounds are {', '.join(self.names()) or '(none)'}")

    def names(self) -> list:
        """The bounds' names, in order."""
        return [b.name for b in self.bounds]

    @property
    def values(self) -> dict:
        """name -> value of every bound, in order."""
        return {b.name: b.value for b in self.bounds}


class SerialisesItself:
    """A result whose ``to_dict()`` is its summary under stable JSON keys: ``SUMMARY`` maps each key to the
    attribute it holds. The certify report and ``pacbayes evidence`` both take their keys from here."""

    SUMMARY: ClassVar[dict[str, str]] = {}

    def to_dict(self) -> dict[str, Any]:
        """The summary: JSON key -> this result's attribute, in ``SUMMARY``'s order."""
        return {key: getattr(self, attribute) for key, attribute in self.SUMMARY.items()}


EP_SUMMARY = {key: key for key in ("log_evidence", "sweeps", "final_change", "seconds", "converged")}
"""The summary keys of an EP estimate of ln P(S) (binary or multi-class)."""


@dataclass
class EPEstimate(SerialisesItself):
    """What every EP run of ln P(S) reports (binary and multi-class results extend it): the estimate, whether
    the sweeps converged, how many ran, the last relative change of ln Z and the seconds taken."""

    SUMMARY = EP_SUMMARY

    log_evidence: float
    converged: bool
    sweeps: int
    final_change: float
    seconds: float


CERTIFIED_SUMMARY = {
    "lower": "lower",
    "log_estimate": "log_estimate",
    "upper": "upper",
    "upper_note": "upper_reason",
    "grad_norm": "grad_norm",
    "samples": "samples",
    "pilot_samples": "pilot_samples",
    "proposal": "proposal",
    "effective_samples": "effective_samples",
    "seed": "seed",
    "seconds": "seconds",
    "delta_prime": "delta_prime",
}
"""The summary keys of a certified sandwich for ln P(S)."""
