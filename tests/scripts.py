"""The repository's example and benchmark scripts, loaded as modules for the tests."""

import importlib.util
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_script(relative: str):
    """The module of the script at ``relative`` to the repository root (e.g. "examples/subspace_mnist.py"),
    executed afresh (its ``__main__`` block does not run), with its folder on the import path as
    ``python examples/script.py`` has it (examples import their helper modules from there)."""
    path = ROOT / relative
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.append(folder)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as an import registers it (dataclasses look their module up there)
    spec.loader.exec_module(module)
    return module
