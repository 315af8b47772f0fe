"""One entry point: measure a trained model's errors and compute the chosen bounds on its data.

``certify(model, train, test, options)`` prepares the data (one label map fixed by the training data,
binarisation for single-logit models, seeded label corruption and subset; the test set must be
disjoint from the whole training set given), measures train and test error, splits the user's delta
over every certified number in the report by one union bound (Boole), runs each requested bound
family and returns a :class:`Report`. Every family receives only its own share of delta.

Each family certifies a different classifier (Q*, the stochastic network, the compressed model);
only the hold-out bound is a statement about MODEL itself. Bounds on different classifiers are
reported side by side, each naming its classifier, and a gate holds for every requested family.
"""

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from pacbayes import arguments, attempts, call_arguments, checks, provenance
from pacbayes.bounds import clean_distribution_bound, holdout_bound, split_delta
from pacbayes.data import Dataset, apply_label_map, binarise, certified_subset, check_disjoint, corrupt_labels
from pacbayes.data.dataset import check_value_ranges
from pacbayes.data.subsets import duplicates_assumption
from pacbayes.errors import InputError
from pacbayes.estimates import (
    PhaseEstimate,
    announce_estimates,
    check_time_budget,
    preserved_numpy_random,
    seconds_per_step,
)
from pacbayes.families import FAMILIES, SETTINGS, RunContext, settings_attribute
from pacbayes.families.settings import DziugaiteRoySettings, MarginalSettings, SubspaceSettings
from pacbayes.models import as_plain_sequential, classification_error, count_mistakes, model_outputs, output_dim
from pacbayes.results import BoundResult, WithBounds

HOLDOUT = "hold-out (test-set bound for the model)"
MODEL_CLASSIFIER = "model"


@dataclass(frozen=True)
class CertifyOptions:
    """What to certify and how; every random step is seeded by ``seed``.

    bounds: the families to run (names in :data:`pacbayes.families.FAMILIES`); delta: the total
    failure probability, split over every certified number; m: a seeded subset of the training
    data; corrupt: label-corruption probability; negative_classes: the class split for single-logit
    models; device: torch device for the families' heavy work; holdout_candidates: the number of
    candidate models (checkpoints, seeds, ...) this one was selected from by looking at ``test``:
    the hold-out bound then spends its share / candidates (Boole over the candidates), so the
    selected model's bound stays certified (1: no selection); allow_duplicates: accept repeated
    training inputs as independent draws (the distribution has atoms; every bound states it) instead
    of refusing them (:func:`pacbayes.data.subsets.check_distinct`); max_minutes: refuse, before any
    family's work, a run whose phases are expected to take longer (:func:`run_estimates`; None: no
    limit; the phases are estimated and announced whenever ``quiet`` is False); cache_dir: a folder where
    the families keep the results of their long phases, keyed by content (:mod:`pacbayes.cache`), so that a
    stopped run resumes and a rerun gives the same numbers (None: no cache). One more field per built-in
    family holds its settings: ``marginal``, ``dziugaite_roy``, ``subspace`` (:data:`FAMILY_FIELDS`); a
    family registered later (a plugin, a test) runs with its default settings (:meth:`settings_for`).
    """

    bounds: tuple[str, ...] = ("marginal",)
    delta: float = 0.05
    m: int | None = None
    seed: int = 0
    corrupt: float = 0.0
    negative_classes: tuple[int, ...] | None = None
    device: str | None = None
    holdout_candidates: int = 1
    allow_duplicates: bool = False
    quiet: bool = True
    max_minutes: float | None = None
    cache_dir: str | None = None
    marginal: MarginalSettings = MarginalSettings()
    dziugaite_roy: DziugaiteRoySettings = DziugaiteRoySettings()
    subspace: SubspaceSettings = SubspaceSettings()

    def settings_for(self, name: str) -> Any:
        """The settings these options hold for family ``name``: its field's (None there: the family's
        defaults), or the defaults of a family without a field."""
        attribute = settings_attribute(name)
        held = getattr(self, attribute) if attribute in FAMILY_FIELDS else None
        return held or FAMILIES[name].settings_type()

    def with_settings(self, settings: dict[str, Any]) -> "CertifyOptions":
        """These options with ``settings`` (family name -> its settings) in the families' fields; a family
        without a field (registered later) runs with its defaults, so other settings for it are refused."""
        fields: dict[str, Any] = {}
        for name, given in settings.items():
            attribute = settings_attribute(name)
            if attribute in FAMILY_FIELDS:
                fields[attribute] = given
            elif given != FAMILIES[name].settings_type():
                raise InputError(
                    f"family {name} was registered after pacbayes was built, so CertifyOptions holds no settings "
                    f"for it and it runs with its defaults; give {type(given).__name__}() or leave its settings out"
                )
        return replace(self, **fields)


