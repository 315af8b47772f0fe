"""Checking a file of generalisation claims (``pacbayes check CLAIMS.toml``).

A claims file is TOML with one ``[[claim]]`` table per claim. Every claim runs
:func:`pacbayes.certification.certify` on one model and one data set and compares one bound with a
threshold, or with the same bound under other settings:

    [[claim]]
    name = "bound on 500 clean points is below 0.45"
    model = "demo"                 # or a model file (path relative to the claims file)
    m = 500
    bound = "marginal"             # bound family, or "holdout"; kind = "certified" (default) or "estimate"
    at_most = 0.45                 # or at_least = ...

    [[claim]]
    name = "bound with 50% label noise > bound with 0%"
    model = "demo"
    m = 200
    corrupt = 0.5
    compare = { op = ">", with = { corrupt = 0.0 } }

The keys of a claim (:func:`claim_keys`; a top-level ``[defaults]`` table sets them for every claim)
are the claim's own (:data:`OWN_SETTINGS`: the model, its data, the bound read), every run-wide field
of :class:`~pacbayes.certification.CertifyOptions` (``delta``, ``m``, ``negative_classes``, ``bounds``,
...) and every bound family's option by its ``pacbayes certify`` flag name with underscores
(``kernel_type``, ``jitter``, ``prior_split``, ...). Both of the latter are generated from the code
that makes the certify options, so a new option is a new key. ``bounds`` (the families certify
runs, which split delta) defaults to the claim's own ``bound``. ``bound = "holdout"`` reads the
hold-out bound on the test set, the one number about the model itself, from a certify run of
``bounds`` (default: certify's own, marginal). In ``compare``, ``op`` is one of < <= > >= and
``with`` lists the settings that differ on the right-hand side. Model and data paths are relative
to the claims file.

Every claim is checked when the file is read: an unknown key, a value of the wrong type or range,
or keys that contradict each other make that claim an ERROR row, with the reason; so does a claim
that fails while it runs (a missing model file, data the bound refuses). The other claims still
run. Only a file that is not a claims file at all (not TOML, no claims) is refused as a whole.

A claims file can never allow unpickling: a ``trust_pickle`` key anywhere in it is refused. Only
the command line can (``pacbayes check --trust-pickle``, ``check_claims(..., trust_pickle=True)``).
Likewise an ``architecture`` key names code to import and run ("file.py:Class", "module:Class"),
built with the ``kwargs`` table as keyword arguments: a claims file that has one is refused, before
anything runs, unless the command line allows it (``pacbayes check --trust-code``,
``check_claims(..., trust_code=True)``).

Each certify report is cached by content hash (:mod:`pacbayes.testing`) when a cache folder is
given, so re-checking unchanged claims is cheap. A cached report is trusted only after
:func:`pacbayes.verification.check_report` recomputes its numbers and hashes its data; one that
fails is reported with a :class:`~pacbayes.testing.CacheWarning` and computed again.
"""

import math
import numbers
import operator
import os
import tomllib
import typing
from dataclasses import dataclass, field, fields

import torch

from pacbayes import arguments, call_arguments, checks
from pacbayes.certification import CertifyOptions, prepare_data
from pacbayes.data.embedded import NAME as EMBEDDED_NAME
from pacbayes.demo import demo_network, train_to_zero_error
from pacbayes.errors import InputError, PacBayesError
from pacbayes.families import FAMILIES, cli_fields, settings_attribute, settings_from_keys
from pacbayes.models import load_model, require_trusted_code
from pacbayes.options import checked_value, value_kind
from pacbayes.report_cache import cached_report
from pacbayes.testing import family_bound

OPERATORS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
HOLDOUT_BOUND = "holdout"
OWN_SETTINGS = {
    "model": ("demo", '"demo" (the demo network, trained to zero error on the claim\'s data) or a model file'),
    "width": (512, "width of the demo network"),
    "depth": (2, "hidden layers of the demo network"),
    "architecture": (None, '"module:Class" or "file.py:Class" for a state_dict model file (needs --trust-code)'),
    "kwargs": (None, "a table of keyword arguments for architecture"),
    "train": ("mnist-embedded:train", "training data: a data set name or a path"),
    "test": ("mnist-embedded:test", "held-out data: a data set name or a path"),
    "bound": ("marginal", 'the bound read: a family name, or "holdout" (the model\'s hold-out bound)'),
    "kind": ("certified", '"certified" or "estimate" (a family\'s bound only)'),
}
TESTS = ("at_most", "at_least", "compare")
CALLERS_OPTIONS = ("quiet", "max_minutes", "cache_dir")  # how the caller runs a claim, not what it claims
TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}


