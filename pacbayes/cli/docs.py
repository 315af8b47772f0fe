"""The command-line reference from the click commands themselves, and a check of docs/cli.md against them.

``python -m pacbayes.cli.docs [COMMAND ...]`` prints, for every command (or those named, e.g. ``certify``,
``"bound marginal"``), a markdown table row per flag with its default, in the layout of docs/cli.md.
:func:`doc_problems` lists every command without a section in a page and every flag without a table row
in its command's section, or whose row shows another default; tests/test_cli_docs.py keeps docs/cli.md
free of them.
"""

import re
import sys
from collections.abc import Sequence

import click

SECTION = re.compile(r"^## ([^\n]+)$", re.MULTILINE)
ROW = re.compile(r"^\|([^|\n]+)\|([^|\n]*)\|", re.MULTILINE)
FLAG = re.compile(r"`(-{1,2}[a-z][a-z0-9-]*)")


def commands(group: click.Group, prefix: str = "pacbayes") -> dict[str, click.Command]:
    """'pacbayes bound marginal' -> its click command, for every command under ``group`` (groups expanded)."""
    found = {}
    for name in group.list_commands(click.Context(group)):
        command = group.get_command(click.Context(group), name)
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            found.update(commands(command, path))
        elif command is not None:
            found[path] = command
    return found


def options(command: click.Command) -> list[click.Option]:
    """The command's flags as click declares them (``--help`` left out)."""
    return [p for p in command.params if isinstance(p, click.Option) and p.name != "help"]


def flag_name(option: click.Option) -> str:
    """The name a flag is documented under: its first long name (``--output`` for ``-o, --output``)."""
    return next((o for o in option.opts if o.startswith("--")), option.opts[0])


def default_text(option: click.Option) -> str:
    """The default as docs/cli.md writes it: off/on for a flag, required, blank for none, else the value."""
    if option.is_flag:  # an unset default is click's sentinel (8.2+), not False
        return "on" if option.default is True else "off"
    if option.required:
        return "required"
    return "" if option.default is None else str(option.default)


def row(option: click.Option) -> str:
    """One markdown table row: every name, the default, the help text."""
    names = ", ".join(f"`{name}`" for name in option.opts + option.secondary_opts)
    default = default_text(option)
    shown = f"`{default}`" if isinstance(option.type, click.Choice) and default else default
    return f"| {names} | {shown} | {' '.join((option.help or '').split())} |"


def reference(group: click.Group, only: Sequence[str] = ()) -> str:
    """The option tables of every command under ``group`` (or of the paths in ``only``), one section each."""
    parts = []
    for path, command in commands(group).items():
        if only and path.removeprefix("pacbayes ") not in only:
            continue
        rows = "\n".join(row(option) for option in options(command))
        parts.append(f"## {path}\n\n| option | default | meaning |\n|---|---|---|\n{rows}\n")
    return "\n".join(parts)


def _same_default(documented: str, option: click.Option) -> bool:
    """Whether a table's default cell states the option's default (numbers compared as numbers)."""
    expected = default_text(option)
    if option.default is None and not option.required and not option.is_flag:
        return True  # no default value: the cell says in words what happens (all, auto, ...)
    cell = documented.replace("`", "").strip()
    try:
        return float(cell) == float(expected)
    except ValueError:
        return cell == expected


def doc_problems(group: click.Group, text: str) -> list[str]:
    """Every command of ``group`` without a ``## pacbayes ...`` section in ``text``, every flag without a
    table row in its section (matched on its first long name), every row whose default differs from the
    code's, and every documented flag that the command does not have."""
    starts = list(SECTION.finditer(text))
    sections = {
        match.group(1).strip(): text[match.end() : starts[i + 1].start() if i + 1 < len(starts) else len(text)]
        for i, match in enumerate(starts)
    }
    problems = []
    for path, command in commands(group).items():
        if path not in sections:
            problems.append(f"{path}: no section '## {path}'")
            continue
        rows = {}
        for names, default in ROW.findall(sections[path]):
            for name in FLAG.findall(names):
                rows[name] = default
        known = {name for option in options(command) for name in option.opts + option.secondary_opts}
        problems += [
            f"{path}: {name} is documented but is no flag of the command" for name in rows if name not in known
        ]
        for option in options(command):
            name = flag_name(option)
            if name not in rows:
                problems.append(f"{path}: {name} has no table row")
            elif not _same_default(rows[name], option):
                problems.append(
                    f"{path}: {name} shows the default {rows[name].strip()!r}, the code has {default_text(option)!r}"
                )
    return problems


def key_table() -> str:
    """The Markdown table of every claims key, its default, its certify flag and its meaning (docs/files.md
    holds it verbatim; the flags and meanings of certify options come from ``pacbayes certify`` itself)."""
    from pacbayes.claims import OWN_SETTINGS, default_settings, family_fields, option_fields
    from pacbayes.cli import certify_command

    flags = {opt: param for param in certify_command.params for opt in param.opts}
    defaults = {**default_settings(), **{key: f.default for key, f in family_fields().items()}}
    rows = ["| key | default | certify flag | meaning |", "| --- | --- | --- | --- |"]
    for key in (*OWN_SETTINGS, *option_fields(), *family_fields()):
        param = flags.get("--" + key.replace("_", "-"))
        flag = "" if param is None else f"`{param.opts[0]}`"
        meaning = OWN_SETTINGS[key][1] if key in OWN_SETTINGS else "" if param is None else param.help
        meaning = meaning or f"CertifyOptions.{key} (no certify flag)"
        rows.append(f"| `{key}` | {_toml(defaults[key], key)} | {flag} | {meaning.replace('|', '/')} |")
    return "\n".join(rows)


def _toml(value, key: str) -> str:
    """A default as a claims file writes it (unset ones described)."""
    if value is None:
        return "from `bound`" if key == "bounds" else "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, tuple):
        return f"`[{', '.join(str(v) for v in value)}]`"
    return f"`{value}`"


if __name__ == "__main__":  # pragma: no cover
    from pacbayes.cli import main

    sys.stdout.write(reference(main, tuple(sys.argv[1:])))