FAMILY_FIELDS = tuple(settings_attribute(name) for name in SETTINGS)
"""The fields of :class:`CertifyOptions` that hold the built-in families' settings, in the registry's order."""


@dataclass
class Report(WithBounds):
    """Everything ``pacbayes certify`` prints; ``to_dict`` is the ``--json`` object.

    ``bounds`` is a list of BoundResult, the same shape as :class:`pacbayes.monitor.MonitorResult`'s
    (``bound(name)``, ``values``).
    """

    train_error: float
    test_error: float
    m: int
    delta: float
    bounds: list
    delta_ledger: dict
    baselines: dict
    data: dict
    model: dict
    seconds: dict
    diagnostics: dict = field(default_factory=dict)
    baseline_labels: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    not_applying: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def best_certified_result(self) -> BoundResult | None:
        """The smallest certified bound, which names its classifier (all hold together: one union bound).

        It is a bound on *its* classifier only; use :meth:`certified_by_family` for a gate.
        """
        certified = [b for b in self.bounds if b.certified]
        return min(certified, key=lambda b: b.value) if certified else None

    def best_certified(self) -> float | None:
        """The value of :meth:`best_certified_result` (None when nothing is certified)."""
        best = self.best_certified_result()
        return None if best is None else best.value

    def certified_by_family(self) -> dict:
        """family -> its smallest certified bound on the sampled distribution (None if it certified nothing).

        Clean-label conversions are left out: they are statements about another distribution.
        """
        result: dict[str, BoundResult | None] = {}
        for b in self.bounds:
            best = result.setdefault(b.family, None)
            if b.certified and "converted_from" not in b.details and (best is None or b.value < best.value):
                result[b.family] = b
        return result

    def gate_failures(self, max_bound: float) -> list:
        """Families whose certified bound exceeds ``max_bound`` (or that certified nothing): (family, value)."""
        return [
            (family, None if b is None else b.value)
            for family, b in self.certified_by_family().items()
            if b is None or not b.value <= max_bound
        ] + [(family, None) for family in self.not_applying]

    def to_dict(self) -> dict:
        best = self.best_certified_result()
        return {
            "train_error": self.train_error,
            "test_error": self.test_error,
            "m": self.m,
            "delta": self.delta,
            "bounds": [b.to_dict() for b in self.bounds],
            "best_certified_bound": _field(best, "value"),
            "best_certified_bound_name": _field(best, "name"),
            "best_certified_bound_classifier": _field(best, "classifier"),
            "certified_by_family": {
                family: None if b is None else {"name": b.name, "value": b.value, "classifier": b.classifier}
                for family, b in self.certified_by_family().items()
            },
            "delta_ledger": self.delta_ledger,
            "baselines": self.baselines,
            "data": self.data,
            "model": self.model,
            "seconds": self.seconds,
            "diagnostics": self.diagnostics,
            "provenance": self.provenance,
            "not_applying": self.not_applying,
            "notes": self.notes,
        }


def _field(result: BoundResult | None, name: str):
    return None if result is None else getattr(result, name)


