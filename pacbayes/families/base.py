"""The contract every bound family implements, and the records it hands back to certify.

A family is one object with a ``name`` (the one name used by the CLI, JSON, claims and reports), a
frozen ``settings_type`` dataclass (everything the family needs that the user chooses; fields with
``cli`` metadata become ``pacbayes certify`` flags and claims keys), the short name of the
``classifier`` its certified numbers are about, and ``run``. ``certify`` gives each family its own
share of delta and a :class:`RunContext`; the family returns a :class:`FamilyOutcome`: its bound
records, the named baselines it measured and its diagnostics. Nothing outside the family knows
its baselines or settings by name: reports, the CLI, claims and the monitor iterate the registry
(:mod:`pacbayes.families`). A family whose numbers can be tracked cheaply during training also
has ``track`` (see :class:`Tracked`); :class:`pacbayes.monitor.BoundMonitor` offers those.
"""

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Optional, Protocol, runtime_checkable

from pacbayes.options import Option, cli_fields, option

if TYPE_CHECKING:  # torch-free at run time: the CLI reads the families' settings before loading torch
    import torch

    from pacbayes.data import Dataset


@dataclass(frozen=True)
class RunContext:
    """What certify has measured and fixed before a family runs.

    outputs: the model's number of logits (1: binary on class 0/1 labels); train_error: the model's
    0-1 error on the prepared training set; seed: the report's seed (every random step derives
    from it); device: torch device for the heavy work (None: the default); quiet: no progress bars;
    sample: what the prepared S was drawn from, for the attempts ledger's key
    (:func:`pacbayes.attempts.sample_record`; None: S itself, as the family is given it); cache_dir: the
    folder for the results of long phases (:mod:`pacbayes.cache`; None: no cache).
    """

    outputs: int
    train_error: float
    seed: int = 0
    device: Optional[str] = None
    quiet: bool = True
    sample: Optional[dict] = None
    cache_dir: Optional[str] = None


@dataclass(frozen=True)
class Baseline:
    """A number a family measured next to its bounds: ``key`` in the report's ``baselines`` (JSON),
    ``label`` the text the report's table prints before it."""

    key: str
    value: Any
    label: str


@dataclass(frozen=True)
class FamilyOutcome:
    """What one family returns: its bounds (BoundResult), named baselines and diagnostics (JSON)."""

    bounds: list
    baselines: tuple = ()
    diagnostics: dict = field(default_factory=dict)


@runtime_checkable
class BoundFamily(Protocol):
    """One bound family (see the module docstring)."""

    name: str
    settings_type: type
    classifier: str

    def check(self, context: RunContext) -> None:
        """Raise InputError when this family cannot speak about the model (called before any family runs)."""
        ...

    def run(
        self,
        model: "torch.nn.Module",
        train: "Dataset",
        test: "Dataset",
        *,
        delta: float,
        settings: Any,
        context: RunContext,
    ) -> FamilyOutcome:
        """Bounds on this family's classifier from ``train`` (the prepared S), spending ``delta`` in all."""
        ...


@dataclass(frozen=True)
class Tracked:
    """A family's cheap values during training (see :class:`pacbayes.monitor.BoundMonitor`): bound name ->
    value, which are certified, whether they apply to the current network, and a note when they do not."""

    values: dict
    certified: dict
    applies: bool
    note: str = ""


def stamped(results: list, family: "BoundFamily") -> list:
    """``results`` with ``family`` and (where a record has none) ``classifier`` filled in."""
    return [replace(b, family=family.name, classifier=b.classifier or family.classifier) for b in results]


__all__ = [
    "Baseline",
    "BoundFamily",
    "FamilyOutcome",
    "Option",
    "RunContext",
    "Tracked",
    "cli_fields",
    "option",
    "stamped",
]
