"""A new command is one module with a click command, one line in ``pacbayes.cli.COMMANDS`` and its section in
docs/cli.md: a toy command added here (the three lines at the top of each test) gets the group's one-line
errors, ``--json`` through :func:`pacbayes.cli.emit`, and the docs check names what it still lacks."""

import json

import click
import pytest
from click.testing import CliRunner

from pacbayes.cli import emit, main
from pacbayes.cli.docs import doc_problems, reference
from pacbayes.errors import InputError


@click.command("double")
@click.argument("value", type=float)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def double(value: float, as_json: bool) -> None:
    """Twice VALUE (a toy command)."""
    if value < 0:
        raise InputError(f"VALUE must be >= 0, got {value}; give a non-negative number")
    emit({"value": value, "doubled": 2 * value}, as_json, f"2 x {value} = {2 * value}")


@pytest.fixture
def with_double():
    main.add_command(double)  # the one line in COMMANDS
    yield main
    main.commands.pop("double")


def test_the_toy_command_runs_and_prints_json(with_double):
    result = CliRunner().invoke(with_double, ["double", "2.5"])
    assert result.exit_code == 0 and result.output.strip() == "2 x 2.5 = 5.0"
    result = CliRunner().invoke(with_double, ["double", "2.5", "--json"])
    assert result.exit_code == 0 and json.loads(result.output) == {"value": 2.5, "doubled": 5.0}


def test_the_toy_command_refuses_bad_input_in_one_line_with_status_2(with_double):
    result = CliRunner().invoke(with_double, ["double", "--", "-1"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "pacbayes: error: VALUE must be >= 0, got -1.0; give a non-negative number"
    ]
    assert "Traceback" not in result.output


def test_the_docs_check_names_the_missing_section_and_the_reference_prints_its_rows(with_double):
    assert "pacbayes double: no section '## pacbayes double'" in doc_problems(with_double, "")
    section = reference(with_double, ("double",))  # what docs/cli.md gets for it
    assert section.startswith("## pacbayes double") and "| `--json` | off | Print one JSON object. |" in section
    assert not [p for p in doc_problems(with_double, section) if p.startswith("pacbayes double")]
