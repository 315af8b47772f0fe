"""Report files in and out of the commands: print and write a certify report, its PNG and HTML views,
and read a report or a monitor history back."""

import json
import os
from typing import Any

from pacbayes.arguments import check_output_path, open_regular, regular_file
from pacbayes.checks import parsed
from pacbayes.cli.app import emit
from pacbayes.errors import PacBayesError

MAX_REPORT_BYTES = 1 << 26
"""The largest report file read (64 MiB; a certify report is a few kilobytes)."""


def print_report(report: Any, model_path: str, out_path: str | None, as_json: bool) -> dict[str, Any]:
    """Print a certify report (``--json`` or the table), write it to ``out_path`` if given; returns its JSON."""
    from pacbayes.provenance import model_file_record
    from pacbayes.report import render_text, write_json_atomically

    report.provenance.update(model_file_record(model_path))  # the file's SHA-256 and kind
    payload = dict(report.to_dict(), model_path=model_path)
    if out_path:
        try:
            write_json_atomically(payload, out_path)
        except OSError as err:  # checked before computing; the place changed since
            raise PacBayesError(
                f"--out {out_path}: cannot write the report ({err.strerror or err}); choose a writable path"
            ) from None
    emit(payload, as_json, render_text(report, title=f"pacbayes certificate for {model_path}"))
    return payload


def check_views(views: dict[str, str | None]) -> dict[str, str | None]:
    """Check the --plot and --html paths (flag -> path) before any work: writable, and matplotlib
    installed for a --plot. Returns ``views``."""
    from pacbayes.figures import require_matplotlib

    for flag, path in views.items():
        check_output_path(path, flag)
    if views.get("--plot"):
        require_matplotlib()
    return views


def write_views(payload: dict[str, Any], plot_path: str | None, html_path: str | None) -> None:
    """Write the --plot PNG and the --html page of a certify report, from the same values as its JSON."""
    from pacbayes.figures import png_bytes, report_figure, write_png
    from pacbayes.html_report import write_html
    from pacbayes.report import json_safe

    record = json_safe(payload)
    png = png_bytes(report_figure(record)) if plot_path else None  # drawn once for both
    if png is not None and plot_path:
        write_png(png, plot_path)
    if html_path:
        write_html(record, html_path, png)


def read_json(path: str, what: str = "report", hint: str = "give the file written by certify --out") -> Any:
    """The JSON value in the file ``path`` (a ``what``); one-line errors end with ``hint``."""
    if not os.path.exists(path):
        raise PacBayesError(f"{path}: no such {what} file; {hint}")
    regular_file(path, what)  # a directory is refused here, by name
    with open_regular(path, what, MAX_REPORT_BYTES) as stream:  # a FIFO or /dev/zero would never end
        raw = stream.read()
    try:
        return parsed(json.loads, raw.decode("utf-8"), f"{what} {path}")
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PacBayesError(f"{path}: not a JSON {what} ({err}); {hint}") from None


def read_report(path: str) -> dict[str, Any]:
    """The certify report (one JSON object) in the file ``path``."""
    record = read_json(path)
    if not isinstance(record, dict):
        raise PacBayesError(f"{path}: a report is one JSON object; give the file written by certify --out")
    return record


def check_verifies(record: dict[str, Any], where: str) -> None:
    """PacBayesError unless every certified number of the report recomputes from its stored inputs
    (:func:`pacbayes.verification.check_report`): a picture or a page never shows an edited report as certified."""
    from pacbayes.verification import check_report, failed

    mismatches = failed(check_report(record))
    if mismatches:
        raise PacBayesError(
            f"{where} does not verify (check {mismatches[0].name} fails), so it is not drawn; "
            f"run pacbayes verify {where} for every check, or certify the model again"
        )