def option_fields() -> dict:
    """key -> field of every run-wide CertifyOptions field a claim sets: all but ``quiet``, ``max_minutes`` and
    ``cache_dir`` (the caller's) and the per-family settings (whose options are keys one by one,
    :func:`family_fields`)."""
    per_family = {settings_attribute(name) for name in FAMILIES}
    return {f.name: f for f in fields(CertifyOptions) if f.name not in CALLERS_OPTIONS and f.name not in per_family}


def family_fields() -> dict:
    """key -> settings field of every registered family's user option (its certify flag, underscored)."""
    return {f.metadata["cli"].key: f for family in FAMILIES.values() for f in cli_fields(family.settings_type)}


def claim_keys() -> set:
    """Every key a claim may hold."""
    return set(OWN_SETTINGS) | set(option_fields()) | set(family_fields()) | {"name", *TESTS}


def default_settings() -> dict:
    """A claim's settings before its own keys: its own defaults and every run-wide option's
    (``bounds`` None: derived from ``bound``, :func:`families_run`); family options only where given."""
    own = {key: default for key, (default, _) in OWN_SETTINGS.items()}
    return {**own, **{key: None if key == "bounds" else f.default for key, f in option_fields().items()}}


@dataclass
class Claim:
    """One ``[[claim]]`` table as read: its checked settings and test, or the problem that stops it.

    ``source`` is the table merged with ``[defaults]``, as written (the code it names is checked
    against ``--trust-code`` even when the claim has a problem)."""

    name: str
    settings: dict
    test: dict
    source: dict
    problem: str | None = None


@dataclass
class ClaimResult:
    """The outcome of one claim: the value, what it was compared with, and whether it held.

    A claim that could not be checked has ``error`` (the reason), ``passed`` False and no value."""

    name: str
    passed: bool
    value: float | None
    op: str
    reference: float | None
    reference_kind: str
    bound_name: str
    settings: dict
    reference_settings: dict | None = None
    details: dict = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


MAX_CLAIMS_BYTES = 16 * 2**20
"""Largest claims file read (a claims file is a few KiB of TOML)."""


def _document(path: str) -> dict:
    """The parsed TOML of a claims file (InputError, in one line, when it cannot be read or parsed)."""
    if not os.path.lexists(path):
        raise InputError(f"claims file {path} does not exist; pass the path of a TOML claims file")
    try:
        with arguments.open_regular(path, "claims file", MAX_CLAIMS_BYTES) as stream:  # a FIFO would block
            return checks.parsed(tomllib.load, stream, f"claims file {path}")
    except tomllib.TOMLDecodeError as err:
        raise InputError(f"claims file {path} is not valid TOML: {err}") from err
    except UnicodeDecodeError as err:
        raise InputError(
            f"claims file {path} is not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8 TOML"
        ) from None
    except OSError as err:
        raise InputError(
            f"cannot read claims file {path} ({err.strerror or err}); pass the path of a TOML claims file"
        ) from None


def load_claims(path: str) -> list:
    """Parse a claims file into a list of :class:`Claim`, each checked (a bad one carries its ``problem``).

    A file that is not a claims file (unreadable, not TOML, no ``[[claim]]`` tables, other top-level
    keys) or that sets ``trust_pickle`` raises :class:`InputError` before anything runs."""
    document = _document(path)
    pickles = list(_trust_pickle_keys(document))
    if pickles:
        raise InputError(
            f"claims file {path} sets trust_pickle ({', '.join(pickles)}); a claims file may "
            "not allow unpickling (it runs code from the model file): remove the key and pass "
            "--trust-pickle to pacbayes check if you trust the model files"
        )
    defaults = document.get("defaults", {})
    claims = document.get("claim")
    unknown_top = set(document) - {"defaults", "claim"}
    if unknown_top:
        raise InputError(
            f"claims file {path}: unknown top-level keys {sorted(unknown_top)}; use [defaults] and [[claim]] tables"
        )
    if not isinstance(defaults, dict):
        raise InputError(f"claims file {path}: defaults must be a [defaults] table, got {defaults!r}")
    if not isinstance(claims, list) or not claims:
        raise InputError(f"claims file {path} has no [[claim]] tables; add at least one claim")
    base = os.path.dirname(os.path.abspath(path))
    return [_claim(number, claim, defaults, base) for number, claim in enumerate(claims, start=1)]


