"""Bounds inside a training loop: :class:`BoundMonitor`, cheap at every call, certified at the end.

What changes during training and what does not:

- The marginal-likelihood bound (Valle-Pérez et al. 2019, Cor. 1; docs/bounds.md) is a property of
  the architecture's NNGP prior and of S, not of the weights: its kernel, EP solution and value
  are computed once, when the monitor is constructed (before training, off the training loop; the
  seconds are in ``setup_seconds``), and reused. What the weights decide is whether the bound
  applies to the current network at all (zero training error), which every call checks. During
  training the value is the EP *estimate*; :meth:`BoundMonitor.final` computes the certified one.
- The train and test errors and, when held-out data is given, the hold-out bound of the current
  network (the exact binomial tail, Langford 2005, Thm 3.3) change at every call. Choosing a
  checkpoint by its hold-out bound is a data-dependent choice among up to ``max_checkpoints``
  candidates, so each call spends delta_holdout / max_checkpoints (Boole's inequality): the bound
  of the checkpoint picked by :meth:`BoundMonitor.best_checkpoint` then holds with probability
  >= 1 - delta_holdout.

``monitor.step(model)`` is meant to be called at every optimiser step. By default it keeps the
monitor's share of wall-clock time near ``overhead`` (5%): after a checkpoint that took c
seconds, the next one comes once c / overhead seconds have passed (the first call computes at
once). The one-time work is not a checkpoint's cost, so it never delays the next one. With
``every=N`` it computes every N calls instead. Given ``total_steps`` (the number of ``step`` calls
training will make), checkpoints are also kept at least total_steps / (max_checkpoints - 1) calls
apart, so the declared ones last the whole run, and the last call computes one at the end of
training. ``monitor.compute(model)`` computes now. Both return a :class:`MonitorResult` and pass
it to ``callback`` if one was given; ``step`` returns None when it does not compute, and stops
computing once ``max_checkpoints`` are spent. ``monitor.history`` holds every checkpoint;
:meth:`BoundMonitor.history_to_json` and :meth:`BoundMonitor.history_to_csv` write it to a file.
"""

import csv
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from pacbayes import arguments, call_arguments, checks
from pacbayes.bounds import holdout_bound
from pacbayes.certification import HOLDOUT, MODEL_CLASSIFIER, CertifyOptions, certify, delta_shares, prepare_data
from pacbayes.data import Dataset, take
from pacbayes.data.subsets import certified_subset, shared_examples
from pacbayes.errors import InputError
from pacbayes.families import FAMILIES, RunContext, settings_types
from pacbayes.models import count_mistakes, model_outputs, output_dim, zero_one_error
from pacbayes.report import write_atomically, write_json_atomically
from pacbayes.results import BoundResult, WithBounds

HOLDOUT_NAME = "holdout"
HOLDOUT_CERTIFIES = "0-1 error of the network itself at this checkpoint (exact binomial tail on the held-out set)"


@dataclass(frozen=True)
class MonitorResult(WithBounds):
    """One monitoring call: errors, the bounds (a list of BoundResult, as in a certify Report), seconds.

    applies: bound name -> whether it speaks about the current network (the marginal bound needs
    zero training error). ``values`` (name -> value), ``certified`` (name -> bool) and
    ``bound(name)`` read the bounds.
    """

    step: int
    train_error: float
    test_error: float | None
    bounds: list
    applies: dict
    seconds: float
    notes: tuple = field(default_factory=tuple)

    @property
    def certified(self) -> dict:
        """name -> whether that bound is certified (the rest are estimates)."""
        return {b.name: b.certified for b in self.bounds}

    def to_dict(self) -> dict:
        return {
            "step": self.step,
            "train_error": self.train_error,
            "test_error": self.test_error,
            "bounds": [b.to_dict() for b in self.bounds],
            "applies": dict(self.applies),
            "seconds": self.seconds,
            "notes": list(self.notes),
        }


