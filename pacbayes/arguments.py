"""Argument checks at the library's entry points, and output locations checked before any work.

:func:`certify_arguments`, :func:`assert_certified_arguments` and :func:`monitor_arguments` run first
in :func:`pacbayes.certification.certify`, :func:`pacbayes.testing.assert_certified` and
:class:`pacbayes.monitor.BoundMonitor`: a wrong type, a non-finite number or a non-Dataset argument
raises :class:`~pacbayes.errors.InputError` naming the argument and what it must be, never a bare
``TypeError`` or ``AttributeError`` from deep inside the computation.

:func:`check_output_path` and :func:`check_output_dir` are called by every command that writes a
file, before it loads or computes anything, so that a location it cannot write fails at once;
:func:`check_not_an_input` refuses an output that is one of the command's inputs. Inputs are
opened with :func:`open_regular` (or checked with :func:`regular_file`): a FIFO or a device would
block a read or never end it.
"""

import dataclasses
import math
import numbers
import os
import stat
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


def integer(value, name: str, *, minimum=None, maximum=None, optional: bool = False):
    """``value`` as an int (not a bool, a float or a string) in [``minimum``, ``maximum``]; None if ``optional``."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{name} must be an integer{' or None' if optional else ''}, got {value!r} ({_kind(value)})")
    if minimum is not None and value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise InputError(f"{name} must be an integer <= {maximum}, got {value}")
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
    """A non-empty tuple or list of distinct strings (a bare string is refused: it is not a list of names;
    a name given twice would run its family twice on one share of delta)."""
    if (
        isinstance(value, str)
        or not isinstance(value, (tuple, list))
        or not value
        or not all(isinstance(v, str) for v in value)
    ):
        raise InputError(f"{name} must be a non-empty tuple of names such as ('marginal',), got {value!r}")
    twice = sorted({v for v in value if value.count(v) > 1})
    if twice:
        raise InputError(f"{name} names {', '.join(twice)} more than once; give each bound family once")
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
    """A family's settings dataclass: of the right type, every float in it finite and every user option
    inside its declared limits (:func:`pacbayes.options.check_limits`)."""
    from pacbayes.options import check_limits

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


MAX_SEED = 2**63 - 1
"""The largest seed: torch's generators take a signed 64-bit seed."""


def random_seed(value, name: str = "seed") -> int:
    """A seed: an integer in [0, :data:`MAX_SEED`]."""
    return integer(value, name, minimum=0, maximum=MAX_SEED)


def _device(value, name: str = "device"):
    import torch

    from pacbayes.device import resolve_device

    instance(value, (str, torch.device), name, "a torch device name such as 'cpu' or 'cuda'", optional=True)
    return None if value is None else resolve_device(value, name)


# ---------------------------------------------------------------- the entry points
def certify_arguments(model, train, test, options) -> None:
    """Check the arguments of :func:`pacbayes.certification.certify` (see the module docstring)."""
    from pacbayes.certification import CertifyOptions

    _model(model)
    _dataset(train, "train")
    _dataset(test, "test")
    instance(options, CertifyOptions, "options", "a pacbayes.certification.CertifyOptions")
    options_arguments(options)


def options_arguments(options, prefix: str = "options.") -> None:
    """Check the fields of a CertifyOptions, each named ``prefix`` + its name (a claims file passes the claim)."""
    from pacbayes.families import FAMILIES, settings_attribute

    names(options.bounds, f"{prefix}bounds")
    real(options.delta, f"{prefix}delta", low=0.0, high=1.0, open_low=True, open_high=True)
    integer(options.m, f"{prefix}m", minimum=2, optional=True)
    random_seed(options.seed, f"{prefix}seed")
    real(options.corrupt, f"{prefix}corrupt", low=0.0, high=1.0)
    integers(options.negative_classes, f"{prefix}negative_classes")
    _device(options.device, f"{prefix}device")
    integer(options.holdout_candidates, f"{prefix}holdout_candidates", minimum=1)
    flag(options.allow_duplicates, f"{prefix}allow_duplicates")
    flag(options.quiet, f"{prefix}quiet")
    if getattr(options, "max_minutes", None) is not None:
        real(options.max_minutes, f"{prefix}max_minutes", low=0.0, open_low=True)
    for name, family in FAMILIES.items():
        attribute = settings_attribute(name)
        if getattr(options, attribute, None) is not None:
            _settings(getattr(options, attribute), family.settings_type, f"{prefix}{attribute}")


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
    random_seed(seed)
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
    random_seed(seed)
    if callback is not None and not callable(callback):
        raise InputError(f"callback must be a function taking a MonitorResult (or None), got {_kind(callback)}")
    flag(quiet, "quiet")


