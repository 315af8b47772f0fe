"""Argument checks at the library's entry points, and output locations checked before any work.

:func:`certify_arguments`, :func:`assert_certified_arguments` and :func:`monitor_arguments` run first
in :func:`pacbayes.certification.certify`, :func:`pacbayes.testing.assert_certified` and
:class:`pacbayes.monitor.BoundMonitor`: a wrong type, a non-finite number or a non-Dataset argument
raises :class:`~pacbayes.errors.InputError` naming the argument and what it must be, never a bare
``TypeError`` or ``AttributeError`` from deep inside the computation.

:func:`check_output_path` and :func:`check_output_dir` are called by every command that writes a
file, before it loads or computes anything, so that a location it cannot write fails at once.
"""

import dataclasses
import math
import numbers
import os
import tempfile

from pacbayes.errors import InputError


# ---------------------------------------------------------------- small type checks
def _kind(value) -> str:
    return type(value).__name__


def real(value, name: str, *, low=None, high=None, open_low=False, open_high=False) -> float:
    """``value`` as a finite float (not a bool, not a string), optionally inside [low, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{name} must be a number, got {value!r} ({_kind(value)})")
    value = float(value)
    if not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, got {value}")
    below = low is not None and (value <= low if open_low else value < low)
    above = high is not None and (value >= high if open_high else value > high)
    if below or above:
        interval = f"{'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
        raise InputError(f"{name} must lie in {interval}, got {value}")
    return value


def integer(value, name: str, *, minimum=None, optional: bool = False):
    """``value`` as an int (not a bool, a float or a string), at least ``minimum``; None if ``optional``."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{name} must be an integer{' or None' if optional else ''}, got {value!r} ({_kind(value)})")
    if minimum is not None and value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def flag(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"{name} must be True or False, got {value!r} ({_kind(value)})")
    return value


def instance(value, kind, name: str, what: str, *, optional: bool = False):
    if value is None and optional:
        return None
    if not isinstance(value, kind):
        raise InputError(f"{name} must be {what}{' or None' if optional else ''}, got {_kind(value)}")
    return value


def names(value, name: str) -> tuple:
    """A non-empty tuple or list of strings (a bare string is refused: it is not a list of names)."""
    if (
        isinstance(value, str)
        or not isinstance(value, (tuple, list))
        or not value
        or not all(isinstance(v, str) for v in value)
    ):
        raise InputError(f"{name} must be a non-empty tuple of names such as ('marginal',), got {value!r}")
    return tuple(value)


def integers(value, name: str):
    """None, or a tuple or list of integers (e.g. the negative classes of a class split)."""
    if value is None:
        return None
    if (
        isinstance(value, (str, bytes))
        or not isinstance(value, (tuple, list))
        or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)
    ):
        raise InputError(f"{name} must be None or a tuple of integers such as (0, 1, 2, 3, 4), got {value!r}")
    return tuple(int(v) for v in value)


def _model(value, name: str = "model"):
    import torch

    return instance(value, torch.nn.Module, name, "a torch.nn.Module (load a file with pacbayes.models.load_model)")


def _dataset(value, name: str, *, optional: bool = False):
    from pacbayes.data import Dataset

    instance(value, Dataset, name, "a pacbayes.data.Dataset (e.g. from pacbayes.data.load_dataset)", optional=optional)
    if value is not None and len(value) == 0:
        raise InputError(f"{name} is empty; it needs at least one example")
    return value


def _settings(value, kind, name: str):
    """A family's settings dataclass: of the right type, and every float in it finite."""
    instance(value, kind, name, f"a {kind.__name__}")
    for f in dataclasses.fields(value):
        entry = getattr(value, f.name)
        numbers_in = entry if isinstance(entry, (tuple, list)) else (entry,)
        for number in numbers_in:
            if isinstance(number, float) and not math.isfinite(number):
                raise InputError(f"{name}.{f.name} must be finite, got {entry!r}")
    return value


def _seed(value, name: str = "seed") -> int:
    return integer(value, name, minimum=0)


def _device(value, name: str = "device"):
    import torch

    return instance(value, (str, torch.device), name, "a torch device name such as 'cpu' or 'cuda'", optional=True)


