"""Every cheap command in README.md's ```bash blocks runs as printed after `pacbayes demo`.

The commands run in a temporary directory after ``pacbayes demo --quiet`` has run there once
(which writes pacbayes-demo/model.pt and pacbayes-demo/init.pt), in README order, through the
installed ``pacbayes`` console script; ``examples/claims_example.toml`` is copied there so that the
paths are those of a fresh clone. Line continuations are joined and ``#`` comments stripped; a
line whose comment says ``exits 1`` must exit 1, every other one 0.

Skipped (installs, other tools, or too slow for CI; they are exercised elsewhere or by hand):

* ``pip install ...`` (and the set-up lines that chain it with ``&&``), ``mkdocs ...``;
* ``python -m pytest ...``, ``python benchmarks/...``, ``python examples/...``, ``bash .ci/run``;
* ``ruff ...`` and ``mypy`` lines;
* ``pacbayes certify`` with ``--bounds`` naming dziugaite-roy or subspace, or with ``--subspace-dim``.
"""

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIPPED_PREFIXES = ("pip ", "mkdocs ", "python ", "bash .ci/run", "ruff ", "mypy")


def readme_commands() -> list:
    """(command line, expected exit status) for every command line of the README's bash blocks."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            command, _, comment = line.partition("#")
            command = " ".join(command.split())
            if command:
                commands.append((command, 1 if "exits 1" in comment else 0))
    return commands


def is_skipped(command: str) -> bool:
    if command.startswith(SKIPPED_PREFIXES):
        return True
    bounds = re.search(r"--bounds[ =](\S+)", command)
    slow = bounds is not None and any(name in bounds.group(1) for name in ("dziugaite-roy", "subspace"))
    return slow or "--subspace-dim" in command


COMMANDS = [entry for entry in readme_commands() if not is_skipped(entry[0])]


def pacbayes_command() -> list:
    script = shutil.which("pacbayes")
    return [script] if script else [sys.executable, "-c", "from pacbayes.cli import main; main()"]


HANG_GUARD = 1800
"""Seconds after which a README command counts as hung: a guard against hangs, never a speed test (a
command that takes ~11 s on an idle machine takes several times that on a busy one)."""


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("readme")
    (folder / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "claims_example.toml", folder / "examples")
    done = subprocess.run(
        pacbayes_command() + ["demo", "--quiet"], cwd=folder, capture_output=True, text=True, timeout=HANG_GUARD
    )
    assert done.returncode == 0, done.stderr
    assert (folder / "pacbayes-demo" / "model.pt").is_file() and (folder / "pacbayes-demo" / "init.pt").is_file()
    return folder


def test_readme_has_the_commands_this_test_runs():
    ran = [command.split()[1] for command, _ in COMMANDS]
    assert ran.count("certify") == 2 and "kernel" in ran and "evidence" in ran and "check" in ran
    assert ran.index("data") < ran.index("kernel") < ran.index("evidence")  # data export makes x.npy, y.npy


def test_readme_commands_run_as_printed(demo_dir):
    """In README order, in one test: later commands read what earlier ones wrote (x.npy, K.npy)."""
    failures = []
    for command, status in COMMANDS:
        words = shlex.split(command)
        assert words[0] == "pacbayes", f"a README command this test does not know how to run: {command}"
        done = subprocess.run(
            pacbayes_command() + words[1:], cwd=demo_dir, capture_output=True, text=True, timeout=HANG_GUARD
        )
        if done.returncode != status:
            failures.append(f"{command}\n  exit {done.returncode} (expected {status}): {done.stderr[-1000:]}")
    assert not failures, "README commands that do not run as printed:\n" + "\n".join(failures)
