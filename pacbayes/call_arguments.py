"""Argument checks at the library's entry points.

:func:`certify_arguments`, :func:`assert_certified_arguments` and :func:`monitor_arguments` run first
in :func:`pacbayes.certification.certify`, :func:`pacbayes.testing.assert_certified` and
:class:`pacbayes.monitor.BoundMonitor`: a wrong type, a non-finite number or a non-Dataset argument
raises :class:`~pacbayes.errors.InputError` naming the argument and what it must be, never a bare
``TypeError`` or ``AttributeError`` from deep inside the computation. The primitives are those of
:mod:`pacbayes.checks` and :mod:`pacbayes.arguments`.
"""

import dataclasses
import math
import os

import torch

from pacbayes.arguments import instance, integers, names, random_seed, type_name
from pacbayes.checks import finite, flag, integer
from pacbayes.data import Dataset
from pacbayes.device import resolve_device
from pacbayes.errors import InputError
from pacbayes.options import check_limits


def _model(value, name: str = "model"):
    return instance(value, torch.nn.Module, name, "a torch.nn.Module (load a file with pacbayes.models.load_model)")


def _dataset(value, name: str, *, optional: bool = False):
    instance(value, Dataset, name, "a pacbayes.data.Dataset (e.g. from pacbayes.data.load_dataset)", optional=optional)
    if value is not None and len(value) == 0:
        raise InputError(f"{name} is empty; it needs at least one example")
    return value


def _settings(value, kind, name: str):
    """A family's settings dataclass: of the right type, every float in it finite and every user option
    inside its declared limits (:func:`pacbayes.options.check_limits`)."""
    instance(value, kind, name, f"a {kind.__name__}")
    for f in dataclasses.fields(value):
        entry = getattr(value, f.name)
        numbers_in = entry if isinstance(entry, (tuple, list)) else (entry,)
        for number in numbers_in:
            if isinstance(number, float) and not math.isfinite(number):
                raise InputError(f"{name}.{f.name} must be finite, got {entry!r}")
        if "cli" in f.metadata:
            check_limits(f, entry, f"{name}.{f.name}")
    return value


def _device(value, name: str = "device"):
    instance(value, (str, torch.device), name, "a torch device name such as 'cpu' or 'cuda'", optional=True)
    return None if value is None else resolve_device(value, name)


def family_settings(value, settings_types: dict, name: str = "settings") -> dict:
    """Family name -> settings for ``value``: one family's settings dataclass, or a tuple or list of them
    (each family once), each family found by its settings' type in ``settings_types`` (family name ->
    settings dataclass: the registry's, :func:`pacbayes.families.settings_types`) and each checked as
    the options' are."""
    given = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    result: dict = {}
    for item in given:
        owners = [family for family, kind in settings_types.items() if type(item) is kind]
        if not owners:
            known = ", ".join(kind.__name__ for kind in settings_types.values())
            raise InputError(
                f"{name} must be a bound family's settings ({known}) or a tuple of them, got {type_name(item)}"
            )
        if len(owners) > 1:
            raise InputError(
                f"{name}: {type_name(item)} are the settings of {' and '.join(owners)}; it names no one family"
            )
        if owners[0] in result:
            raise InputError(f"{name} holds {type_name(item)} twice; give each family's settings once")
        result[owners[0]] = _settings(item, type(item), f"{name} ({owners[0]})")
    return result


def _unrun_settings(chosen: dict, run: tuple, where: str) -> None:
    """Refuse settings for a family that the call does not run (they would be ignored)."""
    unrun = [family for family in chosen if family not in run]
    if unrun:
        raise InputError(
            f"settings are given for {', '.join(unrun)}, which {where}; name the family there or drop its settings"
        )


# ---------------------------------------------------------------- the entry points
def certify_arguments(model, train, test, options, options_type: type) -> None:
    """Check the arguments of :func:`pacbayes.certification.certify` (see the module docstring);
    ``options_type``: :class:`~pacbayes.certification.CertifyOptions`, which sits above this module."""
    _model(model)
    _dataset(train, "train")
    _dataset(test, "test")
    instance(options, options_type, "options", "a pacbayes.certification.CertifyOptions")
    options_arguments(options)


