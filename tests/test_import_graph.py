"""The import graph of pacbayes reads one way: each module imports only modules of its own layer or below.

:data:`LAYERS` is the layer table (docs/index.md names it). Every ``import`` of a pacbayes module is
read with ast, whether at the top of a module, inside a function (a lazy import, which keeps torch out of
``import pacbayes`` and the CLI's start-up, or loads an optional extra) or under ``if TYPE_CHECKING``.
No import may reach a higher layer, and the imports a module runs when it is loaded form no cycle.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "pacbayes"

LAYERS = {
    # 0: foundations: errors, checks and small services every layer uses (torch-free where they can be)
    "pacbayes": 0,
    "errors": 0,
    "defaults": 0,
    "progress": 0,
    "checks": 0,
    "hashing": 0,
    "seeds": 0,
    "activations": 0,
    "device": 0,
    "memory": 0,
    "options": 0,
    "arguments": 0,
    "report": 0,
    "results": 0,
    "estimates": 0,
    # 1: the bound arithmetic on plain numbers
    "bounds": 1,
    # 2: data, models, layer types, and the records a run keeps (attempts ledger, phase cache)
    "data": 2,
    "models": 2,
    "layers": 2,
    "attempts": 2,
    "cache": 2,
    # 3-5: what the bounds are computed from
    "kernels": 3,
    "evidence": 4,
    "stochastic": 5,
    "subspace": 5,
    # 6: the bound families, and where a report came from
    "families": 6,
    "call_arguments": 6,  # the entry points' argument checks: models, datasets, options and settings
    "families.settings": 2,  # the families' settings dataclasses: plain data, read by what they configure
    "provenance": 6,
    # 7: certify and what runs or checks it
    "certification": 7,
    "verification": 7,
    "report_cache": 7,
    "testing": 7,
    "monitor": 7,
    "demo": 7,
    # 8: claims files and pictures of reports
    "claims": 8,
    "figures": 8,
    "html_report": 8,
    # 9: entry points
    "cli": 9,
    "integrations": 9,
    "pytest_plugin": 9,
}
"""Module (or subpackage) below pacbayes -> its layer; a subpackage's modules share its layer."""

KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {}
"""(importer, imported) pairs that break the layering, with why; each is to be removed (none today)."""


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    """The layer of ``module`` (KeyError for a module the table does not place)."""
    if module == "pacbayes":
        return LAYERS["pacbayes"]
    parts = module.split(".")[1:]
    return LAYERS[".".join(parts)] if ".".join(parts) in LAYERS else LAYERS[parts[0]]


def _target(base: str, name: str) -> str:
    """``from base import name``: the submodule base.name when there is one, else base."""
    return f"{base}.{name}" if f"{base}.{name}" in MODULES else base


def imports(module: str) -> list:
    """(imported module, eager) for each pacbayes import in ``module``: eager when it runs as the module
    loads (at module level, not under ``if TYPE_CHECKING``), else lazy."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []

    def visit(node, eager: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = eager
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                inner = False
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                inner = False
            if isinstance(child, ast.Import):
                found.extend((alias.name, eager) for alias in child.names if alias.name.split(".")[0] == "pacbayes")
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - child.level + 1] + ([child.module] if child.module else []))
                else:
                    base = child.module or ""
                if base.split(".")[0] == "pacbayes":
                    found.extend((_target(base, alias.name), eager) for alias in child.names)
            visit(child, inner)

    visit(ast.parse(path.read_text(encoding="utf-8")), True)
    return found


GRAPH = {module: imports(module) for module in MODULES}


def test_every_module_has_a_layer():
    unplaced = []
    for module in MODULES:
        try:
            layer(module)
        except KeyError:
            unplaced.append(module)
    assert not unplaced, f"place these modules in LAYERS: {unplaced}"


def test_no_module_imports_a_higher_layer():
    upward = sorted(
        f"{module} (layer {layer(module)}) imports {target} (layer {layer(target)})"
        for module, found in GRAPH.items()
        for target, _ in found
        if layer(target) > layer(module) and (module, target) not in KNOWN_VIOLATIONS
    )
    assert not upward, "imports that reach a higher layer:\n" + "\n".join(upward)


def test_known_violations_are_still_there():
    """A known violation that has been fixed must leave the list (so that it cannot come back unseen)."""
    present = {(module, target) for module, found in GRAPH.items() for target, _ in found}
    fixed = sorted(pair for pair in KNOWN_VIOLATIONS if pair not in present or layer(pair[1]) <= layer(pair[0]))
    assert not fixed, f"remove these from KNOWN_VIOLATIONS: {fixed}"


def test_module_level_imports_have_no_cycle():
    eager = {
        module: sorted({target for target, now in found if now and target != module}) for module, found in GRAPH.items()
    }
    state: dict = {}
    for start in eager:
        if start in state:
            continue
        stack = [(start, iter(eager[start]))]
        path = [start]
        state[start] = "open"
        while stack:
            module, pending = stack[-1]
            target = next(pending, None)
            if target is None:
                state[module] = "done"
                stack.pop()
                path.pop()
            elif state.get(target) == "open":
                cycle = path[path.index(target) :] + [target]
                pytest.fail("module-level import cycle: " + " -> ".join(cycle))
            elif target not in state and target in eager:
                state[target] = "open"
                stack.append((target, iter(eager[target])))
                path.append(target)


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from pacbayes import checks\n", [("pacbayes.checks", True)]),
        ("from pacbayes.errors import InputError\n", [("pacbayes.errors", True)]),
        ("def f():\n    import pacbayes.kernels\n", [("pacbayes.kernels", False)]),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pacbayes import data\n",
            [("pacbayes.data", False)],
        ),
        ("from .dataset import Dataset\n", [("pacbayes.data.dataset", True)]),
    ],
)
def test_the_reader_sees_every_kind_of_import(source, expected, tmp_path, monkeypatch):
    path = PACKAGE / "data" / "subsets.py"
    monkeypatch.setitem(MODULES, "pacbayes.data.subsets", tmp_path / "subsets.py")
    (tmp_path / "subsets.py").write_text(source)
    assert path.exists() and imports("pacbayes.data.subsets") == expected
