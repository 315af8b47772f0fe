"""Argument checks shared across the package (torch-free; one clear error per bad input)."""

import math
import numbers

from pacbayes.errors import InputError


def finite(value: float, name: str) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, got {value}")
    return value


def delta(value: float, name: str = "delta") -> float:
    value = finite(value, name)
    if not 0.0 < value < 1.0:
        raise InputError(f"{name} must lie in (0, 1), got {value}; e.g. use {name}=0.05")
    return value


def sample_size(value, name: str = "m", minimum: int = 2) -> int:
    if isinstance(value, bool) or int(value) != value:
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


def zip_damage(path):
    """None if ``path`` is not a zip archive or every member passes its CRC check; else a short
    description of the damage (torch.jit.load and torch.load do not check CRCs, so a flipped byte
    would otherwise load as silently different weights)."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except Exception as err:  # BadZipFile, zlib.error, EOFError, OSError, NotImplementedError ...
        return f"the zip archive is unreadable ({' '.join(str(err).split())[:120]})"
    return None if bad is None else f"member {bad} fails its zip CRC check"
