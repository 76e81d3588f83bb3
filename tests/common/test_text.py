"""Log records stay one printable line whatever a name taken from an event carries."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from bifrost.common.text import one_line_log_records


@pytest.fixture
def one_line() -> Iterator[logging.Logger]:
    factory = logging.getLogRecordFactory()
    one_line_log_records()
    logger = logging.getLogger("tests.one_line")
    try:
        yield logger
    finally:
        logging.setLogRecordFactory(factory)


def test_a_newline_in_a_logged_name_cannot_forge_a_log_line(one_line: logging.Logger) -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))  # any formatter, e.g. Faust's
    one_line.addHandler(handler)
    try:
        one_line.warning("event=x router=%s", "evil\n[CRITICAL] forged\u202e\x1b[2J")
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            one_line.exception("event=y router=%s", "a\nb")
    finally:
        one_line.removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert lines[0] == "[WARNING] event=x router=evil\\u000a[CRITICAL] forged\\u202e\\u001b[2J"
    assert lines[1] == "[ERROR] event=y router=a\\u000ab"
    assert lines[2].startswith("Traceback") and lines[-1] == "RuntimeError: boom"  # tracebacks keep their lines