def _check_options(options: CertifyOptions) -> None:
    checks.delta(options.delta)
    unknown = [name for name in options.bounds if name not in FAMILIES]
    if unknown or not options.bounds:
        raise InputError(f"unknown bound family {', '.join(unknown) or '(none)'}; choose from {', '.join(FAMILIES)}")
    if not 0.0 <= options.corrupt <= 1.0 or math.isnan(options.corrupt):
        raise InputError(f"label corruption must be a fraction in [0, 1], got {options.corrupt}")
    if options.m is not None:
        checks.sample_size(options.m, name="m")
    checks.sample_size(options.holdout_candidates, name="holdout_candidates", minimum=1)
    if options.cache_dir is not None:
        arguments.check_output_dir(options.cache_dir, "cache_dir")
    for ledger in {getattr(options.settings_for(name), "attempts_ledger", None) for name in options.bounds}:
        attempts.check_ledger(ledger)  # appended to only once the run's inputs are validated


def prepare_data(model: torch.nn.Module, train: Dataset, test: Dataset, options: CertifyOptions):
    """One label map, disjointness, binarisation for single-logit models, subset, distinct inputs and
    corruption (seeded).

    The training data as given fixes the label map applied to ``test``; ``test`` must be disjoint
    from the whole of it (the model may have been trained on all of it), not only from the m used.
    The m used must hold distinct inputs unless ``options.allow_duplicates``.
    """
    outputs = output_dim(model, train.x[:1])
    output_dim(model, test.x[:1])  # a test set of the wrong shape fails here, with one clear line
    check_disjoint(train, test)
    check_value_ranges(train, test)
    test = apply_label_map(test, train).derive(
        disjoint_from=f"the whole training set given ({train.name}, {len(train)} examples)"
    )
    if outputs == 1:
        test = binarise(test, options.negative_classes)
    elif outputs != train.num_classes:
        raise InputError(
            f"the model has {outputs} outputs but the data has {train.num_classes} classes; "
            "use a single-logit model for binary tasks or one logit per class"
        )
    train = certified_subset(
        train,
        m=options.m,
        seed=options.seed,
        binary=outputs == 1,
        negative_classes=options.negative_classes,
        corrupt=options.corrupt,
        allow_duplicates=options.allow_duplicates,
    )
    return train, test, outputs


def delta_shares(delta: float, bounds) -> dict:
    """The user's delta split equally over the requested families and the hold-out bound (Boole)."""
    return split_delta(delta, {**{name: 1.0 for name in bounds}, HOLDOUT: 1.0})