class BoundMonitor:
    """Track bounds on a model while it trains; see the module docstring.

    model: the network being trained (only its architecture is read here: construction fixes the
        prior and does the one-time work); train: the training data S; test: optional held-out data
        (disjoint from S) for the test error and the per-checkpoint hold-out bound. bounds: families
        to track ("marginal"; a family whose ``track`` returns None cannot be tracked and is refused).
        settings: the settings of families in ``bounds``: one family's settings dataclass (e.g.
        ``MarginalSettings(jitter=1e-5)``) or a tuple of them; a family without any runs at its defaults.
    delta: total failure probability of :meth:`final`'s certified numbers and, as a separate
        statement, of all the per-checkpoint hold-out bounds together (each gets delta /
        max_checkpoints); quoting both together holds with probability >= 1 - 2 delta.
    every: a fixed cadence for :meth:`step` (None: the time budget ``overhead``). max_checkpoints:
        the number of checkpoints declared in advance for the hold-out union bound. total_steps:
        the number of :meth:`step` calls training will make, if known (spreads the checkpoints over
        the run and computes one at the last call). holdout_points: the checkpoints' test error and
        hold-out bound use a seeded subset of at most this many test points, drawn at construction
        (None: all of them; :meth:`final` always uses all). allow_duplicates: accept repeated
        training inputs as independent draws (the distribution has atoms), as in
        :class:`~pacbayes.certification.CertifyOptions`; by default they are refused.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        train: Dataset,
        *,
        test: Dataset | None = None,
        bounds: tuple = ("marginal",),
        delta: float = 0.05,
        every: int | None = None,
        overhead: float = 0.05,
        max_checkpoints: int = 100,
        total_steps: int | None = None,
        holdout_points: int | None = 1000,
        settings: Any = (),
        negative_classes: tuple | None = None,
        seed: int = 0,
        callback: Callable[[MonitorResult], None] | None = None,
        quiet: bool = True,
        allow_duplicates: bool = False,
    ):
        chosen = call_arguments.monitor_arguments(
            model,
            train,
            test=test,
            bounds=bounds,
            delta=delta,
            every=every,
            overhead=overhead,
            max_checkpoints=max_checkpoints,
            settings=settings,
            settings_types=settings_types(),
            seed=seed,
            quiet=quiet,
            negative_classes=negative_classes,
            callback=callback,
        )
        self.delta = checks.delta(delta)
        unknown = [name for name in bounds if name not in FAMILIES]
        if unknown:
            raise InputError(
                f"the monitor cannot track bound family {', '.join(unknown)}: no family of that name is registered "
                f"({', '.join(FAMILIES)})"
            )
        if every is not None and (not isinstance(every, int) or every < 1):
            raise InputError(f"every must be a positive integer number of steps (or None), got {every!r}")
        if not 0.0 < overhead < 1.0:
            raise InputError(f"overhead must be a fraction of training time in (0, 1), got {overhead!r}")
        if not isinstance(max_checkpoints, int) or max_checkpoints < 1:
            raise InputError(f"max_checkpoints must be a positive integer, got {max_checkpoints!r}")
        if total_steps is not None:
            total_steps = checks.integer_at_least(total_steps, "total_steps (the number of step() calls, or None)", 1)
        if holdout_points is not None:
            holdout_points = checks.integer_at_least(holdout_points, "holdout_points (or None for all)", 1)
        self.overhead = overhead
        self._next_due = None  # perf_counter time after which step() computes (time-budget mode)
        self._last_step = None  # the call number of the last checkpoint
        self.bounds, self.every, self.max_checkpoints = tuple(bounds), every, max_checkpoints
        self.total_steps = total_steps
        self.options = CertifyOptions(
            bounds=self.bounds,
            delta=self.delta,
            seed=seed,
            negative_classes=negative_classes,
            quiet=quiet,
            allow_duplicates=allow_duplicates,
        ).with_settings(chosen)
        self._given = (train, test)  # as the user gave them: final() re-prepares through certify
        self.train, self.test, self.outputs = self._prepare(model, train, test)
        if self.test is not None and holdout_points is not None and len(self.test) > holdout_points:
            self.test = take(self.test, holdout_points, seed=seed)  # fixed before training: the bound stays valid
        for name in self.bounds:
            FAMILIES[name].check(RunContext(outputs=self.outputs, train_error=0.0))
        self.callback = callback
        self.history: list = []
        self.calls = 0
        self._cache: dict = {}
        started = time.perf_counter()
        self._track(model, train_error=1.0)  # the one-time work (kernel, EP), before training starts
        self.setup_seconds = time.perf_counter() - started

    def _prepare(self, model, train, test):
        """(S, test, outputs) as certify prepares them; without test, S alone (binarised, distinct inputs)."""
        if test is not None:
            return prepare_data(model, train, test, self.options)
        outputs = output_dim(model, train.x[:1])
        train = certified_subset(
            train,
            binary=outputs == 1,
            negative_classes=self.options.negative_classes,
            allow_duplicates=self.options.allow_duplicates,
        )
        return train, None, outputs

    # ------------------------------------------------------------------ per-call work
    def step(self, model: torch.nn.Module) -> MonitorResult | None:
        """Call at every training step: computes when due (see the module docstring), else returns None."""
        self.calls += 1
        if not self._due():
            return None
        result = self.compute(model)
        self._next_due = time.perf_counter() + result.seconds / self.overhead
        return result

    def _due(self) -> bool:
        """Whether the current ``step`` call computes: slots left, the end of training, cadence, spacing."""
        left = self.max_checkpoints - len(self.history)
        if left <= 0:
            return False
        planned = self.total_steps is not None and self.calls <= self.total_steps
        if planned and self.calls == self.total_steps:
            return True  # the end of training
        if planned and left == 1:
            return False  # the last slot is kept for the end
        if self.every is not None:
            if self.calls % self.every:
                return False
        elif self._next_due is not None and time.perf_counter() < self._next_due:
            return False
        if planned and self._last_step is not None and self.max_checkpoints > 1:
            return self.calls - self._last_step >= self.total_steps / (self.max_checkpoints - 1)
        return True

    def compute(self, model: torch.nn.Module) -> MonitorResult:
        """Errors and bounds of ``model`` now (marginal: the EP estimate computed at construction)."""
        if len(self.history) >= self.max_checkpoints:
            raise InputError(
                f"the monitor has already computed {self.max_checkpoints} checkpoints, the "
                "number declared for the hold-out union bound; construct it with a larger "
                "max_checkpoints or a larger every"
            )
        started = time.perf_counter()
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                train_error = self._error(model, self.train)
                test_mistakes = None
                if self.test is not None:
                    test_mistakes = count_mistakes(model_outputs(model, self.test.x), self.test.labels)
        finally:
            model.train(was_training)
        results, applies, notes = self._track(model, train_error)
        test_error = None
        if test_mistakes is not None:
            n = len(self.test)
            test_error = test_mistakes / n
            results.append(self._holdout_result(test_mistakes, n))
            applies[HOLDOUT_NAME] = True
        result = MonitorResult(
            step=self.calls,
            train_error=train_error,
            test_error=test_error,
            bounds=results,
            applies=applies,
            seconds=time.perf_counter() - started,
            notes=tuple(notes),
        )
        self.history.append(result)
        self._last_step = self.calls
        if self.callback is not None:
            self.callback(result)
        return result

    def _track(self, model: torch.nn.Module, train_error: float) -> tuple:
        """(bounds, applies, notes) of every tracked family at ``train_error`` (the first call fills the cache)."""
        context = RunContext(
            outputs=self.outputs,
            train_error=train_error,
            seed=self.options.seed,
            device=self.options.device,
            quiet=self.options.quiet,
        )
        shares = delta_shares(self.delta, self.bounds)
        results, applies, notes = [], {}, []
        for name in self.bounds:
            family = FAMILIES[name]
            tracked = family.track(
                model,
                self.train,
                delta=shares[name],
                settings=self.options.settings_for(name),
                context=context,
                cache=self._cache.setdefault(name, {}),
            )
            if tracked is None:
                raise InputError(
                    f"the monitor cannot track bound family {name}: it has no value cheap enough to compute "
                    "during training; certify it at the end (final(), or pacbayes.certify)"
                )
            for key, value in tracked.values.items():
                certified = bool(tracked.certified[key])
                results.append(
                    BoundResult(
                        name=key,
                        value=value,
                        certified=certified,
                        certifies=family.certifies,
                        delta={name: shares[name]} if certified else {},
                        family=name,
                        classifier=family.classifier,
                    )
                )
                applies[key] = tracked.applies
            notes += [tracked.note] if tracked.note else []
        return results, applies, notes

    def _holdout_result(self, mistakes: int, n: int) -> BoundResult:
        share = self._holdout_delta()
        return BoundResult(
            name=HOLDOUT_NAME,
            value=holdout_bound(mistakes, n, share),
            certified=True,
            certifies=HOLDOUT_CERTIFIES,
            delta={f"{HOLDOUT}, one of {self.max_checkpoints} checkpoints": share},
            details={"test_mistakes": mistakes, "n": n},
            family=HOLDOUT_NAME,
            classifier=MODEL_CLASSIFIER,
        )

    @staticmethod
    def _error(model, data: Dataset) -> float:
        return zero_one_error(model, data.x, data.labels)

    def _holdout_delta(self) -> float:
        """Each checkpoint's share: delta / max_checkpoints (Boole over the declared checkpoints)."""
        return self.delta / self.max_checkpoints

    # ------------------------------------------------------------------ the history, as files
    def history_to_json(self, path: str) -> None:
        """Write :attr:`history` to ``path`` as one JSON list of :meth:`MonitorResult.to_dict` objects, one per
        checkpoint in order (keys step, train_error, test_error, bounds, applies, seconds, notes); atomic."""
        write_json_atomically([result.to_dict() for result in self.history], path)

    def history_to_csv(self, path: str) -> None:
        """Write :attr:`history` to ``path`` as CSV, one row per checkpoint (see :func:`history_rows`); atomic."""
        header, rows = history_rows(self.history)

        def write(stream):
            writer = csv.writer(stream)
            writer.writerow(header)
            writer.writerows(rows)

        write_atomically(path, write)

    # ------------------------------------------------------------------ selection and the final call
    def best_checkpoint(self) -> MonitorResult | None:
        """The computed checkpoint with the smallest hold-out bound (valid under the union bound)."""
        scored = [r for r in self.history if HOLDOUT_NAME in r.values]
        return min(scored, key=lambda r: r.bound(HOLDOUT_NAME).value) if scored else None

    def final(self, model: torch.nn.Module, test: Dataset | None = None):
        """Certified numbers for ``model`` now: :func:`pacbayes.certification.certify` on the monitor's data.

        Needs held-out data (the monitor's ``test`` unless another set is given). When checkpoints
        were computed and that set shares any input with the test points they were scored on (the
        monitor's own test set, in any order, a copy, or a part of it), ``model`` may have been
        chosen by it (e.g. :meth:`best_checkpoint`): the hold-out bound then pays for the selection,
        spending its share / ``max_checkpoints`` as every checkpoint did. A fresh test set, sharing
        no input with them, pays nothing.
        Returns the certify :class:`~pacbayes.certification.Report`; a tracked family that does not apply
        to ``model`` (the realisable marginal bound at a nonzero training error) is left out and named,
        with the reason, in its ``not_applying``, and the hold-out bound and the other families stand.
        """
        train, given_test = self._given
        test = test if test is not None else given_test
        if test is None:
            raise InputError(
                "final() needs held-out data for the measured test error: construct the "
                "monitor with test=... or pass test= to final()"
            )
        arguments.instance(test, Dataset, "test", "a pacbayes.data.Dataset")
        selected = self.test is not None and self.history and len(shared_examples(self.test, test)) > 0
        options = replace(self.options, holdout_candidates=self.max_checkpoints) if selected else self.options
        return certify(model, train, test, options, report_inapplicable=True)


