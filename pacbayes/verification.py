"""``pacbayes verify``: does a report still say what its inputs and the package's arithmetic say?

:func:`check_report` returns one :class:`Check` per comparison. Without any file it recomputes
every number the report states from the inputs the report stores, with :mod:`pacbayes.bounds`
(:func:`arithmetic_checks`): each bound row's value (the marginal bound from its certified
ln P(S) lower bound, which Markov's inequality ties to the importance-sampling estimate; the
Dziugaite-Roy bound from its KL, sampled error, draws and shares; the compression bound from its
code length, configurations and shares; a clean-label conversion from its source), each row's
``certified`` flag against its family's rules, its classifier, that a certified row's shares of
delta are the ones in ``delta_ledger`` and that the ledger sums to at most ``delta``, the hold-out
bound from ``test_error`` x ``holdout_n``, the best certified bound, its name and classifier,
``certified_by_family``, and that the recorded options state the same delta, m and hold-out
candidates as the report. With the data it also hashes and counts them; with a model it certifies
again at the delta the report claims (:func:`rerun_checks`).

A certified number whose inputs are missing or malformed is a mismatch, never skipped: only the
file hashes are skipped, when the file is not given.
"""

import dataclasses
import math
from collections.abc import Callable

from pacbayes import checks
from pacbayes.attempts import replaying
from pacbayes.bounds import (
    COMPRESSION_FORMS,
    clean_distribution_bound,
    compression_bound,
    holdout_bound,
    marginal_likelihood_bound,
    markov_lower_bound,
    noise_floor,
    pac_bayes_kl_bound,
    sample_convergence_bound,
    series_delta,
)
from pacbayes.certification import HOLDOUT, MODEL_CLASSIFIER, CertifyOptions, certify
from pacbayes.errors import InputError, PacBayesError
from pacbayes.families import FAMILIES
from pacbayes.families.marginal import MARKOV_SHARE, PAC_BAYES_SHARE
from pacbayes.hashing import file_sha256
from pacbayes.provenance import dataset_sha256, model_file_kind_of, options_from_record

RELATIVE_TOLERANCE = 1e-9  # numbers recomputed from the report's own numbers
RERUN_TOLERANCE = 1e-6  # a rerun (thread counts may reorder floating-point sums)
WHOLE_TOLERANCE = 1e-6  # an error rate times its count must be this close to a whole number of mistakes
CLEAN_SUFFIX = "-clean-labels"

RESOLVED_SAMPLINGS = ("network", "point")
"""The Monte Carlo samplings a report records (``auto`` is resolved before the statement is made)."""


@dataclasses.dataclass(frozen=True)
class Check:
    """One comparison of ``pacbayes verify``: ``status`` is "match", "mismatch" or "skipped"."""

    name: str
    status: str
    recorded: object = None
    found: object = None
    note: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _close(recorded, found, tolerance: float) -> bool:
    """Numbers (or lists of them) within ``tolerance`` relative (0: equal); anything else equal and of one type."""
    if isinstance(recorded, list) and isinstance(found, list):
        return len(recorded) == len(found) and all(
            _close(a, b, tolerance) for a, b in zip(recorded, found, strict=False)
        )
    if _is_number(recorded) and _is_number(found):
        return abs(recorded - found) <= tolerance * max(abs(recorded), abs(found), 1e-300)
    return type(recorded) is type(found) and recorded == found


def _compare(name: str, recorded, found, tolerance: float = 0.0, note: str = "") -> Check:
    if isinstance(found, float) and not math.isfinite(found):
        found = None  # the report's JSON holds null for every inf or NaN (pacbayes.report.json_safe)
    return Check(name, "match" if _close(recorded, found, tolerance) else "mismatch", recorded, found, note)


def _recomputed(name: str, recorded, compute: Callable, tolerance: float = RELATIVE_TOLERANCE, note: str = "") -> Check:
    """Compare ``recorded`` with ``compute()``; inputs it cannot use make the check a mismatch."""
    try:
        found = compute()
    except PacBayesError as err:
        return Check(name, "mismatch", recorded, None, f"cannot recompute it: {' '.join(str(err).split())}")
    return _compare(name, recorded, found, tolerance, note)


