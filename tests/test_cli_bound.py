"""The `pacbayes bound ...` commands: JSON contract and one-line errors."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from pacbayes import __version__
from pacbayes.bounds import kl_inverse_upper, marginal_likelihood_bound
from pacbayes.cli import main


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and __version__ in result.output


def test_marginal_json_echoes_inputs():
    result = run(
        "bound",
        "marginal",
        "--log-evidence",
        "-1416",
        "--m",
        "10000",
        "--delta",
        str(2**-10),
        "--variant",
        "mcallester",
        "--json",
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["bound"] == marginal_likelihood_bound(-1416, 10000, 2**-10, "mcallester")
    assert payload["m"] == 10000 and payload["variant"] == "mcallester"
    assert payload["log_evidence"] == -1416.0 and payload["delta"] == 2**-10


def test_kl_inverse_json():
    result = run("bound", "kl-inverse", "--q", "0.1", "--c", "0.5", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"value": kl_inverse_upper(0.1, 0.5), "q": 0.1, "c": 0.5, "side": "upper"}


@pytest.mark.parametrize(
    "args",
    [
        ["bound", "marginal", "--log-evidence", "5", "--m", "100"],
        ["bound", "marginal", "--log-evidence", "nan", "--m", "100"],
        ["bound", "marginal", "--log-evidence", "-5", "--m", "1"],
        ["bound", "marginal", "--log-evidence", "-5", "--m", "100", "--delta", "0"],
        ["bound", "marginal", "--log-evidence", "-5", "--m", "100", "--delta", "1.2"],
        ["bound", "marginal", "--log-evidence", "-5"],
        ["bound", "kl-inverse", "--q", "1.5", "--c", "0.1"],
        ["bound", "kl-inverse", "--q", "0.5", "--c", "nan"],
    ],
)
def test_bad_arguments_exit_2_with_one_line(args):
    proc = subprocess.run([sys.executable, "-m", "pacbayes.cli", *args], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pacbayes: error: ")
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_bounds_package_does_not_import_torch():
    code = "import sys, pacbayes.bounds; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_command_line_turns_on_torch_huge_pages_unless_the_environment_says(monkeypatch):
    import os

    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE", raising=False)
    assert run("--version").exit_code == 0 and os.environ["THP_MEM_ALLOC_ENABLE"] == "1"
    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "0")
    assert run("--version").exit_code == 0 and os.environ["THP_MEM_ALLOC_ENABLE"] == "0"
