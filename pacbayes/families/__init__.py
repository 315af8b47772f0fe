"""The bound families and their one registry.

A family implements :class:`pacbayes.families.base.BoundFamily`; adding one is a module here, its
formula in :mod:`pacbayes.bounds` and one line in ``FAMILIES`` below. ``certify``, the CLI, reports,
claims, ``assert_certified`` and ``BoundMonitor`` iterate this registry.
"""

from pacbayes.families import dziugaite_roy, marginal, subspace
from pacbayes.families.base import Baseline, BoundFamily, FamilyOutcome, Option, RunContext, cli_fields, option, stamped

FAMILIES = {
    family.name: family
    for family in (
        marginal.FAMILY,
        dziugaite_roy.FAMILY,
        subspace.FAMILY,
    )
}


def settings_attribute(name: str) -> str:
    """The attribute of :class:`pacbayes.certification.CertifyOptions` holding family ``name``'s settings."""
    return name.replace("-", "_")


def settings_from_keys(values) -> dict:
    """CertifyOptions keyword arguments: every registered family's settings, with the options that
    ``values`` names (by claims/CLI key, :attr:`pacbayes.options.Option.key`) set, the rest at defaults."""
    result = {}
    for name, family in FAMILIES.items():
        fields = cli_fields(family.settings_type)
        chosen = {f.name: values[f.metadata["cli"].key] for f in fields if f.metadata["cli"].key in values}
        result[settings_attribute(name)] = family.settings_type(**chosen)
    return result


__all__ = [
    "FAMILIES",
    "Baseline",
    "BoundFamily",
    "FamilyOutcome",
    "Option",
    "RunContext",
    "cli_fields",
    "option",
    "settings_attribute",
    "settings_from_keys",
    "stamped",
]
