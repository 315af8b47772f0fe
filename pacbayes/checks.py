"""Argument checks shared across the package (torch-free; one clear error per bad input)."""

import math
import numbers

from pacbayes.errors import InputError


def number(value, name: str) -> float:
    """``value`` as a float (infinities and NaN kept); a string (even "0.05"), None or anything float()
    refuses is an InputError."""
    if isinstance(value, (str, bytes)):
        raise InputError(f"{name} must be a number, got the string {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r} ({type(value).__name__})") from None


def finite(value: float, name: str) -> float:
    """``value`` as a finite float (see :func:`number` for what is refused)."""
    value = number(value, name)
    if not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, got {value}")
    return value


def delta(value: float, name: str = "delta") -> float:
    value = finite(value, name)
    if not 0.0 < value < 1.0:
        raise InputError(f"{name} must lie in (0, 1), got {value}; e.g. use {name}=0.05")
    return value


def sample_size(value, name: str = "m", minimum: int = 2) -> int:
    try:
        whole = not isinstance(value, (bool, str, bytes)) and int(value) == value
    except (TypeError, ValueError, OverflowError):  # None, nan, inf, an array
        whole = False
    if not whole:
        raise InputError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < minimum:
        raise InputError(f"{name} must be at least {minimum}, got {value}")
    return value


def probability(value: float, name: str) -> float:
    value = finite(value, name)
    if not 0.0 <= value <= 1.0:
        raise InputError(f"{name} must lie in [0, 1], got {value}")
    return value


def prior_part_size(m: int, fraction: float, name: str = "prior_split", min_bound: int = 8) -> int:
    """round(fraction m), the points a data-dependent prior is learned on, when both that part and the
    other m - round(fraction m) points (at least ``min_bound``, for the bound) are non-empty."""
    fraction = probability(fraction, name)
    m_prior = int(round(fraction * m))
    if m_prior < 1 or m - m_prior < min_bound:
        raise InputError(
            f"{name}={fraction:g} leaves {m_prior} prior and {m - m_prior} bound points; both parts need "
            f"points (the bound needs >= {min_bound}): choose a split in (0, 1) such as 0.5"
        )
    return m_prior


def nonnegative(value: float, name: str) -> float:
    value = finite(value, name)
    if value < 0.0:
        raise InputError(f"{name} must be >= 0, got {value}")
    return value


def integer_at_least(value, name: str, minimum: int) -> int:
    """``value`` as an int; InputError unless it is an integer (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


MAX_NESTING = 100
"""The deepest nesting of lists and tables accepted in a JSON or TOML input (reports and claims files
nest fewer than ten deep); deeper documents exhaust the parser's or a later walk's stack."""


def parsed(parse, source, what: str):
    """``parse(source)`` (``json.loads``, ``tomllib.load``, ...), refusing a document nested deeper than
    :data:`MAX_NESTING` with an InputError naming ``what``; the parser's other errors pass through."""
    try:
        document = parse(source)
    except RecursionError:
        raise _too_deep(what) from None
    if _depth(document) > MAX_NESTING:
        raise _too_deep(what)
    return document


def _too_deep(what: str) -> InputError:
    return InputError(
        f"{what} nests lists or tables more than {MAX_NESTING} deep, which no valid input does; check what was passed"
    )


def _depth(document) -> int:
    """How deep lists, tuples and dicts nest in ``document`` (without recursion; stops past MAX_NESTING)."""
    deepest, pending = 0, [(document, 0)]
    while pending and deepest <= MAX_NESTING:
        value, level = pending.pop()
        if isinstance(value, (dict, list, tuple)):
            deepest = max(deepest, level + 1)
            pending.extend((item, level + 1) for item in (value.values() if isinstance(value, dict) else value))
    return deepest


def zip_damage(path):
    """None if ``path`` (a file name or a binary stream) is not a zip archive, or if every member passes its
    CRC check and no member name appears twice; else a short description of the damage (torch.jit.load and
    torch.load do not check CRCs, so a flipped byte would otherwise load as silently different weights, and
    with a name twice torch and Python's zipfile may read different members)."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            twice = _repeated(archive.namelist())
            bad = archive.testzip()
    except Exception as err:  # BadZipFile, zlib.error, EOFError, OSError, NotImplementedError ...
        return f"the zip archive is unreadable ({' '.join(str(err).split())[:120]})"
    if twice is not None:
        return f"member {twice} appears twice"
    return None if bad is None else f"member {bad} fails its zip CRC check"


def _repeated(names):
    """The first name that appears a second time in ``names``, or None."""
    seen = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return None
