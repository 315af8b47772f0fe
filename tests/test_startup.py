"""Start-up: the quick commands never load torch, and other packages' warnings stay off stderr unless --verbose."""

import json
import subprocess
import sys

import pytest

QUICK_COMMANDS = {
    "version": (["--version"], "0.1.0"),
    "help": (["--help"], "certify"),
    "bound-marginal": (["bound", "marginal", "--log-evidence", "-50", "--m", "100", "--json"], '"bound"'),
    "bound-kl-inverse": (["bound", "kl-inverse", "--q", "0.1", "--c", "0.2", "--json"], '"value"'),
    "certify-help": (["certify", "--help"], "--prior-epochs"),
    "evidence-help": (["evidence", "--help"], "--importance-samples"),
    "kernel-help": (["kernel", "--help"], "--kernel-samples"),
    "data-export-help": (["data", "export", "--help"], "--binarise"),
}

FRESH_RUN = """
import json, sys, warnings
import numpy  # adds its own warning filters on import
filters, show = list(warnings.filters), warnings.showwarning
from pacbayes.cli import main
untouched = warnings.filters == filters and warnings.showwarning is show
try:
    main(json.loads(sys.argv[1]))
except SystemExit as stop:
    code = stop.code
print(json.dumps({"code": code, "torch": "torch" in sys.modules, "untouched": untouched}), file=sys.stderr)
"""


def run_fresh(args: list) -> tuple:
    """Run the CLI's main on ``args`` in a fresh interpreter: (stdout, the facts FRESH_RUN reports)."""
    done = subprocess.run(
        [sys.executable, "-c", FRESH_RUN, json.dumps(args)], capture_output=True, text=True, timeout=300
    )
    return done.stdout, json.loads(done.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("name", QUICK_COMMANDS)
def test_quick_commands_never_import_torch(name):
    args, expected = QUICK_COMMANDS[name]
    stdout, facts = run_fresh(args)
    assert facts["code"] in (0, None) and expected in stdout
    assert facts["torch"] is False
    assert facts["untouched"] is True  # importing the CLI changes no warning filter; only running it does


def test_the_family_flags_come_from_torch_free_settings_that_the_registry_uses():
    code = (
        "import sys; from pacbayes.families import settings_types; from pacbayes.cli import certify_command; "
        "print(sorted(settings_types()), '--prior-epochs' in {o for p in certify_command.params for o in p.opts}, "
        "'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert done.stdout.split() == ["['dziugaite-roy',", "'marginal',", "'subspace']", "True", "False"]
    from pacbayes.families import FAMILIES, SETTINGS, settings_types
    from pacbayes.stochastic.bound import DEFAULT_PRIOR_SCHEDULE
    from pacbayes.stochastic.train import Schedule

    assert {name: family.settings_type for name, family in FAMILIES.items()} == SETTINGS == settings_types()
    settings = SETTINGS["dziugaite-roy"]()
    assert (settings.prior_epochs, settings.posterior_epochs) == (DEFAULT_PRIOR_SCHEDULE.epochs, Schedule().epochs)


WARN_TWICE = """
import sys, warnings
import click
from pacbayes.cli import main
from pacbayes.errors import DataWarning

@main.command("warn-twice")
def warn_twice():
    warnings.warn("torch.load's default will change", FutureWarning)  # as torch warns
    warnings.warn("train and test inputs are scaled apart", DataWarning)  # as pacbayes warns
    click.echo("done")

main(sys.argv[1:])
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_other_packages_warnings_only_with_verbose(verbose):
    args = ["--verbose"] * verbose + ["warn-twice"]
    done = subprocess.run([sys.executable, "-c", WARN_TWICE, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout == "done\n"
    assert "pacbayes: warning: train and test inputs are scaled apart" in done.stderr
    assert ("FutureWarning: torch.load's default will change" in done.stderr) is verbose