def _claim(number: int, table, defaults: dict, base: str) -> Claim:
    """One claim table (merged with the defaults) checked; a problem is kept on the Claim, not raised."""
    source = {**defaults, **table} if isinstance(table, dict) else {}
    name = source.get("name")
    label = name if isinstance(name, str) and name else f"claim {number}"
    try:
        if not isinstance(table, dict):
            raise InputError(f"claim {number} is {table!r}, not a [[claim]] table")
        if "name" in source and name != label:
            raise InputError(f"claim {number}: name must be a non-empty string, got {name!r}")
        settings, test = _parsed(source, label, base)
    except InputError as err:
        return Claim(label, {}, {}, source, problem=str(err))
    return Claim(label, settings, test, source)


def _parsed(source: dict, label: str, base: str) -> tuple:
    """(settings, test) of a claim table, every value checked (InputError naming the claim and the key)."""
    unknown = set(source) - claim_keys()
    if unknown:
        raise InputError(f"claim '{label}': unknown keys {sorted(unknown)}; allowed: {sorted(claim_keys())}")
    tests = [key for key in TESTS if key in source]
    if len(tests) != 1:
        raise InputError(f"claim '{label}': give exactly one of at_most, at_least, compare (found {tests or 'none'})")
    given = {key: value for key, value in source.items() if key not in TESTS and key != "name"}
    settings = _checked_settings({**default_settings(), **given}, label, base, "", list(given))
    if tests == ["compare"]:
        return settings, {"compare": _checked_compare(source["compare"], settings, label, base)}
    threshold = source[tests[0]]
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise InputError(f"claim '{label}': {tests[0]} must be an error rate in [0, 1], got {threshold!r}")
    return settings, {tests[0]: threshold}


def _checked_compare(compare, settings: dict, label: str, base: str) -> dict:
    """A claim's compare table, its ``with`` settings checked as the claim's own are."""
    if (
        not isinstance(compare, dict)
        or compare.get("op") not in OPERATORS
        or not isinstance(compare.get("with"), dict)
        or not compare["with"]
    ):
        raise InputError(
            f"claim '{label}': compare needs op (one of {' '.join(OPERATORS)}) and a non-empty "
            "'with' table of the settings that differ, e.g. "
            'compare = { op = ">", with = { corrupt = 0.0 } }'
        )
    bad = set(compare["with"]) - (claim_keys() - {"name", *TESTS})
    if bad:
        raise InputError(f"claim '{label}': compare.with has unknown settings {sorted(bad)}")
    changed = _checked_settings({**settings, **compare["with"]}, label, base, "compare.with.", list(compare["with"]))
    return {**compare, "with": {key: changed[key] for key in compare["with"]}}


def _trust_pickle_keys(node, where: str = ""):
    """The dotted places in a parsed TOML document that hold a trust_pickle key."""
    if isinstance(node, dict):
        for key, value in node.items():
            place = f"{where}.{key}" if where else str(key)
            if key == "trust_pickle":
                yield place
            yield from _trust_pickle_keys(value, place)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _trust_pickle_keys(value, f"{where}[{i}]")


def _checked_settings(settings: dict, label: str, base: str, prefix: str, keys: list) -> dict:
    """``settings`` with the values of ``keys`` type-checked and their paths resolved, then checked as a
    whole (:func:`_check_coherent`); InputError naming the claim and the key."""
    checked = dict(settings)
    options, families = option_fields(), family_fields()
    for key in keys:
        where = f"claim '{label}': {prefix}{key}"
        if key in families:
            checked[key] = checked_value(families[key], settings[key], where)
            if families[key].metadata["cli"].path and checked[key] is not None:
                checked[key] = os.path.join(base, checked[key])  # relative to the claims file
        elif key in options:
            checked[key] = _typed_option(options[key], settings[key], where, default_settings()[key])
        else:
            checked[key] = _own_value(key, settings[key], where, base)
    _check_coherent(checked, f"claim '{label}': {prefix}")
    return checked


