"""`bifrost-opt lag` misuse: a clear message and exit code, never a traceback (no broker needed)."""

from __future__ import annotations

import pytest

from tests.cli.test_cli_errors import closed_port_url, run


@pytest.mark.parametrize(
    ("args", "env", "code", "fragment"),
    [
        (("lag", "--watch", "0"), {}, 2, "positive number of seconds"),
        (("lag", "--watch", "-3"), {}, 2, "positive number of seconds"),
        (("lag", "--watch", "soon"), {}, 2, "not a number of seconds"),
        (("lag", "--group"), {}, 2, "expected one argument"),
        (("lag", "--group", " "), {}, 2, "--group"),
        (("lag",), {"BIFROST_LAG_WINDOW": "1"}, 2, "BIFROST_LAG_WINDOW"),
        (("lag",), {"BIFROST_LAG_WINDOW": "ten"}, 2, "BIFROST_LAG_WINDOW"),
        (("lag",), {"BIFROST_LAG_INTERVAL_SECONDS": "-1"}, 2, "BIFROST_LAG_INTERVAL_SECONDS"),
        (("lag",), {"BIFROST_KAFKA_BOOTSTRAP": "@closed"}, 3, "cannot reach Kafka"),
    ],
)
def test_lag_misuse(args: tuple[str, ...], env: dict[str, str], code: int, fragment: str) -> None:
    env = {k: (closed_port_url() if v == "@closed" else v) for k, v in env.items()}
    result = run(*args, env=env)
    assert result.returncode == code, result.stderr
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr
