"""Runs the `>>>` examples in the package's docstrings, so they stay true.

Each module that holds an example is imported by its installed name (bifrost.<folder>...),
never by file path, so nothing is imported twice; the examples that run need no broker.
An example marked `# doctest: +SKIP` (it needs a broker, a trained model or a service) is
shown, not run: `SHOWN_ONLY` lists the modules whose examples are all skipped, so that list
stays true and a module whose examples quietly stop running is noticed.
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

#: Modules whose `>>>` examples are all `+SKIP`: shown in the docs, never run.
SHOWN_ONLY = {
    "bifrost.catalog.snapshots": "writes a snapshot folder on disk",
    "bifrost.client.publisher": "needs a broker",
    "bifrost.client.rollout": "needs a broker, a signing key and a running worker",
    "bifrost.client.simulator.arms": "needs an artifact store with a trained model",
    "bifrost.client.training": "needs a broker and a running trainer",
    "bifrost.router.gbdt": "needs a trained model",
    "bifrost.router.reference": "needs a signed artifact and its key",
    "bifrost.storage.artifact_store": "needs signed artifacts on disk",
    "bifrost.streams.lag.probe": "needs a broker",
    "bifrost.trainer": "needs a dataset and a trained model",
}


def _runnable_examples(name: str) -> tuple[int, int]:
    """(examples doctest runs, examples in all) in module ``name``: ``+SKIP`` ones are not run."""
    examples = [e for test in doctest.DocTestFinder().find(importlib.import_module(name)) for e in test.examples]
    return sum(not e.options.get(doctest.SKIP, False) for e in examples), len(examples)


def test_examples_are_found() -> None:
    assert len(MODULES) >= 20, MODULES


def test_examples_run_and_the_shown_only_modules_are_listed() -> None:
    counts = {name: _runnable_examples(name) for name in MODULES}
    assert sum(run for run, _ in counts.values()) >= 100, counts
    assert {name for name, (run, _) in counts.items() if run == 0} == SHOWN_ONLY.keys()


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (output above)"
