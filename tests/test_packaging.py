"""The package's metadata agrees with itself: one Python version everywhere, and the typing marker shipped."""

import configparser
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def setup_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    return parser


def pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as stream:
        return tomllib.load(stream)


def minimum_python() -> tuple:
    found = re.fullmatch(r">=\s*3\.(\d+)", setup_cfg()["options"]["python_requires"].strip())
    assert found, "python_requires must read >=3.N"
    return (3, int(found.group(1)))


def test_one_minimum_python_version_for_install_lint_and_types():
    low = minimum_python()
    config = pyproject()
    assert config["tool"]["ruff"]["target-version"] == f"py3{low[1]}"
    assert config["tool"]["mypy"]["python_version"] == f"3.{low[1]}"
    assert sys.version_info[:2] >= low


def test_the_stdlib_modules_the_package_imports_exist_at_the_minimum_version():
    """tomllib is 3.11+: a package importing it must not declare an older Python."""
    uses_tomllib = any("import tomllib" in p.read_text() for p in (ROOT / "pacbayes").rglob("*.py"))
    assert not uses_tomllib or minimum_python() >= (3, 11)


def test_the_typing_marker_ships_with_the_package():
    assert (ROOT / "pacbayes" / "py.typed").is_file()
    assert "py.typed" in setup_cfg()["options.package_data"]["pacbayes"]
