"""The bound families and their one registry.

A family implements :class:`pacbayes.families.base.BoundFamily`; adding one is a module here, its
formula in :mod:`pacbayes.bounds` and one line in ``FAMILIES`` below. ``certify``, the CLI, reports,
claims, ``assert_certified`` and ``BoundMonitor`` iterate this registry.
"""

from pacbayes.errors import InputError
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


def get_family(name: str) -> BoundFamily:
    """The registered family called ``name`` (InputError naming the choices otherwise)."""
    if name not in FAMILIES:
        raise InputError(f"unknown bound family {name!r}; choose from {', '.join(FAMILIES)}")
    return FAMILIES[name]


__all__ = [
    "FAMILIES",
    "Baseline",
    "BoundFamily",
    "FamilyOutcome",
    "Option",
    "RunContext",
    "cli_fields",
    "get_family",
    "option",
    "settings_attribute",
    "stamped",
]