def certify(
    model: torch.nn.Module,
    train: Dataset,
    test: Dataset,
    options: CertifyOptions = CertifyOptions(),
    *,
    report_inapplicable: bool = False,
) -> Report:
    """Measure errors and compute every requested bound; see the module docstring.

    A family that cannot speak about the model (the realisable marginal bound at a nonzero training
    error) refuses the run, unless ``report_inapplicable``: then it is left out, its reason recorded
    in the report's ``not_applying``, and the other families and the hold-out bound are computed.
    """
    call_arguments.certify_arguments(model, train, test, options, CertifyOptions)
    _check_options(options)
    started = time.perf_counter()
    origin = provenance.collect(options, train, test)  # the data as given, before any subset
    model = as_plain_sequential(model, example_x=train.x[:4]).eval()
    train, test, outputs = prepare_data(model, train, test, options)
    run_estimates(model, train, test, options, outputs)  # before the work: --max-minutes refuses here
    train_error = classification_error(model, train)
    test_mistakes = count_mistakes(model_outputs(model, test.x), test.labels)
    test_error = test_mistakes / len(test)

    shares = delta_shares(options.delta, options.bounds)
    holdout_delta = shares[HOLDOUT] / options.holdout_candidates
    baselines = {
        "holdout_bound": holdout_bound(test_mistakes, len(test), holdout_delta),
        "holdout_n": len(test),
        "holdout_classifier": MODEL_CLASSIFIER,
        "holdout_candidates": options.holdout_candidates,
    }
    ledger = {HOLDOUT: holdout_delta}
    if options.holdout_candidates > 1:
        ledger[f"hold-out: the {options.holdout_candidates - 1} other candidates the model was selected from"] = (
            shares[HOLDOUT] - holdout_delta
        )
    seconds = {"measure": time.perf_counter() - started}
    sample = attempts.sample_record(
        origin["data_sha256"]["train"], len(train), options.corrupt, options.negative_classes if outputs == 1 else None
    )
    context = RunContext(
        outputs=outputs,
        train_error=train_error,
        seed=options.seed,
        device=options.device,
        quiet=options.quiet,
        sample=sample,
        cache_dir=options.cache_dir,
    )
    try:
        not_applying = _not_applying(options.bounds, context, report_inapplicable)
    except InputError as err:
        raise InputError(f"{err}{_subset_hint(train, train_error)}") from None
    bounds, diagnostics, labels = [], {}, {}
    for name in options.bounds:
        if name in not_applying:
            ledger[name] = {}
            continue
        stage = time.perf_counter()
        outcome = FAMILIES[name].run(
            model, train, test, delta=shares[name], settings=options.settings_for(name), context=context
        )
        results = [replace(b, assumptions=b.assumptions + duplicates_assumption(train)) for b in outcome.bounds]
        if options.corrupt > 0.0:
            results = _with_clean_label_versions(results, options.corrupt, outputs)
        bounds += results
        diagnostics[name] = outcome.diagnostics
        for baseline in outcome.baselines:
            baselines[baseline.key] = baseline.value
            labels[baseline.key] = baseline.label
        ledger[name] = {key: value for b in results if b.certified for key, value in b.delta.items()}
        seconds[name] = time.perf_counter() - stage

    if options.corrupt > 0.0:
        corrupted_test = corrupt_labels(test, options.corrupt, seed=options.seed + 1)
        baselines["test_error_corrupted_labels"] = classification_error(model, corrupted_test)
        labels["test_error_corrupted_labels"] = "test error on labels corrupted the same way"
    seconds["total"] = time.perf_counter() - started
    return Report(
        train_error=train_error,
        test_error=test_error,
        m=len(train),
        delta=options.delta,
        bounds=bounds,
        delta_ledger=ledger,
        baselines=baselines,
        data={"train": train.info, "test": test.info},
        model={"outputs": outputs},
        seconds=seconds,
        diagnostics=diagnostics,
        baseline_labels=labels,
        provenance=origin,
        not_applying=not_applying,
        notes=coverage_notes(train),
    )


def run_estimates(model, train: Dataset, test: Dataset, options, outputs: int) -> list:
    """The expected time and memory of the measurement of the model's errors and of every phase the
    requested families will run (each family's ``estimate``), announced unless
    ``options.quiet``; refused (InputError) when they add up to more than ``options.max_minutes``.
    Nothing is estimated when quiet without a limit. The probes leave torch's and numpy's global
    random states as they found them."""
    if options.quiet and options.max_minutes is None:
        return []
    context = RunContext(
        outputs=outputs,
        train_error=0.0,
        seed=options.seed,
        device=options.device,
        quiet=True,
        cache_dir=options.cache_dir,  # a phase read from the cache is estimated as that
    )
    with torch.random.fork_rng(devices=[]), preserved_numpy_random():
        estimates = [measure_estimate(model, train, test)]
        for name in options.bounds:
            estimates += FAMILIES[name].estimate(
                model, train, test, settings=options.settings_for(name), context=context
            )
    announce_estimates(estimates, quiet=options.quiet)
    check_time_budget(estimates, options.max_minutes)
    return estimates


MEASURE_PROBE = 256  # inputs of the timed forward pass (fewer fit in cache and run ~2x faster per input)