def _typed_option(f, value, where: str, default):
    """``value`` for the CertifyOptions field ``f`` as TOML gives it (a list for a tuple field), checked
    against the field's type; None only where the claim's default is None."""
    if value is None and default is None:
        return None
    kind = value_kind(f)
    if typing.get_origin(kind) is tuple:
        (element, *_) = typing.get_args(kind) or (object,)
        if not isinstance(value, list):
            raise InputError(f"{where} must be a list of {TYPE_NAMES.get(element, 'values')}, got {value!r}")
        return tuple(_typed_option_item(element, item, f"{where}[{i}]") for i, item in enumerate(value))
    return _typed_option_item(kind, value, where)


def _typed_option_item(kind: type, value, where: str):
    """One value of type ``kind`` (bool, int, a finite float, str): InputError naming ``where`` otherwise."""
    fits = {
        bool: isinstance(value, bool),
        int: isinstance(value, numbers.Integral) and not isinstance(value, bool),
        float: isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value),
        str: isinstance(value, str),
    }
    if not fits.get(kind, True):
        raise InputError(f"{where} must be {TYPE_NAMES[kind]}, got {value!r}")
    return float(value) if kind is float else value


def _own_value(key: str, value, where: str, base: str):
    """A value of one of the claim's own keys (:data:`OWN_SETTINGS`), checked, paths resolved against ``base``."""
    if key in ("model", "train", "test"):
        if not isinstance(value, str) or not value:
            what = '"demo" or a path' if key == "model" else "a data set name or a path"
            raise InputError(f"{where} must be a string ({what}, relative to the claims file), got {value!r}")
        return _resolve_model(value, base) if key == "model" else _resolve_data(value, base)
    if key == "architecture" and value is not None and not isinstance(value, str):
        raise InputError(f"{where} must be a string 'module:Class' or 'file.py:Class', got {value!r}")
    if key == "kwargs" and value is not None and not isinstance(value, dict):
        raise InputError(f"{where} must be a table of keyword arguments, e.g. kwargs = {{ width = 64 }}, got {value!r}")
    if key in ("width", "depth"):
        checks.integer(value, where, minimum=1)
    if key == "bound" and value not in (*FAMILIES, HOLDOUT_BOUND):
        raise InputError(f'{where} must be a bound family or "{HOLDOUT_BOUND}" ({", ".join(FAMILIES)}), got {value!r}')
    if key == "kind" and value not in ("certified", "estimate"):
        raise InputError(f'{where} must be "certified" or "estimate", got {value!r}')
    return value


def _check_coherent(settings: dict, prefix: str) -> None:
    """Keys that contradict each other, and the certify options' values (as certify checks them)."""
    if settings["bound"] == HOLDOUT_BOUND and settings["kind"] != "certified":
        raise InputError(f'{prefix}kind: the hold-out bound is certified only; remove kind = "{settings["kind"]}"')
    if settings["kwargs"] is not None and settings["architecture"] is None:
        raise InputError(
            f"{prefix}kwargs: keyword arguments are for an architecture; add architecture or remove kwargs"
        )
    bounds = settings["bounds"] or ()
    unknown = [name for name in bounds if name not in FAMILIES]
    if unknown:
        raise InputError(
            f"{prefix}bounds: unknown bound family {', '.join(unknown)}; choose from {', '.join(FAMILIES)}"
        )
    if bounds and settings["bound"] in FAMILIES and settings["bound"] not in bounds:
        raise InputError(f"{prefix}bounds: it does not run the claim's bound {settings['bound']!r}; add it to bounds")
    call_arguments.options_arguments(certify_options(settings), prefix)


def families_run(settings: dict) -> tuple:
    """The bound families certify runs for a claim: ``bounds``, else the claim's ``bound``, else (for the
    hold-out bound) certify's default families."""
    if settings["bounds"]:
        return tuple(settings["bounds"])
    return (settings["bound"],) if settings["bound"] in FAMILIES else option_fields()["bounds"].default