# ---------------------------------------------------------------- reading the report's numbers
def _number(value, what: str) -> float:
    """``value`` as a finite float; InputError for a string, a bool, None, inf or NaN."""
    if not _is_number(value):
        raise InputError(f"{what} must be a number, got {value!r}")
    return checks.finite(value, what)


def _rate(value, what: str) -> float:
    return checks.probability(_number(value, what), what)


def _count(value, what: str, minimum: int = 1) -> int:
    return checks.integer_at_least(value, what, minimum)


def _share(delta, key: str, what: str) -> float:
    """The share ``key`` of a delta dict, a number in (0, 1)."""
    if not isinstance(delta, dict) or key not in delta:
        raise InputError(f"{what} has no delta share {key!r}")
    return checks.delta(_number(delta[key], f"{what}'s share {key!r}"), f"{what}'s share {key!r}")


def _object(record: dict, key: str) -> dict:
    value = record.get(key)
    return value if isinstance(value, dict) else {}


def _mistakes(rate, count: int, what: str) -> int:
    """rate x count as a whole number of mistakes (InputError when it is not one)."""
    rate = _rate(rate, what)
    mistakes = rate * count
    if abs(mistakes - round(mistakes)) > WHOLE_TOLERANCE:
        raise InputError(f"{what} {rate!r} times {count} is not a whole number of mistakes")
    return round(mistakes)


def _options(record: dict) -> dict:
    return _object(_object(record, "provenance"), "options")


# ---------------------------------------------------------------- each family's arithmetic
def _marginal_checks(row: dict, record: dict) -> list:
    """The marginal bound at the row's ln P(S); for the certified row, ln P(S) = ln Z_hat - ln(1/delta_markov)
    (Markov) and a realisable fit."""
    name, details, delta = row["name"], _object(row, "details"), row.get("delta")

    def log_evidence():
        value = row.get("log_evidence")
        return -math.inf if value is None else _number(value, "log_evidence")  # JSON null: -inf (vacuous)

    def value():
        m = _count(record.get("m"), "the report's m", 2)
        share = _share(delta, PAC_BAYES_SHARE, name)
        return marginal_likelihood_bound(log_evidence(), m, share, details.get("variant"))

    def lower():
        estimate = _number(details.get("log_estimate"), f"{name} details.log_estimate")
        return markov_lower_bound(estimate, _share(delta, MARKOV_SHARE, name))

    result = [_recomputed(f"value_{name}", row.get("value"), value)]
    if row.get("certified") is True:
        result.append(_recomputed(f"log_evidence_{name}", row.get("log_evidence"), lower))
        result.append(_compare(f"train_error_{name}", record.get("train_error"), 0.0, note="realisable: 0 on S"))
    return result


def _stochastic_checks(row: dict, record: dict) -> list:
    """Sample convergence (Langford & Caruana) then PAC-Bayes-kl at the row's KL; on the prior-variance
    grid, the PAC-Bayes share is delta_j of the grid's whole share."""
    name, details, delta = row["name"], _object(row, "details"), row.get("delta")

    def m():
        return _count(details.get("m"), f"{name} details.m")

    def empirical():
        draws = _count(details.get("mc_draws"), f"{name} details.mc_draws")
        if details.get("mc_sampling") not in RESOLVED_SAMPLINGS:
            raise InputError(f"{name} details.mc_sampling must be one of {', '.join(RESOLVED_SAMPLINGS)}")
        indicators = draws * (m() if details.get("mc_sampling") == "network" else 1)  # "point": draws = n m
        sampled = _mistakes(details.get("sampled_error"), indicators, f"{name} details.sampled_error") / indicators
        return sample_convergence_bound(sampled, draws, _share(delta, "sample_convergence", name))

    def value():
        kl = checks.nonnegative(_number(details.get("kl"), f"{name} details.kl"), f"{name} details.kl")
        return pac_bayes_kl_bound(empirical(), kl, m(), _share(delta, "pac_bayes_kl", name))

    def points():
        return m() + _count(details.get("m_prior"), f"{name} details.m_prior", 0)

    def grid_share():
        kl_share = _share(delta, "pac_bayes_kl", name)  # delta is a dict from here on
        whole = kl_share + _number(delta.get("lambda_grid_other_points"), f"{name}'s share lambda_grid_other_points")
        return series_delta(_count(details.get("grid_index"), f"{name} details.grid_index"), whole)

    result = [
        _recomputed(f"empirical_error_bound_{name}", details.get("empirical_error_bound"), empirical),
        _recomputed(f"value_{name}", row.get("value"), value),
        _recomputed(f"count_{name}", record.get("m"), points, 0.0, "bound points + prior points = m"),
    ]
    if details.get("grid_index") is not None:
        result.append(_recomputed(f"grid_share_{name}", _object(row, "delta").get("pac_bayes_kl"), grid_share))
    return result