def history_rows(history: list) -> tuple:
    """(header, rows) of a CSV of ``history``: step, train_error, test_error, seconds, then for each bound
    name (in the order first seen) its value and ``<name> applies``. A value that does not apply to the
    network at that checkpoint is left empty (the marginal bound before the network fits S), and so is a
    number the checkpoint lacks."""
    names = list(dict.fromkeys(name for result in history for name in result.names()))
    header = ["step", "train_error", "test_error", "seconds"]
    header += [column for name in names for column in (name, f"{name} applies")]
    rows = []
    for result in history:
        row = [result.step, result.train_error, _blank(result.test_error), result.seconds]
        for name in names:
            applies = result.applies.get(name)
            row += [result.values[name] if applies else "", "" if applies is None else applies]
        rows.append(row)
    return header, rows


def _blank(value):
    """``value``, or an empty CSV cell for None."""
    return "" if value is None else value


def _log_result(result: MonitorResult) -> str:
    """One line for a log: step, errors and each bound with its kind."""
    parts = [f"step {result.step}", f"train error {result.train_error:.4f}"]
    if result.test_error is not None:
        parts.append(f"test error {result.test_error:.4f}")
    for b in result.bounds:
        kind = "certified" if b.certified else "estimate"
        parts.append(f"{b.name} {b.value:.4f} ({kind}{'' if result.applies[b.name] else ', does not apply yet'})")
    return ", ".join(parts) + f" [{result.seconds * 1000:.0f} ms]"


def print_callback(result: MonitorResult) -> None:
    """A ready-made ``callback`` that prints one line per computed checkpoint."""
    print(_log_result(result), flush=True)


__all__ = ["BoundMonitor", "MonitorResult", "history_rows", "print_callback"]
