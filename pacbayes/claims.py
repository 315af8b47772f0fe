"""Checking a file of generalisation claims (``pacbayes check CLAIMS.toml``).

A claims file is TOML with one ``[[claim]]`` table per claim. Every claim runs
:func:`pacbayes.certification.certify` on one model and one data set and compares one bound with a
threshold, or with the same bound under other settings:

    [[claim]]
    name = "bound on 500 clean points is below 0.45"
    model = "demo"                 # or a model file (path relative to the claims file)
    m = 500
    bound = "marginal"             # bound family; kind = "certified" (default) or "estimate"
    at_most = 0.45                 # or at_least = ...

    [[claim]]
    name = "bound with 50% label noise > bound with 0%"
    model = "demo"
    m = 200
    corrupt = 0.5
    compare = { op = ">", with = { corrupt = 0.0 } }

Keys of a claim (defaults in brackets; a top-level ``[defaults]`` table overrides them for every
claim): name; model ("demo": the demo network of :mod:`pacbayes.demo`, with ``width`` [512]
and ``depth`` [2], trained to zero error on the claim's own training data with the claim's
seed); architecture (for state_dict model files, as ``pacbayes certify``); train
["mnist-embedded:train"]; test ["mnist-embedded:test"]; m; corrupt [0]; seed [0]; delta [0.05];
bound ["marginal"]; kind ["certified"]; exactly one of at_most, at_least, compare; and any bound
family's option by its ``pacbayes certify`` flag name with underscores (``kernel_type``,
``jitter``, ``objective``, ``prior_split``, ``subspace_dim``, ...; defaults as there). In ``compare``,
``op`` is one of < <= > >= and ``with`` lists the settings that differ on the right-hand side.
Model and data paths are relative to the claims file. Every value is type-checked when the file is
read (a bad one is refused naming the claim and the key, before anything runs).

A claims file can never allow unpickling: a ``trust_pickle`` key anywhere in it is refused. Only
the command line can (``pacbayes check --trust-pickle``, ``check_claims(..., trust_pickle=True)``).
Likewise an ``architecture`` key names code to import and run ("file.py:Class", "module:Class"):
a claims file that has one is refused, before anything runs, unless the command line allows it
(``pacbayes check --trust-code``, ``check_claims(..., trust_code=True)``).

A claim that cannot be checked (a missing model file, data the bound refuses, ...) becomes an
ERROR row, with the reason; the other claims still run.

Each certify report is cached by content hash (:mod:`pacbayes.testing`) when a cache folder is
given, so re-checking unchanged claims is cheap. A cached report is trusted only after
:func:`pacbayes.verification.check_report` recomputes its numbers and hashes its data; one that
fails is reported with a :class:`~pacbayes.testing.CacheWarning` and computed again.
"""

import operator
import os
import tomllib
from dataclasses import dataclass, field
from typing import Optional

import torch

from pacbayes import arguments, checks
from pacbayes.certification import CertifyOptions, prepare_data
from pacbayes.data.embedded import NAME as EMBEDDED_NAME
from pacbayes.demo import demo_network, train_to_zero_error
from pacbayes.errors import InputError, PacBayesError
from pacbayes.families import FAMILIES, cli_fields, settings_from_keys
from pacbayes.options import checked_value
from pacbayes.models import load_model, require_trusted_code
from pacbayes.testing import cached_report, family_bound

OPERATORS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
SETTINGS = {
    "model": "demo",
    "width": 512,
    "depth": 2,
    "architecture": None,
    "train": "mnist-embedded:train",
    "test": "mnist-embedded:test",
    "m": None,
    "corrupt": 0.0,
    "seed": 0,
    "delta": 0.05,
    "bound": "marginal",
    "kind": "certified",
}
FAMILY_KEYS = {f.metadata["cli"].key: f for family in FAMILIES.values() for f in cli_fields(family.settings_type)}
CLAIM_KEYS = set(SETTINGS) | set(FAMILY_KEYS) | {"name", "at_most", "at_least", "compare"}


