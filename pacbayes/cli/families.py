"""The bound families' own flags on ``certify``, built from their torch-free settings (:mod:`pacbayes.options`)."""

from collections.abc import Callable
from typing import Any, TypeVar

import click

from pacbayes.cli.params import FINITE, parse_float_list
from pacbayes.families import cli_fields, settings_from_keys, settings_types
from pacbayes.options import check_limits, value_kind

Decorated = TypeVar("Decorated", bound=Callable[..., Any])


def family_option_fields() -> dict[str, tuple[Any, list[str]]]:
    """flag -> (the settings field, the names of the families that declare it), over the registry."""
    flags: dict[str, tuple[Any, list[str]]] = {}
    for name, settings_type in settings_types().items():
        for f in cli_fields(settings_type):
            flags.setdefault(f.metadata["cli"].flag, (f, []))[1].append(name)
    return flags


def _click_settings(f: Any) -> dict[str, Any]:
    """click.option keyword arguments for settings field ``f`` (its type, default and choices)."""
    declared = f.metadata["cli"]
    kind = value_kind(f)
    if kind is bool:
        return {"is_flag": True, "default": f.default}
    if declared.choices:
        return {"type": click.Choice(declared.choices), "default": f.default, "show_default": True}
    if kind is tuple:
        return {"type": str, "default": None}
    shown = f.default is not None
    return {
        "type": FINITE if kind is float else int if kind is int else str,
        "default": f.default,
        "show_default": shown,
    }


def family_options(command: Decorated) -> Decorated:
    """Add every registered family's user options to ``command``, once per flag (see pacbayes.options)."""
    for flag, (f, names) in reversed(list(family_option_fields().items())):
        declared = f.metadata["cli"]
        command = click.option(
            flag, *declared.aliases, declared.key, help=f"{', '.join(names)}: {declared.help}", **_click_settings(f)
        )(command)
    return command


def family_settings(values: dict[str, Any]) -> dict[str, Any]:
    """Family name -> settings from the family flags (comma-separated lists parsed first, every
    number checked against its declared limits)."""
    given = dict(values)
    for flag, (f, _) in family_option_fields().items():
        key = f.metadata["cli"].key
        if value_kind(f) is tuple:
            if values[key] is None:  # not given: the field's default (e.g. the subspace level grid)
                del given[key]
            else:
                given[key] = parse_float_list(values[key], flag)
        if key in given:
            check_limits(f, given[key], flag)
    return settings_from_keys(given)
