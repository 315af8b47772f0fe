"""Argument checks shared across the package (torch-free; one clear error per bad input).

The validation primitives, one definition each, so that every entry point agrees on what a value is:

- a *number* (:func:`number`, :func:`finite`, :func:`nonnegative`, :func:`probability`, :func:`delta`) is
  anything ``float()`` takes (Python and numpy floats and ints, a 0-d array) except a bool, a string
  or bytes;
- an *integer* (:func:`integer`, :func:`positive_integer`, :func:`integer_at_least`) is a Python or
  numpy integer (``numbers.Integral``), never a bool and never a float, not even 3.0;
- a *count* of the bound arithmetic (:func:`sample_size`: m, n, k, errors) is an integer or a float
  holding a whole number (``m=1e4``), since those functions take plain numbers from any arithmetic;
- a *flag* (:func:`flag`) is True or False, nothing else.
"""

import math
import numbers

from pacbayes.errors import InputError


def number(value, name: str) -> float:
    """``value`` as a float (infinities and NaN kept); a bool, a string (even "0.05"), None or anything
    float() refuses is an InputError."""
    if isinstance(value, (str, bytes)):
        raise InputError(f"{name} must be a number, got the string {value!r}")
    if isinstance(value, bool):
        raise InputError(f"{name} must be a number, got the bool {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r} ({type(value).__name__})") from None


def finite(value: float, name: str, *, low=None, high=None, open_low: bool = False, open_high: bool = False) -> float:
    """``value`` as a finite float (see :func:`number` for what is refused), inside [``low``, ``high``] when
    they are given (``open_low`` / ``open_high``: excluding that end)."""
    value = number(value, name)
    if not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, got {value}")
    below = low is not None and (value <= low if open_low else value < low)
    above = high is not None and (value >= high if open_high else value > high)
    if below or above:
        if high is None:
            wanted = f"be {'>' if open_low else '>='} {low:g}"
        elif low is None:
            wanted = f"be {'<' if open_high else '<='} {high:g}"
        else:
            wanted = f"lie in {'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
        raise InputError(f"{name} must {wanted}, got {value}")
    return value


def delta(value: float, name: str = "delta") -> float:
    value = finite(value, name)
    if not 0.0 < value < 1.0:
        raise InputError(f"{name} must lie in (0, 1), got {value}; e.g. use {name}=0.05")
    return value


def sample_size(value, name: str = "m", minimum: int = 2) -> int:
    """A count of the bound arithmetic as an int: an integer, or a float holding a whole number (1e4),
    at least ``minimum``."""
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


def _integer_range(minimum, maximum) -> str:
    if minimum is not None and maximum is not None:
        return f"an integer in [{minimum}, {maximum}]"
    if minimum is not None:
        return f"an integer >= {minimum}"
    return "an integer" if maximum is None else f"an integer <= {maximum}"


def integer(value, name: str, *, minimum=None, maximum=None, optional: bool = False):
    """``value`` as an int: a Python or numpy integer (not a bool, not a float) in [``minimum``, ``maximum``]
    (None: unbounded); None stays None when ``optional``."""
    if value is None and optional:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or (minimum is not None and value < minimum)
        or (maximum is not None and value > maximum)
    ):
        wanted = _integer_range(minimum, maximum) + (" or None" if optional else "")
        shown = f"{value!r}" if isinstance(value, numbers.Integral) and not isinstance(value, bool) else _shown(value)
        raise InputError(f"{name} must be {wanted}, got {shown}")
    return int(value)


def _shown(value) -> str:
    return f"{value!r} ({type(value).__name__})"


def integer_at_least(value, name: str, minimum: int) -> int:
    """:func:`integer` with a lowest value."""
    return integer(value, name, minimum=minimum)


def positive_integer(value, name: str) -> int:
    """:func:`integer` >= 1."""
    return integer(value, name, minimum=1)


def flag(value, name: str) -> bool:
    """``value`` when it is True or False (not 0, 1 or a string)."""
    if not isinstance(value, bool):
        raise InputError(f"{name} must be True or False, got {_shown(value)}")
    return value


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