def options_arguments(options, prefix: str = "options.") -> None:
    """Check the fields of a CertifyOptions, each named ``prefix`` + its name (a claims file passes the claim):
    the run-wide ones, and each family's settings held in a field typed with its settings dataclass."""
    names(options.bounds, f"{prefix}bounds")
    finite(options.delta, f"{prefix}delta", low=0.0, high=1.0, open_low=True, open_high=True)
    integer(options.m, f"{prefix}m", minimum=2, optional=True)
    random_seed(options.seed, f"{prefix}seed")
    finite(options.corrupt, f"{prefix}corrupt", low=0.0, high=1.0)
    integers(options.negative_classes, f"{prefix}negative_classes")
    _device(options.device, f"{prefix}device")
    integer(options.holdout_candidates, f"{prefix}holdout_candidates", minimum=1)
    flag(options.allow_duplicates, f"{prefix}allow_duplicates")
    flag(options.quiet, f"{prefix}quiet")
    if options.max_minutes is not None:
        finite(options.max_minutes, f"{prefix}max_minutes", low=0.0, open_low=True)
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        if isinstance(f.type, type) and dataclasses.is_dataclass(f.type) and value is not None:
            _settings(value, f.type, f"{prefix}{f.name}")


def assert_certified_arguments(
    model, train, *, test, bound, at_most, delta, m, seed, settings, settings_types, cache_dir, quiet
) -> dict:
    """Check the arguments of :func:`pacbayes.testing.assert_certified`; returns the settings by family
    (:func:`family_settings`, ``settings_types`` the registry's)."""
    _model(model)
    _dataset(train, "train")
    if test is None:
        raise InputError(
            "assert_certified needs held-out data for the measured test error: pass test=... (disjoint from train)"
        )
    _dataset(test, "test")
    instance(bound, str, "bound", "the name of a bound family such as 'marginal'")
    finite(at_most, "at_most", low=0.0, high=1.0)
    finite(delta, "delta", low=0.0, high=1.0, open_low=True, open_high=True)
    integer(m, "m", minimum=2, optional=True)
    random_seed(seed)
    chosen = family_settings(settings, settings_types)
    _unrun_settings(chosen, (bound,), f"bound ({bound!r}) is not")
    if cache_dir is not None and cache_dir is not False and not isinstance(cache_dir, (str, os.PathLike)):
        raise InputError(
            f"cache_dir must be a folder path, None (the default folder) or False (no cache), got {cache_dir!r}"
        )
    flag(quiet, "quiet")
    return chosen


def monitor_arguments(
    model,
    train,
    *,
    test,
    bounds,
    delta,
    every,
    overhead,
    max_checkpoints,
    settings,
    settings_types,
    negative_classes,
    seed,
    callback,
    quiet,
) -> dict:
    """Check the arguments of :class:`pacbayes.monitor.BoundMonitor`; returns the settings by family
    (:func:`family_settings`, ``settings_types`` the registry's)."""
    _model(model)
    _dataset(train, "train")
    _dataset(test, "test", optional=True)
    names(bounds, "bounds")
    finite(delta, "delta", low=0.0, high=1.0, open_low=True, open_high=True)
    integer(every, "every", minimum=1, optional=True)
    finite(overhead, "overhead", low=0.0, high=1.0, open_low=True, open_high=True)
    integer(max_checkpoints, "max_checkpoints", minimum=1)
    chosen = family_settings(settings, settings_types)
    _unrun_settings(chosen, tuple(bounds), f"bounds ({', '.join(bounds)}) does not name")
    integers(negative_classes, "negative_classes")
    random_seed(seed)
    if callback is not None and not callable(callback):
        raise InputError(f"callback must be a function taking a MonitorResult (or None), got {type_name(callback)}")
    flag(quiet, "quiet")
    return chosen


__all__ = [
    "assert_certified_arguments",
    "certify_arguments",
    "family_settings",
    "monitor_arguments",
    "options_arguments",
]