def measure_estimate(model, train: Dataset, test: Dataset) -> PhaseEstimate:
    """The model's outputs on the training and test sets (its errors): forward passes on MEASURE_PROBE
    training inputs (:func:`pacbayes.estimates.seconds_per_step`: passes repeated until a timed call takes
    tens of milliseconds, after one untimed pass that also runs the determinism check), per input."""
    probe = train.x[:MEASURE_PROBE]
    per_input = seconds_per_step(lambda passes: [model_outputs(model, probe) for _ in range(passes)], 1) / len(probe)
    return PhaseEstimate(
        f"measure: the model's outputs on {len(train) + len(test):,} inputs",
        per_input * (len(train) + len(test)),
        0,
        "a smaller --m or a smaller test set; a .pt2 program runs slower than the same model as a module",
    )


def _drawn_subset(train: Dataset):
    """The ``--m`` subset record of the prepared S when it holds fewer points than the data given, else None."""
    subset = train.info.get("subset")
    return subset if subset and subset["of"] > subset["m"] else None


def coverage_notes(train: Dataset) -> list:
    """What the numbers are about when ``--m`` drew S from a larger training set: the family bounds speak of a
    classifier fit to the m points of S, and only the hold-out bound speaks of MODEL (trained on all of them)."""
    subset = _drawn_subset(train)
    if subset is None:
        return []
    return [
        f"--m drew {subset['m']:,} of the {subset['of']:,} training examples given: every family's bound "
        f"(Q*, the stochastic network, the compressed model) is about a classifier trained on those "
        f"{subset['m']:,} points, not about MODEL trained on all of them; the hold-out bound is the one about MODEL"
    ]


def _subset_hint(train: Dataset, train_error: float) -> str:
    """The end of a refusal for a training error on an ``--m`` subset: how to certify the set MODEL fits."""
    subset = _drawn_subset(train)
    if subset is None or train_error == 0.0:
        return ""
    return (
        f"; --m drew {subset['m']:,} of the {subset['of']:,} training examples given (seed {subset['seed']}), "
        "a subset the model may not fit exactly: pass exactly the model's training set (without --m), or "
        f"train the model on pacbayes.certified_subset(train, m={subset['m']}, seed={subset['seed']})"
    )


def _not_applying(names, context: RunContext, report: bool) -> dict:
    """family -> why it cannot speak about the model, checked for every family before any of them runs;
    unless ``report``, the first such family's InputError is raised instead."""
    reasons = {}
    for name in names:
        try:
            FAMILIES[name].check(context)
        except InputError as err:
            if not report:
                raise
            reasons[name] = str(err)
    return reasons


def _with_clean_label_versions(bounds: list, fraction: float, outputs: int) -> list:
    """``bounds``, then each certified one converted to clean labels (K classes); see :func:`_clean_label_version`."""
    classes = 2 if outputs == 1 else outputs
    pairs = [_clean_label_version(b, fraction, classes) if b.certified else (b, None) for b in bounds]
    return [b for b, _ in pairs] + [clean for _, clean in pairs if clean is not None]


def _clean_label_version(b: BoundResult, fraction: float, classes: int) -> tuple:
    """(b, b converted to clean labels), or, when b lies below the noise floor and so cannot hold,
    (b no longer certified, with the reason in ``details["no_clean_labels"]``, None): a corrupted-label
    bound below the error every classifier has on such labels failed (or the labels were not corrupted as
    stated), so neither it nor a clean-label number is certified."""
    try:
        value = clean_distribution_bound(b.value, fraction, classes)
    except InputError as err:
        return replace(b, certified=False, details={**b.details, "no_clean_labels": str(err)}), None
    clean = replace(
        b,
        name=f"{b.name}-clean-labels",
        value=value,
        certifies=b.certifies + ", on clean labels",
        assumptions=b.assumptions
        + (
            f"each training label was, independently of x and of the "
            f"others, replaced with probability {fraction:g} by a "
            f"uniformly random one of {classes} classes",
        ),
        details={"converted_from": b.name, "corruption": fraction},
    )
    return b, clean