def _subspace_checks(row: dict, record: dict) -> list:
    """The compression bound (Occam, Catoni, PAC-Bayes-kl; Lotfi et al.) from the code length, the
    configurations, the bound points and the three forms' shares."""
    name, details, delta = row["name"], _object(row, "details"), row.get("delta")

    def bound():
        m = _count(details.get("m"), f"{name} details.m", 8)
        error = _mistakes(details.get("train_error"), m, f"{name} details.train_error") / m
        bits = _number(details.get("code_bits"), f"{name} details.code_bits")
        configurations = _count(details.get("configurations"), f"{name} details.configurations")
        total = math.fsum(_share(delta, form, name) for form in COMPRESSION_FORMS)
        return compression_bound(error, bits, m, total, configurations)

    def points():
        origin = _object(details, "origin")
        prior = origin.get("prior_points", 0) if origin.get("kind") == "data-dependent" else 0
        return _count(details.get("m"), f"{name} details.m") + _count(prior, f"{name} details.origin.prior_points", 0)

    def part(key):
        return lambda: bound()[key]

    def shares():
        return [bound()["delta"][form] for form in COMPRESSION_FORMS]

    recorded_shares = [_object(row, "delta").get(form) for form in COMPRESSION_FORMS]
    return [
        _recomputed(f"value_{name}", row.get("value"), part("value")),
        _recomputed(f"kl_{name}", details.get("kl_nats"), part("kl")),
        _recomputed(f"form_shares_{name}", recorded_shares, shares),
        _recomputed(f"count_{name}", record.get("m"), points, 0.0, "bound points + prior points = m"),
    ]


@dataclasses.dataclass(frozen=True)
class FamilyArithmetic:
    """How ``verify`` recomputes one family's rows: ``certifiable(row)`` says whether the family's rules
    let that row be certified; ``checks(row, record)`` recomputes it from what the report stores."""

    certifiable: Callable[[dict], bool]
    checks: Callable[[dict, dict], list]


ARITHMETIC = {
    "marginal": FamilyArithmetic(lambda row: row.get("name") == "marginal-certified", _marginal_checks),
    "dziugaite-roy": FamilyArithmetic(lambda row: True, _stochastic_checks),
    "subspace": FamilyArithmetic(lambda row: True, _subspace_checks),
}
"""Every registered bound family's arithmetic (family name -> :class:`FamilyArithmetic`)."""


def _clean_label_checks(row: dict, rows: dict, record: dict) -> list:
    """A clean-label conversion: of a certified row of the same family, at the recorded corruption."""
    name, details, source = row["name"], _object(row, "details"), _source(row, rows)

    def value():
        outputs = _count(_object(record, "model").get("outputs"), "the report's model.outputs")
        fraction = _rate(details.get("corruption"), f"{name} details.corruption")
        corrupted = _rate(source.get("value"), f"{name}'s source value")
        return clean_distribution_bound(corrupted, fraction, 2 if outputs == 1 else outputs)

    return [
        _recomputed(f"value_{name}", row.get("value"), value),
        _compare(f"corruption_{name}", details.get("corruption"), _options(record).get("corrupt")),
    ]


