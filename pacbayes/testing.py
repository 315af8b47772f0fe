"""Regression-testing generalisation claims: :func:`assert_certified` and a content-hash cache.

``assert_certified(model, train, test=test, bound="marginal", at_most=0.2)`` runs
:func:`pacbayes.certification.certify` for one bound family and raises an ``AssertionError`` that shows
the certified value, the threshold, the delta, what the number certifies and its assumptions when
the bound is larger than ``at_most``.

The expensive part (the whole certify report) is cached on disk under a SHA-256 of everything
the number depends on, and re-verified before it is used: :mod:`pacbayes.report_cache`.
"""

from typing import Any

import torch

from pacbayes import call_arguments
from pacbayes.certification import CertifyOptions
from pacbayes.data import Dataset
from pacbayes.errors import InputError
from pacbayes.families import settings_types
from pacbayes.report_cache import CACHE_ENV, DEFAULT_CACHE_DIR, CacheWarning, cached_report, content_key
from pacbayes.results import BoundResult


# ---------------------------------------------------------------- the assertion
def family_bound(report: dict, bound: str, kind: str = "certified") -> dict:
    """The smallest ``kind`` ("certified" or "estimate") bound record of family ``bound`` in a report."""
    if kind not in ("certified", "estimate"):
        raise InputError(f"kind must be 'certified' or 'estimate', got {kind!r}")
    records = [
        b
        for b in report["bounds"]
        if b.get("family") == bound and b["certified"] == (kind == "certified") and "converted_from" not in b["details"]
    ]
    if not records:
        raise InputError(
            f"the report has no {kind} bound of family {bound!r} "
            f"(it has: {', '.join(b['name'] for b in report['bounds'])})"
        )
    return min(records, key=lambda b: b["value"])


def assert_certified(
    model: torch.nn.Module,
    train: Dataset,
    *,
    test: Dataset | None = None,
    bound: str = "marginal",
    at_most: float,
    delta: float = 0.05,
    m: int | None = None,
    seed: int = 0,
    settings: Any = (),
    cache_dir=None,
    quiet: bool = True,
) -> BoundResult:
    """Assert that the certified ``bound`` of ``model`` on ``train`` is at most ``at_most``.

    ``test`` is the held-out data certify measures the test error on (required: it must not
    overlap ``train``). ``settings``: the settings of the ``bound`` family (e.g.
    ``MarginalSettings(jitter=1e-5)``, or a one-element tuple; none: its defaults). Returns the certified
    :class:`BoundResult`; raises ``AssertionError`` with value, threshold, delta, what is certified and the
    assumptions otherwise.
    """
    chosen = call_arguments.assert_certified_arguments(
        model,
        train,
        test=test,
        bound=bound,
        at_most=at_most,
        delta=delta,
        m=m,
        seed=seed,
        settings=settings,
        settings_types=settings_types(),
        cache_dir=cache_dir,
        quiet=quiet,
    )
    options = CertifyOptions(bounds=(bound,), delta=delta, m=m, seed=seed, quiet=quiet).with_settings(chosen)
    report, from_cache = cached_report(model, train, test, options, cache_dir)
    record = family_bound(report, bound)
    result = BoundResult(**{**record, "assumptions": tuple(record["assumptions"])})
    if result.value > at_most:
        lines = [
            f"certified bound {result.name} = {result.value:.4f} exceeds at_most = {at_most:.4f}",
            f"  delta = {delta:g} (this number spends {sum(result.delta.values()):.3g}), m = {report['m']}, "
            f"train error {report['train_error']:.4f}, test error {report['test_error']:.4f}"
            + (" [from cache]" if from_cache else ""),
            f"  certifies: {result.certifies}",
            "  assumptions:",
        ]
        lines += [f"    - {a}" for a in result.assumptions]
        raise AssertionError("\n".join(lines))
    return result


__all__ = [
    "assert_certified",
    "cached_report",
    "content_key",
    "family_bound",
    "CacheWarning",
    "CACHE_ENV",
    "DEFAULT_CACHE_DIR",
]
