"""Settings fields that users set: the metadata that turns a dataclass field into a CLI flag and a claims key.

Each bound family's frozen settings dataclass declares its user options with :func:`option`; the
CLI (``pacbayes certify``) and claims files read them from there, so a family's flags exist once.
Torch-free; values are checked with the primitives of :mod:`pacbayes.checks`.
"""

import numbers
import types
import typing
from dataclasses import dataclass, field, fields

from pacbayes import checks
from pacbayes.errors import InputError


@dataclass(frozen=True)
class Option:
    """How a settings field is offered to users: the ``pacbayes certify`` flag (its name without
    dashes, hyphens as underscores, is also the claims key), help text, choices for a string field,
    older flag names kept as aliases, whether the value is a file path, and the (lowest, highest)
    value a number, or each number of a list, may take (None: unbounded), refused before any work.
    A bool field is an on/off flag; a tuple field takes comma-separated numbers."""

    flag: str
    help: str
    choices: tuple = ()
    aliases: tuple = ()
    path: bool = False
    limits: tuple = (None, None)

    @property
    def key(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


def option(
    default,
    flag: str,
    help: str,
    choices: tuple = (),
    aliases: tuple = (),
    path: bool = False,
    limits: tuple = (None, None),
):
    """A dataclass field offered as a CLI flag and claims key (see :class:`Option`); ``path``: the value
    is a file path, which a claims file gives relative to itself; ``limits``: (lowest, highest) value."""
    return field(
        default=default, metadata={"cli": Option(flag, help, tuple(choices), tuple(aliases), path, tuple(limits))}
    )


LEDGER_FLAG = "--attempts-ledger"


def ledger_option():
    """The ``--attempts-ledger`` settings field every family declares (one flag, one ledger mechanism,
    :mod:`pacbayes.attempts`)."""
    return option(
        None,
        LEDGER_FLAG,
        "JSON-lines file counting runs (any seed) on this data and these settings; "
        "attempt k spends 6 delta / (pi^2 k^2), so keeping the best is valid.",
        path=True,
    )


def cli_fields(settings_type: type) -> list:
    """The settings fields that are user options: those with ``cli`` metadata, in declaration order."""
    return [f for f in fields(settings_type) if "cli" in f.metadata]


def value_kind(f) -> type:
    """The type a dataclass field holds: X for ``X | None`` (or ``Optional[X]``), else the field's type as
    declared (``tuple[int, ...]`` stays itself)."""
    if typing.get_origin(f.type) in (typing.Union, types.UnionType):
        return next(t for t in typing.get_args(f.type) if t is not type(None))
    return f.type


def checked_value(f, value, name: str):
    """``value`` for settings field ``f``, type-checked as a claims file or API user gives it
    (InputError naming ``name`` otherwise): a bool, an int, a finite number, a list of finite
    numbers for a tuple field, or a string from the field's choices; None where the default is None."""
    declared, kind = f.metadata["cli"], value_kind(f)
    if value is None and f.default is None:
        return None
    if kind is bool:
        return checks.flag(value, name)
    if kind is int:
        value = checks.integer(value, name)
        check_limits(f, value, name)
        return value
    if kind is float or kind is tuple:
        items = list(value) if kind is tuple and isinstance(value, (list, tuple)) else [value]
        try:
            finite = tuple(checks.finite(v, name) for v in items)
        except InputError:  # worded for the whole value: the claims key names it, not one item
            shape = "a list of finite numbers" if kind is tuple else "a finite number"
            raise InputError(f"{name} must be {shape}, got {value!r}") from None
        check_limits(f, value, name)
        return finite if kind is tuple else finite[0]
    if not isinstance(value, str) or (declared.choices and value not in declared.choices):
        choices = f" (one of {', '.join(declared.choices)})" if declared.choices else ""
        raise InputError(f"{name} must be a string{choices}, got {value!r}")
    return value


def check_limits(f, value, name: str) -> None:
    """InputError naming ``name`` when ``value`` (a number, or a list of them) leaves the (lowest, highest)
    limits that settings field ``f`` declares; a value that is not a number is left to the type checks."""
    low, high = f.metadata["cli"].limits
    items = value if isinstance(value, (tuple, list)) else (value,)
    numbers_in = [v for v in items if isinstance(v, numbers.Real) and not isinstance(v, bool)]
    if any((low is not None and v < low) or (high is not None and v > high) for v in numbers_in):
        bounds = (
            f"at least {low:g}" if high is None else f"at most {high:g}" if low is None else f"in [{low:g}, {high:g}]"
        )
        raise InputError(f"{name} must be {bounds}, got {value!r}")