# ---------------------------------------------------------------- input files
_NOT_REGULAR = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_regular(mode: int, what: str, shown: str, fix: str = "give the path of a saved file") -> None:
    """InputError unless ``mode`` is a regular file's: a FIFO or a device blocks a read or never ends it."""
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _NOT_REGULAR if test(mode)), "not a regular file")
        raise InputError(f"{what} {shown} is {kind}, not a regular file; {fix}")


def _unreadable(err: OSError, what: str, shown: str) -> InputError:
    reason = "no such file" if isinstance(err, FileNotFoundError) else err.strerror or err
    return InputError(f"{what} {shown}: cannot read it ({reason}); give the path of a saved file")


def regular_file(path, what: str) -> str:
    """``path`` as a string if it names an existing regular file (links followed), else InputError naming
    ``what``; nothing is opened."""
    shown = os.fspath(path)
    try:
        mode = os.stat(shown).st_mode
    except OSError as err:
        raise _unreadable(err, what, shown) from None
    _not_regular(mode, what, shown)
    return shown


def open_regular(path, what: str, limit: int | None = None):
    """``path`` opened for binary reading if it is a regular file of at most ``limit`` bytes, else
    InputError naming ``what``. The file is opened without blocking and checked on the open
    descriptor, so a FIFO or device put in its place after any earlier check is refused too."""
    shown = os.fspath(path)
    try:
        descriptor = os.open(shown, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as err:
        raise _unreadable(err, what, shown) from None
    stream = os.fdopen(descriptor, "rb")
    try:
        status = os.fstat(descriptor)
        _not_regular(status.st_mode, what, shown)
        if limit is not None and status.st_size > limit:
            raise InputError(
                f"{what} {shown} holds {status.st_size:,} bytes, more than any such file ({limit:,}); "
                "give the right file"
            )
    except BaseException:
        stream.close()
        raise
    return stream


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
    if os.path.exists(target) and not os.path.isfile(target):
        # the report would replace a FIFO or a device such as /dev/null, not write to it
        _not_regular(os.stat(target).st_mode, flag_name, shown, "choose the path of a new or regular file")
    _check_name_lengths(target, folder, shown, flag_name)
    _probe(folder, shown, flag_name)
    return shown


def _check_name_lengths(target: str, folder: str, shown: str, flag_name: str) -> None:
    """Refuse a path the file system would reject as too long (ENAMETOOLONG): a name below ``folder``
    (the deepest existing folder) longer than its NAME_MAX, or the whole path longer than PATH_MAX."""
    try:
        name_max, path_max = os.pathconf(folder, "PC_NAME_MAX"), os.pathconf(folder, "PC_PATH_MAX")
    except (OSError, ValueError, AttributeError):  # no limits to read here: the write itself will tell
        return
    too_long = next(
        (name for name in os.path.relpath(target, folder).split(os.sep) if len(os.fsencode(name)) > name_max), None
    )
    if too_long is not None:
        raise InputError(
            f"{flag_name}: the name {too_long[:40]}... is {len(os.fsencode(too_long))} bytes long, over the file "
            f"system's limit of {name_max}; choose a shorter name"
        )
    if len(os.fsencode(target)) >= path_max:
        raise InputError(
            f"{flag_name}: the path is {len(os.fsencode(target))} bytes long, over the file system's limit of "
            f"{path_max}; choose a shorter path"
        )


def _same_file(first: str, second: str) -> bool:
    """Whether two paths name one file: os.path.samefile when both exist (hard links too), else the
    same resolved path (a file not yet created, such as a new ledger)."""
    try:
        return os.path.samefile(first, second)
    except OSError:
        return os.path.realpath(first) == os.path.realpath(second)


def check_not_an_input(path, flag_name: str, inputs: dict) -> None:
    """Refuse, before any work, an output ``path`` that is one of the command's inputs (``inputs``: what
    each is, e.g. "the MODEL file" -> its path; None for one not given): writing the output there
    would destroy the input."""
    if path is None:
        return
    for what, given in inputs.items():
        if given is not None and _same_file(os.fspath(path), os.fspath(given)):
            raise InputError(
                f"{flag_name} {path} is {what}: writing there would destroy it; choose another output path"
            )


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
    _check_name_lengths(target, folder, shown, flag_name)
    _probe(folder, shown, flag_name)
    return shown


__all__ = [
    "MAX_SEED",
    "assert_certified_arguments",
    "certify_arguments",
    "check_not_an_input",
    "check_output_dir",
    "check_output_path",
    "monitor_arguments",
    "open_regular",
    "random_seed",
    "regular_file",
]