def certify_options(settings: dict, quiet: bool = True) -> CertifyOptions:
    """The CertifyOptions of a claim's settings: its run-wide options and its families' options."""
    run_wide = {key: settings[key] for key in option_fields()}
    options = CertifyOptions(**{**run_wide, "bounds": families_run(settings)}, quiet=quiet)
    return options.with_settings(settings_from_keys(settings))


def _resolve_model(model: str, base: str) -> str:
    """``model`` ("demo" or a path) with a relative path made relative to ``base``."""
    return model if model == "demo" or os.path.isabs(model) else os.path.join(base, model)


def _resolve_data(spec: str, base: str) -> str:
    """A data spec (``NAME_OR_PATH[:train|:test]``) with a relative path made relative to ``base``."""
    name, _, split = spec.rpartition(":")
    if not (name and split in ("train", "test")):
        name, split = spec, ""
    if name == EMBEDDED_NAME or os.path.isabs(name):
        return spec
    return os.path.join(base, name) + (f":{split}" if split else "")


class ClaimChecker:
    """Evaluates claims, reusing each certify report (and each trained demo model) within a run.

    load_data: turns a data spec string (the claim's ``train`` / ``test``) into a Dataset, e.g.
    :func:`pacbayes.cli.load_data_spec`.
    """

    def __init__(
        self, load_data, cache_dir=False, quiet: bool = True, trust_pickle: bool = False, trust_code: bool = False
    ):
        self.load_data, self.cache_dir, self.quiet = load_data, cache_dir, quiet
        self.trust_pickle = checks.flag(trust_pickle, "trust_pickle")  # from the caller, never the file
        self.trust_code = checks.flag(trust_code, "trust_code")
        self._reports: dict = {}

    def value(self, settings: dict) -> tuple:
        """(bound value, bound name, report dict) for one set of settings."""
        report = self.report(settings)
        if settings["bound"] == HOLDOUT_BOUND:
            return report["baselines"]["holdout_bound"], HOLDOUT_BOUND, report
        record = family_bound(report, settings["bound"], settings["kind"])
        return record["value"], record["name"], report

    def report(self, settings: dict) -> dict:
        """The certify report of one set of settings; claims reading other bounds of one run share it."""
        run = {key: value for key, value in settings.items() if key not in ("bound", "kind")}
        key = repr(sorted({**run, "bounds": families_run(settings)}.items()))
        if key not in self._reports:
            self._reports[key] = self._compute(settings)
        return self._reports[key]

    def _compute(self, settings: dict) -> dict:
        train, test = self.load_data(settings["train"]), self.load_data(settings["test"])
        options = certify_options(settings, quiet=self.quiet)
        if settings["model"] == "demo":
            torch.manual_seed(settings["seed"])
            model = demo_network(width=settings["width"], depth=settings["depth"])
            fitted, _, _ = prepare_data(model, train, test, options)
            train_to_zero_error(model, fitted, seed=settings["seed"], max_epochs=1000, quiet=self.quiet)
        else:
            require_trusted_code(settings["architecture"], "the claims file", self.trust_code)
            model = load_model(
                settings["model"],
                architecture=settings["architecture"],
                kwargs=settings["kwargs"],
                trust_pickle=self.trust_pickle,
            )
        report, _ = cached_report(model, train, test, options, cache_dir=self.cache_dir)
        return report

    def check(self, claim: Claim) -> ClaimResult:
        """The claim's value compared with its threshold or its other side (raises when it cannot run)."""
        if claim.problem:
            raise InputError(claim.problem)
        value, bound_name, report = self.value(claim.settings)
        details = {"m": report["m"], "train_error": report["train_error"], "test_error": report["test_error"]}
        row = {"name": claim.name, "value": value, "bound_name": bound_name, "settings": claim.settings}
        if "compare" in claim.test:
            op = claim.test["compare"]["op"]
            other = {**claim.settings, **claim.test["compare"]["with"]}
            reference, _, _ = self.value(other)
            return ClaimResult(
                **row,
                passed=OPERATORS[op](value, reference),
                op=op,
                reference=reference,
                reference_kind="bound with " + _describe(claim.test["compare"]["with"]),
                reference_settings=other,
                details=details,
            )
        op, reference = _threshold(claim.test)
        return ClaimResult(
            **row,
            passed=OPERATORS[op](value, reference),
            op=op,
            reference=reference,
            reference_kind="threshold",
            details=details,
        )