# ---------------------------------------------------------------- the entry points
def certify_arguments(model, train, test, options) -> None:
    """Check the arguments of :func:`pacbayes.certification.certify` (see the module docstring)."""
    from pacbayes.certification import CertifyOptions
    from pacbayes.families import FAMILIES, settings_attribute

    _model(model)
    _dataset(train, "train")
    _dataset(test, "test")
    instance(options, CertifyOptions, "options", "a pacbayes.certification.CertifyOptions")
    names(options.bounds, "options.bounds")
    real(options.delta, "options.delta", low=0.0, high=1.0, open_low=True, open_high=True)
    integer(options.m, "options.m", minimum=2, optional=True)
    _seed(options.seed, "options.seed")
    real(options.corrupt, "options.corrupt", low=0.0, high=1.0)
    integers(options.negative_classes, "options.negative_classes")
    _device(options.device, "options.device")
    integer(options.holdout_candidates, "options.holdout_candidates", minimum=1)
    flag(options.quiet, "options.quiet")
    for name, family in FAMILIES.items():
        attribute = settings_attribute(name)
        if getattr(options, attribute, None) is not None:
            _settings(getattr(options, attribute), family.settings_type, f"options.{attribute}")


def assert_certified_arguments(
    model, train, *, test, bound, at_most, delta, m, seed, marginal, cache_dir, quiet
) -> None:
    """Check the arguments of :func:`pacbayes.testing.assert_certified`."""
    from pacbayes.families.marginal import MarginalSettings

    _model(model)
    _dataset(train, "train")
    if test is None:
        raise InputError(
            "assert_certified needs held-out data for the measured test error: pass test=... (disjoint from train)"
        )
    _dataset(test, "test")
    instance(bound, str, "bound", "the name of a bound family such as 'marginal'")
    real(at_most, "at_most", low=0.0, high=1.0)
    real(delta, "delta", low=0.0, high=1.0, open_low=True, open_high=True)
    integer(m, "m", minimum=2, optional=True)
    _seed(seed)
    _settings(marginal, MarginalSettings, "marginal")
    if cache_dir is not None and cache_dir is not False and not isinstance(cache_dir, (str, os.PathLike)):
        raise InputError(
            f"cache_dir must be a folder path, None (the default folder) or False (no cache), got {cache_dir!r}"
        )
    flag(quiet, "quiet")


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
    marginal,
    negative_classes,
    seed,
    callback,
    quiet,
) -> None:
    """Check the arguments of :class:`pacbayes.monitor.BoundMonitor`."""
    from pacbayes.families.marginal import MarginalSettings

    _model(model)
    _dataset(train, "train")
    _dataset(test, "test", optional=True)
    names(bounds, "bounds")
    real(delta, "delta", low=0.0, high=1.0, open_low=True, open_high=True)
    integer(every, "every", minimum=1, optional=True)
    real(overhead, "overhead", low=0.0, high=1.0, open_low=True, open_high=True)
    integer(max_checkpoints, "max_checkpoints", minimum=1)
    _settings(marginal, MarginalSettings, "marginal")
    integers(negative_classes, "negative_classes")
    _seed(seed)
    if callback is not None and not callable(callback):
        raise InputError(f"callback must be a function taking a MonitorResult (or None), got {_kind(callback)}")
    flag(quiet, "quiet")


# ---------------------------------------------------------------- output locations
def _first_existing(path: str) -> str:
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _probe(folder: str, shown: str, flag_name: str) -> None:
    """Create and remove a temporary file in ``folder``: the one reliable writability test (root included)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise InputError(
            f"{flag_name} {shown}: cannot write in {folder} ({err.strerror or err}); choose a writable location"
        ) from None


def check_output_path(path, flag_name: str):
    """Refuse, before any work, a file location that cannot be written: an existing directory, a path
    under a file, a folder that refuses new files. Missing parent folders are fine (they are created).
    Returns the path as a string (None stays None)."""
    if path is None:
        return None
    shown = os.fspath(path)
    if not shown:
        raise InputError(f"{flag_name} is empty; give a file path")
    target = os.path.abspath(shown)
    if os.path.isdir(target):
        raise InputError(
            f"{flag_name} {shown} is an existing directory; give a file path, e.g. {os.path.join(shown, 'report.json')}"
        )
    folder = _first_existing(os.path.dirname(target))
    if not os.path.isdir(folder):
        raise InputError(f"{flag_name} {shown}: {folder} is a file, not a directory; choose a path in a directory")
    _probe(folder, shown, flag_name)
    return shown


def check_output_dir(path, flag_name: str):
    """Like :func:`check_output_path` for a folder: it must be a directory or creatable as one."""
    if path is None:
        return None
    shown = os.fspath(path)
    if not shown:
        raise InputError(f"{flag_name} is empty; give a directory path")
    target = os.path.abspath(shown)
    folder = _first_existing(target)
    if not os.path.isdir(folder):
        what = "is a file" if folder == target else f"is under the file {folder}"
        raise InputError(f"{flag_name} {shown} {what}, not a directory; give a directory path")
    _probe(folder, shown, flag_name)
    return shown


__all__ = [
    "assert_certified_arguments",
    "certify_arguments",
    "check_output_dir",
    "check_output_path",
    "monitor_arguments",
]