def _noise_floor_checks(row: dict, record: dict) -> list:
    """A certified bound on labels corrupted at the recorded rate lies at or above the noise floor c (K - 1) / K
    (no classifier errs less on such labels; one below it failed): none when no corruption is recorded."""
    corrupt = _options(record).get("corrupt")
    if corrupt in (None, 0, 0.0):
        return []
    name = row["name"]

    def floor():
        outputs = _count(_object(record, "model").get("outputs"), "the report's model.outputs")
        bound = _rate(row.get("value"), f"{name}'s value")
        fraction = _rate(corrupt, "the recorded corruption")
        return max(bound, noise_floor(fraction, 2 if outputs == 1 else outputs))

    return [_recomputed(f"noise_floor_{name}", row.get("value"), floor, note="a certified bound below it cannot hold")]


def _source(row: dict, rows: dict) -> dict:
    """The row a clean-label conversion was converted from ({} if there is no such row)."""
    converted = _object(row, "details").get("converted_from")
    return rows.get(converted, {}) if isinstance(converted, str) else {}


def _certifiable(row: dict, rows: dict) -> bool:
    """Whether the row's family's rules let it be certified (a conversion: when its source is)."""
    if "converted_from" in _object(row, "details"):
        source = _source(row, rows)
        return (
            source.get("certified") is True
            and source.get("family") == row.get("family")
            and row.get("name") == f"{source.get('name')}{CLEAN_SUFFIX}"
            and row.get("delta") == source.get("delta")
        )
    arithmetic = ARITHMETIC.get(row.get("family"))
    return arithmetic is not None and arithmetic.certifiable(row)


def _row_checks(row: dict, rows: dict, record: dict) -> list:
    """The flag, classifier, ledger shares and value checks of one bound row."""
    name, certified, family = row["name"], row.get("certified"), row.get("family")
    allowed = _certifiable(row, rows)
    result = [
        Check(
            f"certified_{name}",
            "match" if certified is False or (certified is True and allowed) else "mismatch",
            certified,
            allowed,
            "only a row its family certifies may say certified",
        ),
        _compare(f"classifier_{name}", row.get("classifier"), getattr(FAMILIES.get(family), "classifier", None)),
    ]
    if certified is True:
        ledger = _object(record, "delta_ledger").get(family)
        shares = row.get("delta") if isinstance(row.get("delta"), dict) else {}
        found = {key: ledger.get(key) for key in shares} if isinstance(ledger, dict) else None
        result.append(_compare(f"delta_shares_{name}", shares or None, found, note="the row's shares in the ledger"))
    if "converted_from" in _object(row, "details"):
        return result + _clean_label_checks(row, rows, record)
    if certified is True and family in FAMILIES:
        result += _noise_floor_checks(row, record)
    arithmetic = ARITHMETIC.get(family)
    if arithmetic is not None:
        return result + arithmetic.checks(row, record)
    if certified is not False:
        result.append(
            Check(f"value_{name}", "mismatch", row.get("value"), None, f"no arithmetic for family {family!r}")
        )
    return result


def _rows(record: dict) -> list:
    """The report's bound rows: objects each with a string name and family (InputError otherwise)."""
    rows = record.get("bounds")
    named = isinstance(rows, list) and all(
        isinstance(r, dict) and isinstance(r.get("name"), str) and isinstance(r.get("family"), str) for r in rows
    )
    if not named:
        raise InputError(
            "the report's bounds must be a list of objects with a name and a family; give a certify --json report"
        )
    return rows


def bound_checks(record: dict) -> list:
    """Every bound row recomputed with its family's arithmetic (see the module docstring)."""
    rows = _rows(record)
    by_name = {row["name"]: row for row in rows}
    result = [_compare("bound_names_unique", len(rows), len(by_name), note="one row per bound name")]
    for row in rows:
        result += _row_checks(row, by_name, record)
    return result


# ---------------------------------------------------------------- report-wide numbers
def _leaves(ledger: dict):
    for value in ledger.values():
        yield from _leaves(value) if isinstance(value, dict) else [value]


def _ledger_sum(ledger: dict, delta: float) -> Check:
    """Every share is a number >= 0 and they sum to at most delta."""
    leaves = list(_leaves(ledger))
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v for v in leaves)
    spent = math.fsum(leaves) if numbers else None
    ok = numbers and spent <= delta * (1 + RELATIVE_TOLERANCE)
    return Check(
        "delta_ledger_sum", "match" if ok else "mismatch", delta, spent, "the ledger's shares must sum to at most delta"
    )


