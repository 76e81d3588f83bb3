"""The lint habits CONTRIBUTING.md states are enforced by the tools' settings, not by review.

A ``noqa`` names its rule (ruff's PGH004), a ``type: ignore`` its error code (mypy's
``ignore-without-code``), and a ``noqa`` in production code says why.
"""

from __future__ import annotations

import re
import subprocess
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
