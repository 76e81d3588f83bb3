"""Runs the `>>>` examples in the package's docstrings, so they stay true.

Each module that holds an example is imported by its installed name (bifrost.<folder>...),
never by file path, so nothing is imported twice; the examples need no broker.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _modules_with_examples() -> list[str]:
    """Dotted names of the package's modules whose source holds a `>>>` example."""
    names = []
    for init in sorted(ROOT.glob("*/__init__.py")):
        package = init.parent
        if package.name == "tests":
            continue
        for path in sorted(package.rglob("*.py")):
            if ">>> " not in path.read_text(encoding="utf-8"):
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names.append(".".join(("bifrost", *parts)))
    return names


MODULES = _modules_with_examples()


def test_examples_are_found() -> None:
    assert len(MODULES) >= 20, MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (output above)"
