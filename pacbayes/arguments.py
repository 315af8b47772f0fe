"""Torch-free argument checks: names, integer lists, instances, seeds, and output locations checked before
any work.

:func:`check_output_path` and :func:`check_output_dir` are called by every command that writes a
file, before it loads or computes anything, so that a location it cannot write fails at once;
:func:`check_not_an_input` refuses an output that is one of the command's inputs. Inputs are
opened with :func:`open_regular` (or checked with :func:`regular_file`): a FIFO or a device would
block a read or never end it. The checks of the library's entry points (models, datasets, options)
are in :mod:`pacbayes.call_arguments`; numbers, integers and flags in :mod:`pacbayes.checks`.
"""

import numbers
import os
import stat
import tempfile

from pacbayes.checks import integer
from pacbayes.errors import InputError


# ---------------------------------------------------------------- small type checks
def type_name(value) -> str:
    return type(value).__name__


def instance(value, kind, name: str, what: str, *, optional: bool = False):
    if value is None and optional:
        return None
    if not isinstance(value, kind):
        raise InputError(f"{name} must be {what}{' or None' if optional else ''}, got {type_name(value)}")
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


MAX_SEED = 2**63 - 1
"""The largest seed: torch's generators take a signed 64-bit seed."""


def random_seed(value, name: str = "seed") -> int:
    """A seed: an integer in [0, :data:`MAX_SEED`]."""
    return integer(value, name, minimum=0, maximum=MAX_SEED)


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
    "check_not_an_input",
    "check_output_dir",
    "check_output_path",
    "instance",
    "integers",
    "names",
    "open_regular",
    "random_seed",
    "regular_file",
    "type_name",
]
