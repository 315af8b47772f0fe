"""``pacbayes plot`` and ``pacbayes report``: a certify report (or a monitor history) as a PNG or an HTML page."""

import click

from pacbayes.arguments import check_not_an_input, check_output_path
from pacbayes.cli.app import emit
from pacbayes.cli.params import json_option
from pacbayes.cli.reports import check_verifies, read_json
from pacbayes.errors import PacBayesError


@click.command("plot")
@click.argument("input_path", metavar="REPORT.json|HISTORY.json")
@click.option("-o", "--output", "output_path", required=True, help="Write the PNG here.")
@json_option
def plot_command(input_path: str, output_path: str, as_json: bool) -> None:
    """Draw a certify report (every bound beside the measured errors and the hold-out bound) or a
    BoundMonitor history (errors and bounds per checkpoint) as a PNG; needs pacbayes[plot]."""
    from pacbayes.figures import REPORT, figure_for, kind_of, require_matplotlib, save_png

    require_matplotlib()
    check_output_path(output_path, "-o/--output")
    check_not_an_input(output_path, "-o/--output", {"the input file": input_path})
    hint = "give the JSON written by certify --out or by BoundMonitor.history_to_json"
    payload = read_json(input_path, "input", hint)
    if kind_of(payload, input_path) == REPORT:
        check_verifies(payload, input_path)
    kind, figure = figure_for(payload, input_path)
    save_png(figure, output_path)
    emit({"figure": output_path, "kind": kind}, as_json, f"wrote the {kind} figure to {output_path}")


@click.command("report")
@click.argument("report_path", metavar="REPORT.json")
@click.option("-o", "--output", "output_path", required=True, help="Write the HTML page here.")
@json_option
def report_command(report_path: str, output_path: str, as_json: bool) -> None:
    """Write a certify report as one self-contained HTML page: the bounds table, the picture, what each
    bound certifies, the delta ledger, the assumptions and the provenance."""
    from pacbayes.figures import REPORT, kind_of
    from pacbayes.html_report import write_html

    check_output_path(output_path, "-o/--output")
    check_not_an_input(output_path, "-o/--output", {"the REPORT file": report_path})
    record = read_json(report_path)
    if kind_of(record, report_path) != REPORT:
        raise PacBayesError(f"{report_path} is a monitor history, not a certify report; draw it with pacbayes plot")
    check_verifies(record, report_path)
    write_html(record, output_path)
    emit({"page": output_path}, as_json, f"wrote the HTML report to {output_path}")
