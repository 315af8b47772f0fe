"""The ``pacbayes`` group: one-line errors, exit statuses, warnings, and printing a result.

Every command prints a human-readable result, or one JSON object on stdout with ``--json``.
Bad input exits with status 2 and one line on stderr (``pacbayes: error: ...``), no traceback.
"""

import json
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn, TextIO

import click

from pacbayes import __version__
from pacbayes.cli.interrupt import INTERRUPTED
from pacbayes.errors import PacBayesError, PacBayesWarning

HUGE_PAGES = "THP_MEM_ALLOC_ENABLE"
"""PyTorch's switch for transparent huge pages in its CPU allocator, read once when torch loads; the command line
turns it on unless the environment sets it."""


class _Interrupted(Exception):
    """Ctrl-C inside a command (click would turn a KeyboardInterrupt into a plain Abort)."""


class _OneLineErrors(click.Group):
    """A click group whose usage and input errors are one line on stderr with exit status 2;
    Ctrl-C (SIGINT) is one line ``pacbayes: interrupted`` with exit status 130."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise _Interrupted() from None

    def main(  # type: ignore[override]  # always exits, whatever standalone_mode click's overloads name
        self, args: Sequence[str] | None = None, prog_name: str | None = None, **extra: Any
    ) -> NoReturn:
        warnings.showwarning = _show_warning
        # torch (imported later, by the command) then backs large CPU tensors with huge pages: the Monte Carlo
        # kernel's activations spent much of their time in fresh 4 KiB page faults (1.4x faster with it)
        os.environ.setdefault(HUGE_PAGES, "1")
        try:
            code = super().main(args=args, prog_name=prog_name or "pacbayes", standalone_mode=False, **extra)
        except click.exceptions.Exit as stop:
            code = stop.exit_code
        except click.ClickException as err:
            fail(err.format_message(), err.exit_code)
        except (_Interrupted, KeyboardInterrupt):
            _interrupted()
        except click.Abort as err:
            if isinstance(err.__cause__, KeyboardInterrupt):
                _interrupted()
            fail("aborted", 1)
        except PacBayesError as err:
            fail(str(err), 2)
        except OSError as err:  # a file that vanished or a disk that filled up mid-command
            where = f" ({err.filename})" if getattr(err, "filename", None) else ""
            fail(f"{err.strerror or err}{where}; check the paths given and the free space", 2)
        sys.exit(code if isinstance(code, int) else 0)


_python_show_warning = warnings.showwarning


_third_party_warnings = False
"""Whether warnings of other packages (torch's FutureWarnings, ...) reach stderr: the main group's --verbose."""


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """pacbayes's own warnings as one line ``pacbayes: warning: ...`` on stderr; its other warning classes as
    Python shows them; warnings of other packages only with ``--verbose`` (they interrupt progress output
    and are not the user's to act on)."""
    if issubclass(category, PacBayesWarning):
        click.echo("pacbayes: warning: " + " ".join(str(message).split()), err=True)
    elif _third_party_warnings or category.__module__.partition(".")[0] == "pacbayes":
        _python_show_warning(message, category, filename, lineno, file, line)


def _interrupted() -> NoReturn:
    click.echo(INTERRUPTED, err=True)
    sys.exit(130)


def fail(message: str, code: int) -> NoReturn:
    """Print ``pacbayes: error: message`` as one line on stderr and exit with status ``code``."""
    click.echo("pacbayes: error: " + " ".join(str(message).split()), err=True)
    sys.exit(code)


def emit(payload: dict[str, Any], as_json: bool, text: str) -> None:
    """Print ``payload`` as one JSON object (``--json``) or ``text`` for people.

    JSON has no inf or NaN: such values are printed as null and listed under ``notes``
    (:func:`pacbayes.report.json_safe`, the same rule as the ``--out`` file)."""
    from pacbayes.report import json_safe

    if as_json:
        click.echo(json.dumps(json_safe(payload), allow_nan=False))
    else:
        click.echo(text)


@click.group(cls=_OneLineErrors)
@click.version_option(__version__, prog_name="pacbayes")
@click.option("--verbose", is_flag=True, help="Also show other packages' warnings (torch's, ...).")
def main(verbose: bool) -> None:
    """Certified PAC-Bayes generalisation bounds for trained neural networks."""
    global _third_party_warnings
    _third_party_warnings = verbose
