"""The contract every bound family implements, and the records it hands back to certify.

A family is one object with a ``name`` (the one name used by the CLI, JSON, claims and reports), a
frozen ``settings_type`` dataclass (everything the family needs that the user chooses; fields with
``cli`` metadata become ``pacbayes certify`` flags and claims keys), the short name of the
``classifier`` its certified numbers are about, and ``run``. ``certify`` gives each family its own
share of delta and a :class:`RunContext`; the family returns a :class:`FamilyOutcome`: its bound
records, the named baselines it measured and its diagnostics. Nothing outside the family knows
its baselines or settings by name: reports, the CLI, claims and the monitor iterate the registry
(:mod:`pacbayes.families`) and ask each family.

A family inherits :class:`FamilyBase`, whose optional parts do nothing (as a training framework's
callback hooks do) until the family overrides them: ``check`` accepts every model, ``estimate``
expects no phases, ``track`` returns None (the family cannot be tracked during training; one whose
numbers are cheap returns a :class:`Tracked`, which :class:`pacbayes.monitor.BoundMonitor` shows)
and ``certifies`` names the classifier.
"""

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

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
    device: str | None = None
    quiet: bool = True
    sample: dict | None = None
    cache_dir: str | None = None


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


@dataclass(frozen=True)
class Tracked:
    """A family's cheap values during training (see :class:`pacbayes.monitor.BoundMonitor`): bound name ->
    value, which are certified, whether they apply to the current network, and a note when they do not."""

    values: dict
    certified: dict
    applies: bool
    note: str = ""


@runtime_checkable
class BoundFamily(Protocol):
    """One bound family (see the module docstring)."""

    name: str
    settings_type: type
    classifier: str

    @property
    def certifies(self) -> str:
        """What the family's tracked values are about, in words (the monitor's records carry it)."""
        ...

    def check(self, context: RunContext) -> None:
        """Raise InputError when this family cannot speak about the model (called before any family runs)."""
        ...

    def estimate(
        self, model: "torch.nn.Module", train: "Dataset", test: "Dataset", *, settings: Any, context: RunContext
    ) -> list[Any]:
        """The expected time of :meth:`run`'s phases (:class:`pacbayes.estimates.PhaseEstimate`)."""
        ...

    def track(
        self,
        model: "torch.nn.Module",
        train: "Dataset",
        *,
        delta: float,
        settings: Any,
        context: RunContext,
        cache: dict[str, Any],
    ) -> Tracked | None:
        """The family's cheap values for the network now (``cache``: the monitor's, kept between calls for
        the work that does not depend on the weights), or None when it cannot be tracked during training."""
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


class FamilyBase:
    """The defaults of a :class:`BoundFamily`'s optional parts: a family sets ``name``, ``settings_type``
    and ``classifier``, defines ``run`` and overrides what it has (see the module docstring)."""

    name: str
    settings_type: type
    classifier: str

    @property
    def certifies(self) -> str:
        """The classifier, by name and family."""
        return f"the {self.classifier} classifier ({self.name})"

    def check(self, context: RunContext) -> None:
        """Any classifier with one logit (binary) or one per class is accepted."""

    def estimate(
        self, model: "torch.nn.Module", train: "Dataset", test: "Dataset", *, settings: Any, context: RunContext
    ) -> list[Any]:
        """No phase estimates."""
        return []

    def track(
        self,
        model: "torch.nn.Module",
        train: "Dataset",
        *,
        delta: float,
        settings: Any,
        context: RunContext,
        cache: dict[str, Any],
    ) -> Tracked | None:
        """None: the family cannot be tracked during training."""
        return None


def stamped(results: list, family: "BoundFamily") -> list:
    """``results`` with ``family`` and (where a record has none) ``classifier`` filled in."""
    return [replace(b, family=family.name, classifier=b.classifier or family.classifier) for b in results]


__all__ = [
    "Baseline",
    "BoundFamily",
    "FamilyBase",
    "FamilyOutcome",
    "Option",
    "RunContext",
    "Tracked",
    "cli_fields",
    "option",
    "stamped",
]
