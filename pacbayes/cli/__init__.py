"""The ``pacbayes`` command line: thin click commands over the library, one module each.

Every command prints a human-readable result, or one JSON object on stdout with ``--json``.
Bad input exits with status 2 and one line on stderr (``pacbayes: error: ...``), no traceback.

Only torch-free modules load here: the flags are built from them at start-up, so ``pacbayes --version``,
``--help`` and ``bound`` never load torch. Each command imports what it computes with when it runs.
A new command is one module with a click command and one line in ``COMMANDS``.
"""

from pacbayes.cli.interrupt import INTERRUPTED, exit_on_interrupt

with exit_on_interrupt():
    from pacbayes.cli.app import emit, main
    from pacbayes.cli.bound import bound
    from pacbayes.cli.certify import certify_command
    from pacbayes.cli.check import check_command
    from pacbayes.cli.data import data_group
    from pacbayes.cli.demo import demo
    from pacbayes.cli.evidence import evidence_command
    from pacbayes.cli.families import family_options
    from pacbayes.cli.kernel import kernel_command
    from pacbayes.cli.params import load_data_spec
    from pacbayes.cli.plot import plot_command, report_command
    from pacbayes.cli.verify import verify_command

COMMANDS = (
    bound,
    certify_command,
    demo,
    data_group,
    evidence_command,
    kernel_command,
    check_command,
    verify_command,
    plot_command,
    report_command,
)
"""Every command of the ``pacbayes`` group (``pacbayes --help`` lists them by name)."""

for _command in COMMANDS:
    main.add_command(_command)

__all__ = ["COMMANDS", "INTERRUPTED", "certify_command", "emit", "family_options", "load_data_spec", "main"]
