"""Settings fields that users set: the metadata that turns a dataclass field into a CLI flag and a claims key.

Each bound family's frozen settings dataclass declares its user options with :func:`option`; the
CLI (``pacbayes certify``) and claims files read them from there, so a family's flags exist once.
Torch-free, imports nothing of the package.
"""

from dataclasses import dataclass, field, fields


@dataclass(frozen=True)
class Option:
    """How a settings field is offered to users: the ``pacbayes certify`` flag (its name without
    dashes, hyphens as underscores, is also the claims key), help text, choices for a string field,
    and older flag names kept as aliases. A bool field is an on/off flag; a tuple field takes
    comma-separated numbers."""

    flag: str
    help: str
    choices: tuple = ()
    aliases: tuple = ()

    @property
    def key(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


def option(default, flag: str, help: str, choices: tuple = (), aliases: tuple = ()):
    """A dataclass field offered as a CLI flag and claims key (see :class:`Option`)."""
    return field(default=default, metadata={"cli": Option(flag, help, tuple(choices), tuple(aliases))})


def cli_fields(settings_type: type) -> list:
    """The settings fields that are user options: those with ``cli`` metadata, in declaration order."""
    return [f for f in fields(settings_type) if "cli" in f.metadata]
