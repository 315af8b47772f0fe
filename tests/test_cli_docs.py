"""docs/cli.md documents every command and every flag of the command line, each with the code's default."""

import subprocess
import sys
from pathlib import Path

import click

from pacbayes.cli import main
from pacbayes.cli.docs import commands, doc_problems, reference

CLI_DOCS = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text(encoding="utf-8")

PLOT_DOCS = """## pacbayes plot

| option | default | meaning |
|---|---|---|
| `-o`, `--output FILE.png` | required | where to write the picture |
| `--json` | off | see above |
"""


def pacbayes_with(command: click.Command) -> click.Group:
    """A ``pacbayes`` group holding only ``command``."""
    return click.Group("pacbayes", commands=[command])


def plot_like(*extra: click.Option, output_required: bool = True) -> click.Command:
    output = click.Option(["-o", "--output"], required=output_required, default=None if output_required else "a.png")
    return click.Command("plot", params=[output, click.Option(["--json"], is_flag=True), *extra])


def test_every_command_and_flag_is_in_the_docs_with_its_default():
    assert doc_problems(main, CLI_DOCS) == []
    assert {"pacbayes certify", "pacbayes bound marginal", "pacbayes data export"} <= set(commands(main))


def test_the_documented_plot_section_matches_a_command_with_its_flags():
    assert doc_problems(pacbayes_with(plot_like()), PLOT_DOCS) == []


def test_a_flag_added_to_the_code_but_not_the_docs_is_named():
    dpi = click.Option(["--dpi"], type=int, default=100, show_default=True)
    assert doc_problems(pacbayes_with(plot_like(dpi)), PLOT_DOCS) == ["pacbayes plot: --dpi has no table row"]


def test_a_default_changed_in_the_code_but_not_the_docs_is_named():
    problems = doc_problems(pacbayes_with(plot_like(output_required=False)), PLOT_DOCS)
    assert problems == ["pacbayes plot: --output shows the default 'required', the code has 'a.png'"]


def test_a_documented_flag_the_command_lacks_and_a_missing_section_are_named():
    no_json = click.Command("plot", params=[click.Option(["-o", "--output"], required=True)])
    assert doc_problems(pacbayes_with(no_json), PLOT_DOCS) == [
        "pacbayes plot: --json is documented but is no flag of the command"
    ]
    assert doc_problems(pacbayes_with(click.Command("frobnicate")), PLOT_DOCS) == [
        "pacbayes frobnicate: no section '## pacbayes frobnicate'"
    ]


def test_the_generated_reference_lists_every_flag_with_its_default():
    assert doc_problems(main, reference(main)) == []
    done = subprocess.run(
        [sys.executable, "-m", "pacbayes.cli.docs", "bound marginal"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and done.stdout.startswith("## pacbayes bound marginal\n")
    assert "| `--delta` | 0.05 | Failure probability in (0, 1). |" in done.stdout
    assert "pacbayes certify" not in done.stdout