def _holdout_checks(record: dict, ledger: dict) -> list:
    """The hold-out bound from test_error x holdout_n mistakes (Langford 2005, Thm 3.3) at the ledger's
    share, a share of at most the hold-out entries over the candidates, and about the model itself."""
    baselines = _object(record, "baselines")

    def bound():
        n = _count(baselines.get("holdout_n"), "baselines.holdout_n")
        return holdout_bound(_mistakes(record.get("test_error"), n, "test_error"), n, _share(ledger, HOLDOUT, "ledger"))

    def share():
        """The share, if it is at most the hold-out entries over the candidates (else that most)."""
        entries = [value for key, value in ledger.items() if str(key).startswith("hold-out")]
        total = math.fsum(_number(v, "a hold-out ledger entry") for v in entries)
        most = total / _count(baselines.get("holdout_candidates"), "baselines.holdout_candidates")
        return min(_share(ledger, HOLDOUT, "ledger"), most)

    return [
        _recomputed("holdout_bound", baselines.get("holdout_bound"), bound),
        _recomputed("holdout_share", ledger.get(HOLDOUT), share, note="at most the hold-out entries / candidates"),
        _compare("holdout_classifier", baselines.get("holdout_classifier"), MODEL_CLASSIFIER),
    ]


def _best_checks(record: dict) -> list:
    """The best certified bound, its name and classifier, and each family's best, as the rows imply."""
    rows = _rows(record)
    certified = [row for row in rows if row.get("certified") is True and _is_number(row.get("value"))]
    best = min(certified, key=lambda row: row["value"]) if certified else {}
    by_family = {row["family"]: None for row in rows}
    for row in certified:
        best_of_family = by_family[row["family"]]
        if "converted_from" not in _object(row, "details") and (
            best_of_family is None or row["value"] < best_of_family["value"]
        ):
            by_family[row["family"]] = {key: row.get(key) for key in ("name", "value", "classifier")}
    return [
        _compare("best_certified_bound", record.get("best_certified_bound"), best.get("value")),
        _compare("best_certified_bound_name", record.get("best_certified_bound_name"), best.get("name")),
        _compare(
            "best_certified_bound_classifier", record.get("best_certified_bound_classifier"), best.get("classifier")
        ),
        _compare("certified_by_family", record.get("certified_by_family"), by_family),
    ]


def _claimed_checks(record: dict) -> list:
    """The recorded options state the delta, m and hold-out candidates the report claims."""
    options = _options(record)
    result = [
        _compare("options_delta", record.get("delta"), options.get("delta")),
        _compare(
            "options_holdout_candidates",
            _object(record, "baselines").get("holdout_candidates"),
            options.get("holdout_candidates"),
        ),
    ]
    if options.get("m") is not None:
        result.append(_compare("options_m", record.get("m"), options.get("m")))
    return result


def arithmetic_checks(record: dict) -> list:
    """Checks needing only the report: the ledger, the hold-out and best certified bounds, every bound
    row recomputed (:func:`bound_checks`) and the recorded options against the report's claims."""
    ledger, delta = record.get("delta_ledger"), record.get("delta")
    if not isinstance(ledger, dict) or not _is_number(delta):
        raise InputError("the report has no delta_ledger or delta; give a report written by pacbayes certify --json")
    return [
        _ledger_sum(ledger, delta),
        *_holdout_checks(record, ledger),
        *_best_checks(record),
        *_claimed_checks(record),
        *bound_checks(record),
    ]


