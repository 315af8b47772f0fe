"""``pacbayes check``: check every generalisation claim in a claims file."""

import os
import sys

import click

from pacbayes.arguments import check_output_dir, regular_file
from pacbayes.cli.app import emit, fail
from pacbayes.cli.params import json_option, load_data_spec, quiet_option


@click.command("check")
@click.argument("claims_path", metavar="CLAIMS.toml")
@click.option(
    "--cache-dir",
    default=None,
    help="Cache certify reports here by content hash (entries that are corrupt or fail verify are recomputed).",
)
@click.option(
    "--trust-pickle",
    is_flag=True,
    help="Allow fully pickled model files (unpickling runs code from the file). A claims file "
    "can never allow this itself.",
)
@click.option(
    "--trust-code",
    is_flag=True,
    help="Allow the claims file's architecture keys (importing 'file.py:Class' or 'module:Class' runs its code).",
)
@quiet_option
@json_option
def check_command(
    claims_path: str, cache_dir: str | None, trust_pickle: bool, trust_code: bool, quiet: bool, as_json: bool
) -> None:
    """Check every generalisation claim in CLAIMS.toml; exit 1 if any claim fails, 2 if any could not
    be checked (an ERROR row; the other claims still run)."""
    from pacbayes.claims import check_claims, render_table

    if os.path.exists(claims_path):
        regular_file(claims_path, "claims file")  # a FIFO or a device would block the read
    if cache_dir:
        check_output_dir(cache_dir, "--cache-dir")
    results = check_claims(
        claims_path,
        load_data_spec,
        cache_dir=cache_dir or False,
        quiet=quiet,
        trust_pickle=trust_pickle,
        trust_code=trust_code,
    )
    errors = [r for r in results if r.error is not None]
    failed = sum(not r.passed for r in results) - len(errors)
    payload = {
        "claims": [r.to_dict() for r in results],
        "passed": len(results) - failed - len(errors),
        "failed": failed,
        "errors": len(errors),
        "all_passed": failed == 0 and not errors,
    }
    emit(payload, as_json, render_table(results))
    if errors:
        fail(
            f"{len(errors)} of {len(results)} claims could not be checked (first: {errors[0].name}: {errors[0].error})",
            2,
        )
    if failed:
        sys.exit(1)
