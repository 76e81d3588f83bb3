"""The lint habits CONTRIBUTING.md states are enforced by the tools' settings, not by review.

A ``noqa`` names its rule (ruff's PGH004), a ``type: ignore`` its error code (mypy's
``ignore-without-code``), and a ``noqa`` in production code says why. Two comments that
would switch mypy's settings off for a file, out of sight of ``pyproject.toml``, are not
allowed anywhere (product, tests, bench): an inline configuration comment (``mypy:``
followed by flags) and a file-level ``type: ignore`` (one on its own line before the
module's first statement, which makes mypy skip the whole file).
"""

from __future__ import annotations

import ast
import io
import re
import subprocess
import tokenize
from pathlib import Path

from tests.architecture.boundaries import ROOT, TABLE, iter_modules, unit_of

BIN = Path(ROOT / ".venv" / "bin")


def _ruff(source: str) -> str:
    """ruff's findings on ``source`` as if it were a production module, under the project's settings."""
    done = subprocess.run(
        [
            str(BIN / "ruff"),
            "check",
            "--no-cache",
            "--output-format",
            "concise",
            "--stdin-filename",
            "streams/x.py",
            "-",
        ],
        input=source,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return done.stdout


def test_ruff_reports_a_blanket_noqa() -> None:
    assert "PGH004" in _ruff("import os  # noqa\n\nos.getcwd()\n")
    assert "PGH004" not in _ruff("import os  # noqa: F401 - re-exported\n")


def test_mypy_reports_a_type_ignore_without_its_code(tmp_path: Path) -> None:
    (tmp_path / "blanket.py").write_text('x: int = "a"  # type: ignore\n')
    (tmp_path / "coded.py").write_text('y: int = "a"  # type: ignore[assignment]\n')
    done = subprocess.run(
        [str(BIN / "mypy"), "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(tmp_path / "cache")]
        + ["blanket.py", "coded.py"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1 and errors[0].startswith("blanket.py:1:"), done.stdout
    assert "[ignore-without-code]" in errors[0]


_NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*))?(?P<rest>.*)$")


def noqa_without_reason(path: Path) -> list[int]:
    """Lines of ``path`` whose ``noqa`` names no rule or gives no reason after the rule (``- why``)."""
    lines = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        match = _NOQA.search(line)
        if match and (not match.group("codes") or not match.group("rest").strip(" -#:")):
            lines.append(number)
    return lines


def test_a_noqa_in_production_code_says_why() -> None:
    missing = [
        f"{path.relative_to(ROOT)}:{line}"
        for module, path in iter_modules()
        if (unit := unit_of(module)) in TABLE and not TABLE[unit].dev
        for line in noqa_without_reason(path)
    ]
    assert missing == []


def test_the_reason_check_itself(tmp_path: Path) -> None:
    source = tmp_path / "x.py"
    source.write_text(
        "a = 1  # noqa\n"
        "b = 1  # noqa: BLE001\n"
        "c = 1  # noqa: BLE001 - one bad record must not stop the loop\n"
        "d = 1  # noqa: E402, F401  # imported after the path insert\n"
        "e = 1\n"
    )
    assert noqa_without_reason(source) == [1, 2]


_MYPY_CONFIG = re.compile(r"#\s*mypy\s*:")
_TYPE_IGNORE = re.compile(r"#\s*type\s*:\s*ignore\b")


def _comments(source: str) -> list[tuple[int, int, str]]:
    """(line, column, text) of every comment in ``source`` (comments only: not text inside strings)."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return [(t.start[0], t.start[1], t.string) for t in tokens if t.type == tokenize.COMMENT]


def mypy_switches(source: str) -> list[int]:
    """Lines of ``source`` that change mypy's settings for the file: an inline config comment, a file-level ignore.

    An inline configuration comment counts wherever it is. A ``type: ignore`` counts when it
    is alone on its line before the first statement, where mypy reads it as "ignore every
    error in this file"; between the docstring and the first statement too (mypy 1.x no longer
    reads it as file-level there, but an ignore alone on a line has no other use).
    """
    lines = source.splitlines()
    body = ast.parse(source).body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring: mypy reads the ignore only before it, this check until after it
    first = len(lines) + 1
    if body:
        decorators = getattr(body[0], "decorator_list", [])
        first = min([body[0].lineno, *(d.lineno for d in decorators)])
    found = []
    for line, column, text in _comments(source):
        own_line = not lines[line - 1][:column].strip()
        if _MYPY_CONFIG.search(text) or (_TYPE_IGNORE.search(text) and own_line and line < first):
            found.append(line)
    return found


def test_no_file_switches_mypy_settings_off() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}" for _, path in iter_modules() for line in mypy_switches(path.read_text())
    ]
    assert found == []


def test_the_mypy_switch_check_itself() -> None:
    config = "# " + "mypy" + ": ignore-errors"  # written in two parts so that this file does not hold one
    ignore = "# type" + ": ignore"
    assert mypy_switches(f"{config}\nimport os\n") == [1]
    assert mypy_switches(f"import os\n\n{config.replace('ignore-errors', 'disallow-untyped-defs=False')}\n") == [3]
    assert mypy_switches(f"{ignore}\nimport os\n") == [1]
    assert mypy_switches(f"#!/usr/bin/env python\n{ignore}[misc]\n\nimport os\n") == [2]
    assert mypy_switches(f'"""Doc."""\n\n{ignore}\nimport os\n') == [3]  # after the docstring: still file-level
    assert mypy_switches(f"{ignore}\n@decorate\ndef f() -> None: ...\n") == [1]
    # Not switches: an ignore on a line of code, an own-line one after the first statement, text in a string.
    assert mypy_switches(f"import os  {ignore}[import-untyped]\n") == []
    assert mypy_switches(f"import os\n{ignore}\nx = 1\n") == []
    assert mypy_switches(f"s = {config!r}\nt = {ignore!r}\n") == []