def _threshold(test: dict) -> tuple:
    """(op, reference) of an at_most / at_least test."""
    return ("<=", float(test["at_most"])) if "at_most" in test else (">=", float(test["at_least"]))


def _refuse_untrusted_code(path: str, claims: list, trust_code: bool) -> None:
    """Refuse, before any claim runs, a claims file naming an architecture unless the caller trusts its code."""
    for claim in claims:
        compare = claim.source.get("compare")
        other = compare.get("with") if isinstance(compare, dict) else None
        named = [claim.source.get("architecture"), other.get("architecture") if isinstance(other, dict) else None]
        for architecture in named:
            require_trusted_code(architecture, f"claims file {path} (claim '{claim.name}')", trust_code)


def _describe(changes: dict) -> str:
    return ", ".join(f"{k} = {v}" for k, v in changes.items())


def check_claims(
    path: str, load_data, cache_dir=False, quiet: bool = True, trust_pickle: bool = False, trust_code: bool = False
) -> list:
    """Every claim of the file, checked in order; a list of :class:`ClaimResult`.

    A file that is not a claims file raises InputError before anything runs. A claim that is
    malformed, or that fails while it is checked (a missing model file, data its bound refuses), is
    an ERROR row; the others still run. trust_pickle: allow unpickling whole-module model files;
    trust_code: allow the file's ``architecture`` keys (ModelLoadError before anything runs
    otherwise). Both only from the caller, never the file.
    """
    checker = ClaimChecker(
        load_data, cache_dir=cache_dir, quiet=quiet, trust_pickle=trust_pickle, trust_code=trust_code
    )
    claims = load_claims(path)
    _refuse_untrusted_code(path, claims, checker.trust_code)
    results = []
    for claim in claims:
        try:
            results.append(checker.check(claim))
        except (PacBayesError, OSError) as err:
            results.append(_error_row(claim, err))
    return results


def _error_row(claim: Claim, err: Exception) -> ClaimResult:
    """The ERROR row of a claim that could not be checked, with the reason."""
    reason = " ".join(str(err).split()) or type(err).__name__
    op, reference, kind = "", None, "threshold"
    if "compare" in claim.test:
        op, kind = claim.test["compare"]["op"], "bound with " + _describe(claim.test["compare"]["with"])
    elif claim.test:
        op, reference = _threshold(claim.test)
    return ClaimResult(
        name=claim.name,
        passed=False,
        value=None,
        op=op,
        reference=reference,
        reference_kind=kind,
        bound_name=str(claim.settings.get("bound", "")),
        settings=claim.settings,
        error=reason,
    )


def render_table(results: list) -> str:
    """A fixed-width table: claim, value, comparison, reference, PASS/FAIL."""
    width = max(len("claim"), *(len(r.name) for r in results))
    lines = [f"  {'claim':<{width}}  {'bound':<20} {'value':>8}  op  {'reference':>9}  {'':<6} compared with"]
    for r in results:
        value = "" if r.value is None else f"{r.value:.4f}"
        reference = "" if r.reference is None else f"{r.reference:.4f}"
        outcome = "ERROR" if r.error else "PASS" if r.passed else "FAIL"
        lines.append(
            f"  {r.name:<{width}}  {r.bound_name:<20} {value:>8}  {r.op:<2}  {reference:>9}  "
            f"{outcome:<6} {r.error if r.error else r.reference_kind}"
        )
    errors = sum(r.error is not None for r in results)
    failed = sum(not r.passed for r in results) - errors
    lines.append("")
    lines.append(
        f"  {len(results) - failed - errors} of {len(results)} claims hold"
        + (f"; {failed} FAILED" if failed else "")
        + (f"; {errors} could not be checked (ERROR)" if errors else "")
    )
    return "\n".join(lines)


__all__ = [
    "Claim",
    "ClaimResult",
    "ClaimChecker",
    "HOLDOUT_BOUND",
    "check_claims",
    "claim_keys",
    "certify_options",
    "load_claims",
    "render_table",
    "OPERATORS",
]