@dataclass
class ClaimResult:
    """The outcome of one claim: the value, what it was compared with, and whether it held.

    A claim that could not be checked has ``error`` (the reason), ``passed`` False and no value."""

    name: str
    passed: bool
    value: Optional[float]
    op: str
    reference: Optional[float]
    reference_kind: str
    bound_name: str
    settings: dict
    reference_settings: Optional[dict] = None
    details: dict = field(default_factory=dict)
    error: Optional[str] = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def load_claims(path: str) -> list:
    """Parse and validate a claims file; returns a list of (name, settings, test) tuples.

    Every problem is an :class:`InputError` naming the claim and the key, raised before anything runs."""
    try:
        with open(path, "rb") as stream:
            document = checks.parsed(tomllib.load, stream, f"claims file {path}")
    except FileNotFoundError as err:
        raise InputError(f"claims file {path} does not exist; pass the path of a TOML claims file") from err
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
    parsed = []
    for number, claim in enumerate(claims, start=1):
        if not isinstance(claim, dict):
            raise InputError(f"claims file {path}: claim {number} is {claim!r}, not a [[claim]] table")
        merged = {**defaults, **claim}
        label = merged.get("name", f"claim {number}")
        if not isinstance(label, str) or not label:
            raise InputError(f"claim {number}: name must be a non-empty string, got {label!r}")
        unknown = set(merged) - CLAIM_KEYS
        if unknown:
            raise InputError(f"{label}: unknown keys {sorted(unknown)}; allowed: {sorted(CLAIM_KEYS)}")
        tests = [key for key in ("at_most", "at_least", "compare") if key in merged]
        if len(tests) != 1:
            raise InputError(f"{label}: give exactly one of at_most, at_least, compare (found {tests or 'none'})")
        settings = {**SETTINGS, **{k: v for k, v in merged.items() if k in SETTINGS or k in FAMILY_KEYS}}
        settings = _checked_settings(settings, label, base, keys=list(settings))
        test = {key: merged[key] for key in tests}
        if "compare" in test:
            compare = test["compare"]
            if (
                not isinstance(compare, dict)
                or compare.get("op") not in OPERATORS
                or not isinstance(compare.get("with"), dict)
                or not compare["with"]
            ):
                raise InputError(
                    f"{label}: compare needs op (one of {' '.join(OPERATORS)}) and a non-empty "
                    "'with' table of the settings that differ, e.g. "
                    'compare = { op = ">", with = { corrupt = 0.0 } }'
                )
            bad = set(compare["with"]) - set(SETTINGS) - set(FAMILY_KEYS)
            if bad:
                raise InputError(f"{label}: compare.with has unknown settings {sorted(bad)}")
            changed = _checked_settings(
                {**settings, **compare["with"]}, label, base, prefix="compare.with.", keys=compare["with"]
            )
            test["compare"] = {**compare, "with": {key: changed[key] for key in compare["with"]}}
        else:
            threshold = test[tests[0]]
            if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
                raise InputError(f"claim '{label}': {tests[0]} must be an error rate in [0, 1], got {threshold!r}")
        parsed.append((label, settings, test))
    return parsed


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


def _checked_settings(settings: dict, label: str, base: str, prefix: str = "", keys=None) -> dict:
    """Type-check a claim's settings (InputError naming the claim and the key) and resolve its paths."""

    def name(key):
        return f"claim '{label}': {prefix}{key}"

    checked = dict(settings)
    for key in SETTINGS if keys is None else keys:
        value = settings[key]
        if key in FAMILY_KEYS:
            checked[key] = checked_value(FAMILY_KEYS[key], value, name(key))
            if FAMILY_KEYS[key].metadata["cli"].path and checked[key] is not None:
                checked[key] = os.path.join(base, checked[key])  # relative to the claims file
        if key in ("model", "train", "test") and (not isinstance(value, str) or not value):
            what = '"demo" or a path' if key == "model" else "a data set name or a path"
            raise InputError(f"{name(key)} must be a string ({what}, relative to the claims file), got {value!r}")
        if key == "architecture" and value is not None and not isinstance(value, str):
            raise InputError(f"{name(key)} must be a string 'module:Class' or 'file.py:Class', got {value!r}")
        if key in ("width", "depth"):
            arguments.integer(value, name(key), minimum=1)
        if key == "m":
            arguments.integer(value, name(key), minimum=2, optional=True)
        if key == "seed":
            arguments.integer(value, name(key), minimum=0)
        if key == "corrupt":
            checked[key] = arguments.real(value, name(key), low=0.0, high=1.0)
        if key == "delta":
            checked[key] = arguments.real(value, name(key), low=0.0, high=1.0, open_low=True, open_high=True)
        if key == "bound" and value not in FAMILIES:
            raise InputError(f"{name(key)} must be a bound family ({', '.join(FAMILIES)}), got {value!r}")
        if key == "kind" and value not in ("certified", "estimate"):
            raise InputError(f'{name(key)} must be "certified" or "estimate", got {value!r}')
    if "model" in checked:
        checked["model"] = _resolve_model(checked["model"], base)
    for key in ("train", "test"):
        if key in checked:
            checked[key] = _resolve_data(checked[key], base)
    return checked