# ---------------------------------------------------------------- files, data and a rerun
def _data_checks(record: dict, train, test) -> list:
    """Content hashes of the data given, then their counts: m points of S, holdout_n test points."""
    recorded = _object(_object(record, "provenance"), "data_sha256")
    result = []
    for role, data in (("train", train), ("test", test)):
        if data is None:
            result.append(Check(f"data_sha256_{role}", "skipped", recorded.get(role), note=f"no {role} data given"))
        else:
            result.append(_compare(f"data_sha256_{role}", recorded.get(role), dataset_sha256(data)))
    if train is not None:
        m = _options(record).get("m")
        drawn = len(train) if not isinstance(m, int) else min(m, len(train))  # --m draws at most what is given
        result.append(_compare("data_count_train", record.get("m"), drawn))
    if test is not None:
        result.append(_compare("data_count_test", _object(record, "baselines").get("holdout_n"), len(test)))
    return result


def check_report(record: dict, *, model_file=None, train=None, test=None, model=None) -> list:
    """Every :class:`Check` of ``pacbayes verify`` that the given inputs allow.

    record: the report's JSON object; model_file: the model file to hash against ``model_sha256``
    and its kind; train / test: the data sets to hash against ``data_sha256`` and count; model: the
    loaded model, which with both data sets reruns the certificate at the report's claimed delta
    with the recorded options and seed and compares errors and every bound.
    """
    origin = record.get("provenance")
    if not isinstance(origin, dict):
        raise InputError("the report has no provenance object; write it again with this pacbayes (certify --json)")
    result = arithmetic_checks(record)
    if model_file is None:
        result.append(Check("model_sha256", "skipped", origin.get("model_sha256"), note="no model file given"))
    else:
        result.append(_compare("model_sha256", origin.get("model_sha256"), file_sha256(model_file)))
        result.append(_compare("model_file_kind", origin.get("model_file_kind"), model_file_kind_of(model_file)))
    result += _data_checks(record, train, test)
    if model is not None and train is not None and test is not None:
        result += rerun_checks(record, model, train, test)
    return result


def claimed_options(record: dict):
    """The recorded CertifyOptions with the delta and hold-out candidates the report claims."""
    options = options_from_record(_options(record) or None, CertifyOptions)
    candidates = _object(record, "baselines").get("holdout_candidates", options.holdout_candidates)
    return dataclasses.replace(options, delta=record.get("delta"), holdout_candidates=candidates)


def rerun_checks(record: dict, model, train, test) -> list:
    """Certify ``model`` again with the recorded options and seed at the claimed delta; compare m, the
    errors and each bound's value and flag."""
    with replaying(_recorded_attempts(record)):  # the rerun recomputes the counted attempt, it adds none
        again = certify(model, train, test, claimed_options(record)).to_dict()
    result = [
        _compare(f"rerun_{key}", record.get(key), again[key], RERUN_TOLERANCE) for key in ("train_error", "test_error")
    ]
    result.append(_compare("rerun_m", record.get("m"), again["m"]))
    recorded = {b["name"]: b for b in _rows(record)}
    for b in again["bounds"]:
        old = recorded.get(b["name"], {})
        result.append(_compare(f"rerun_bound_{b['name']}", old.get("value"), b["value"], RERUN_TOLERANCE))
        result.append(_compare(f"rerun_certified_{b['name']}", old.get("certified"), b["certified"]))
    missing = sorted(set(recorded) - {b["name"] for b in again["bounds"]})
    result += [Check(f"rerun_bound_{name}", "mismatch", recorded[name].get("value"), None) for name in missing]
    return result


def _recorded_attempts(record: dict) -> dict:
    """family -> the attempt number the report records for it (its diagnostics, else its rows' details)."""
    numbers = {}
    for b in _rows(record):
        details = b.get("details") if isinstance(b.get("details"), dict) else {}
        if "attempt" in details:
            numbers.setdefault(b.get("family"), details["attempt"])
    diagnostics = record.get("diagnostics") if isinstance(record.get("diagnostics"), dict) else {}
    for family, found in diagnostics.items():
        if isinstance(found, dict) and "attempt" in found:
            numbers[family] = found["attempt"]
    return numbers


def failed(checks_: list) -> list:
    """The checks that did not match."""
    return [c for c in checks_ if c.status == "mismatch"]


__all__ = [
    "ARITHMETIC",
    "Check",
    "FamilyArithmetic",
    "arithmetic_checks",
    "bound_checks",
    "check_report",
    "claimed_options",
    "failed",
    "rerun_checks",
]
