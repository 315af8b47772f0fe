"""The repository's example and benchmark scripts, loaded as modules for the tests."""

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_script(relative: str):
    """The module of the script at ``relative`` to the repository root (e.g. "examples/subspace_mnist.py"),
    executed afresh (its ``__main__`` block does not run)."""
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