def _resolve_model(model, base: str) -> str:
    if not isinstance(model, str):
        raise InputError(f'model must be "demo" or a file path, got {model!r}')
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
        self.trust_pickle = arguments.flag(trust_pickle, "trust_pickle")  # from the caller, never the file
        self.trust_code = arguments.flag(trust_code, "trust_code")
        self._values: dict = {}

    def value(self, settings: dict) -> tuple:
        """(bound value, bound name, report dict) for one set of settings."""
        key = repr(sorted(settings.items()))
        if key not in self._values:
            self._values[key] = self._compute(settings)
        return self._values[key]

    def _compute(self, settings: dict) -> tuple:
        train, test = self.load_data(settings["train"]), self.load_data(settings["test"])
        options = CertifyOptions(
            bounds=(settings["bound"],),
            delta=settings["delta"],
            m=settings["m"],
            seed=settings["seed"],
            corrupt=float(settings["corrupt"]),
            quiet=self.quiet,
            **settings_from_keys(settings),
        )
        if settings["model"] == "demo":
            torch.manual_seed(settings["seed"])
            model = demo_network(width=settings["width"], depth=settings["depth"])
            fitted, _, _ = prepare_data(model, train, test, options)
            train_to_zero_error(model, fitted, seed=settings["seed"], max_epochs=1000, quiet=self.quiet)
        else:
            require_trusted_code(settings["architecture"], "the claims file", self.trust_code)
            model = load_model(settings["model"], architecture=settings["architecture"], trust_pickle=self.trust_pickle)
        report, _ = cached_report(model, train, test, options, cache_dir=self.cache_dir)
        record = family_bound(report, settings["bound"], settings["kind"])
        return record["value"], record["name"], report

    def check(self, name: str, settings: dict, test: dict) -> ClaimResult:
        value, bound_name, report = self.value(settings)
        details = {"m": report["m"], "train_error": report["train_error"], "test_error": report["test_error"]}
        if "compare" in test:
            op = test["compare"]["op"]
            other = {**settings, **test["compare"]["with"]}
            reference, _, _ = self.value(other)
            return ClaimResult(
                name=name,
                passed=OPERATORS[op](value, reference),
                value=value,
                op=op,
                reference=reference,
                reference_kind="bound with " + _describe(test["compare"]["with"]),
                bound_name=bound_name,
                settings=settings,
                reference_settings=other,
                details=details,
            )
        op, reference = ("<=", test["at_most"]) if "at_most" in test else (">=", test["at_least"])
        return ClaimResult(
            name=name,
            passed=OPERATORS[op](value, reference),
            value=value,
            op=op,
            reference=float(reference),
            reference_kind="threshold",
            bound_name=bound_name,
            settings=settings,
            details=details,
        )


def _refuse_untrusted_code(path: str, claims: list, trust_code: bool) -> None:
    """Refuse, before any claim runs, a claims file naming an architecture unless the caller trusts its code."""
    for name, settings, test in claims:
        other = test.get("compare", {}).get("with", {})
        for architecture in (settings.get("architecture"), other.get("architecture")):
            require_trusted_code(architecture, f"claims file {path} (claim '{name}')", trust_code)


def _describe(changes: dict) -> str:
    return ", ".join(f"{k} = {v}" for k, v in changes.items())


def check_claims(
    path: str, load_data, cache_dir=False, quiet: bool = True, trust_pickle: bool = False, trust_code: bool = False
) -> list:
    """Every claim of the file, checked in order; a list of :class:`ClaimResult`.

    A malformed file raises InputError before anything runs. A claim that fails while it is checked
    (a missing model file, data its bound refuses) is an ERROR row; the others still run.
    trust_pickle: allow unpickling whole-module model files; trust_code: allow the file's
    ``architecture`` keys (ModelLoadError before anything runs otherwise). Both only from the
    caller, never the file.
    """
    checker = ClaimChecker(
        load_data, cache_dir=cache_dir, quiet=quiet, trust_pickle=trust_pickle, trust_code=trust_code
    )
    claims = load_claims(path)
    _refuse_untrusted_code(path, claims, checker.trust_code)
    results = []
    for name, settings, test in claims:
        try:
            results.append(checker.check(name, settings, test))
        except (PacBayesError, OSError) as err:
            results.append(_error_row(name, settings, test, err))
    return results


def _error_row(name: str, settings: dict, test: dict, err: Exception) -> ClaimResult:
    reason = " ".join(str(err).split()) or type(err).__name__
    if "compare" in test:
        op, reference, kind = test["compare"]["op"], None, "bound with " + _describe(test["compare"]["with"])
    else:
        op, reference = ("<=", test["at_most"]) if "at_most" in test else (">=", test["at_least"])
        reference, kind = float(reference), "threshold"
    return ClaimResult(
        name=name,
        passed=False,
        value=None,
        op=op,
        reference=reference,
        reference_kind=kind,
        bound_name=settings["bound"],
        settings=settings,
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


__all__ = ["ClaimResult", "ClaimChecker", "check_claims", "load_claims", "render_table", "OPERATORS"]
