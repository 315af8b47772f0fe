"""``pacbayes verify``: check that a certify report still matches its model file and data."""

import os
import sys
from typing import Any

import click

from pacbayes.arguments import regular_file
from pacbayes.cli.app import emit
from pacbayes.cli.certify import certify_command
from pacbayes.cli.params import json_option, load_data_spec, parse_json_object
from pacbayes.cli.reports import read_report
from pacbayes.errors import PacBayesError


@click.command("verify")
@click.argument("report_path", metavar="REPORT.json")
@click.argument("model_path", metavar="[MODEL]", required=False)
@click.option("--train", "train_spec", default=None, help="Training data to hash (default: the recorded --train).")
@click.option("--test", "test_spec", default=None, help="Test data to hash (default: the recorded --test).")
@click.option(
    "--rerun", is_flag=True, help="Also certify MODEL again at the report's delta with the recorded options and seed."
)
@click.option(
    "--architecture",
    default=None,
    help="module:Class for a state_dict MODEL (default: the recorded one, with --trust-code).",
)
@click.option("--kwargs", "kwargs_json", default=None, help="JSON keyword arguments for --architecture.")
@click.option(
    "--trust-code",
    is_flag=True,
    help="With --rerun, allow the --architecture recorded in the report (importing it runs its code).",
)
@click.option("--quiet", is_flag=True, help="Print nothing; the exit status says it all.")
@json_option
def verify_command(
    report_path: str,
    model_path: str | None,
    train_spec: str | None,
    test_spec: str | None,
    rerun: bool,
    architecture: str | None,
    kwargs_json: str | None,
    trust_code: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Check that REPORT.json (from certify --json or --out) still matches its model file and data.

    Recomputes every bound in the report from the inputs it stores, each row's certified flag, the
    ledger, the hold-out and best certified bounds; the model file's SHA-256 and kind (MODEL,
    default the recorded path), the data content hashes and counts (for a certify report, the
    recorded --train/--test unless given); with --rerun certifies again at the report's delta with
    the recorded options and seed. Exit status 0: everything checked matches; 1: a mismatch (the
    first is named); 2: bad input.
    """
    from pacbayes.models import require_trusted_code
    from pacbayes.verification import check_report, failed

    record = read_report(report_path)
    recorded = _recorded_certify_params(record)
    model_path = model_path or record.get("model_path")
    if model_path is not None and not isinstance(model_path, str):
        raise PacBayesError(
            f"{report_path}: its model_path must be a file path (a string), got {model_path!r:.60}; give MODEL"
        )
    if isinstance(model_path, str) and os.path.exists(model_path):
        regular_file(model_path, "MODEL")  # hashing a FIFO or /dev/zero would never end
    if rerun and model_path is None:
        raise PacBayesError("--rerun needs the model: give MODEL (the report records no model_path)")
    train_spec = train_spec or recorded.get("train_spec")
    test_spec = test_spec or recorded.get("test_spec")
    if rerun and (train_spec is None or test_spec is None):
        raise PacBayesError("--rerun needs the data: give --train and --test (the report's command line has none)")
    model = None
    if rerun:
        from pacbayes.subspace import load_model_or_subspace

        if architecture is None:  # one typed on this command line is the user's own choice
            architecture = recorded.get("architecture")
            require_trusted_code(architecture, f"the command line recorded in {report_path}", trust_code)
        kwargs = parse_json_object(kwargs_json or recorded.get("kwargs_json"), "--kwargs")
        model = load_model_or_subspace(model_path, architecture, kwargs, trust_pickle=False)[0]
    checks = check_report(
        record,
        model_file=model_path,
        train=None if train_spec is None else load_data_spec(train_spec),
        test=None if test_spec is None else load_data_spec(test_spec),
        model=model,
    )
    mismatches = failed(checks)
    payload = {
        "matches": not mismatches,
        "first_mismatch": mismatches[0].name if mismatches else None,
        "checks": [c.to_dict() for c in checks],
    }
    lines = [f"  {c.status:<9} {c.name}" + (f"  ({c.note})" if c.note else "") for c in checks]
    verdict = f"MISMATCH: {mismatches[0].name}" if mismatches else "the report matches"
    if not quiet:
        emit(payload, as_json, "\n".join([f"pacbayes verify {report_path}", *lines, verdict]))
    if mismatches:
        sys.exit(1)


def _recorded_certify_params(record: dict[str, Any]) -> dict[str, Any]:
    """The certify options of the report's recorded command line, parsed as certify would (else {})."""
    argv = (record.get("provenance") or {}).get("command_line") or []
    if not isinstance(argv, list) or "certify" not in argv:
        return {}
    args = [str(word) for word in argv[argv.index("certify") + 1 :]]
    try:
        return certify_command.make_context("certify", args, resilient_parsing=True).params
    except click.ClickException:
        return {}
