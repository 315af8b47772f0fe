"""The bound families and their one registry.

A family implements :class:`pacbayes.families.base.BoundFamily` by inheriting
:class:`pacbayes.families.base.FamilyBase`. A built-in one is a module here, its formula in
:mod:`pacbayes.bounds`, its settings dataclass in :mod:`pacbayes.families.settings` with one line in
its ``SETTINGS``, and the field of :class:`pacbayes.certification.CertifyOptions` that holds its settings;
a family defined elsewhere (a plugin, a test) is one entry added to ``FAMILIES`` and runs with its
default settings. ``certify``, the CLI, reports, claims, ``assert_certified`` and ``BoundMonitor``
iterate the registry ``FAMILIES`` (family name -> family).

Importing this package is torch-free: ``FAMILIES`` loads the family modules (and torch) on first use,
while :func:`settings_types` and :func:`settings_from_keys`, which the CLI needs to build its flags,
read only the settings.
"""

import importlib

from pacbayes.families.base import (
    Baseline,
    BoundFamily,
    FamilyBase,
    FamilyOutcome,
    Option,
    RunContext,
    Tracked,
    cli_fields,
    option,
    stamped,
)
from pacbayes.families.settings import SETTINGS, settings_attribute

_FAMILY_MODULES = {settings_attribute(name) for name in SETTINGS}
"""The family modules (``marginal``, ``dziugaite_roy``, ``subspace``), loaded on first use."""


def _load_families() -> dict:
    """The registry: each built-in family, from the module named after it, in :data:`SETTINGS`'s order."""
    return {name: importlib.import_module(f"{__name__}.{settings_attribute(name)}").FAMILY for name in SETTINGS}


def __getattr__(name: str):
    """``FAMILIES`` and the family modules, loaded (with torch) on first use and kept."""
    if name == "FAMILIES":
        globals()["FAMILIES"] = _load_families()
        return globals()["FAMILIES"]
    if name in _FAMILY_MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def settings_types() -> dict:
    """Family name -> settings dataclass for every registered family, without loading a family: read from
    ``FAMILIES`` once it is loaded (a family may have been added to it), from :data:`SETTINGS` before."""
    families = globals().get("FAMILIES")
    if families is None:
        return dict(SETTINGS)
    return {name: family.settings_type for name, family in families.items()}


def settings_from_keys(values) -> dict:
    """Family name -> settings for every registered family, with the options that ``values`` names (by
    claims/CLI key, :attr:`pacbayes.options.Option.key`) set, the rest at defaults; hand it to
    :meth:`pacbayes.certification.CertifyOptions.with_settings`."""
    result = {}
    for name, settings_type in settings_types().items():
        fields = cli_fields(settings_type)
        chosen = {f.name: values[f.metadata["cli"].key] for f in fields if f.metadata["cli"].key in values}
        result[name] = settings_type(**chosen)
    return result


__all__ = [
    "FAMILIES",
    "SETTINGS",
    "Baseline",
    "BoundFamily",
    "FamilyBase",
    "FamilyOutcome",
    "Option",
    "RunContext",
    "Tracked",
    "cli_fields",
    "option",
    "settings_attribute",
    "settings_from_keys",
    "settings_types",
    "stamped",
]
