"""Every numeric option of every subcommand, fuzzed with 0, negative, NaN, infinite and huge values:
a clear message and an exit code, never a traceback (and nothing starts on a refused value)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bifrost.cli import main as cli_main
from bifrost.devkafka.__main__ import build_parser as kafka_parser
from bifrost.gatesim.cli import parser as gates_parser
from bifrost.trainer.cli import artifacts_parser, evaluate_parser, service_parser, train_parser
from tests.integration.harness import free_port

VALUES = ("0", "-1", "nan", "inf", "-1e308", "1e308", "99999999999999999999")

#: Parsers of the commands that own their argument list (``bifrost-opt <name> …``).
PASSTHROUGH: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "kafka": kafka_parser,
    "simulate-gates": gates_parser,
    "train": train_parser,
    "evaluate": evaluate_parser,
    "artifacts": artifacts_parser,
    "trainer": service_parser,
}

#: Arguments that make a command valid but cheap: required options, and a missing file or
#: a closed port so that an accepted value fails fast instead of starting something.
BASE: dict[tuple[str, ...], list[str]] = {
    ("metrics",): ["--router", "r"],
    ("simulate",): ["--duration", "1s"],
    ("up",): ["--dataset", "/nonexistent/dataset.jsonl.gz"],
    ("simulate-gates",): [
        "--rollouts",
        "1",
        "--scenarios",
        "aa",
        "--mode",
        "stage",
        "--max-windows",
        "2",
        "--workers",
        "1",
        "--history-windows",
        "0",
        "--rate",
        "100",
    ],
    ("train",): ["--dataset", "/nonexistent/dataset.jsonl.gz", "--quiet"],
    ("init",): ["--dataset", "/nonexistent/dataset.jsonl.gz", "--worker-keys", "wk", "--operator-keys", "ok"],
    ("rollout", "start"): ["--router", "r", "--artifact", "v2"],
    ("rollout", "rollback"): ["--router", "r", "--reason", "drill"],
}


def numeric_options(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], str]]:
    """(command path, option) for every option whose type parses "1" as a number, subcommands included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from numeric_options(sub, (*path, name))
        elif action.option_strings and action.type is not None:
            if any(_number(action.type, probe) for probe in ("1", "0.01", "100", "0")):
                yield path, max(action.option_strings, key=len)


def _number(kind: Callable[[str], object] | str, text: str) -> bool:
    if isinstance(kind, str):  # a name in the parser's type registry, not a callable to probe
        return False
    try:
        value = kind(text)
    except (argparse.ArgumentTypeError, ValueError, TypeError):
        return False
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def every_numeric_option() -> list[tuple[tuple[str, ...], str]]:
    found = [(path, option) for path, option in numeric_options(cli_main._parser(), ()) if path[0] not in PASSTHROUGH]
    for name, build in PASSTHROUGH.items():
        found.extend(numeric_options(build(), (name,)))
    return found


OPTIONS = every_numeric_option()


def test_the_fuzz_sees_the_options_it_must() -> None:
    seen = {(" ".join(path), option) for path, option in OPTIONS}
    for expected in [
        ("up", "--rate"),
        ("up", "--speed"),
        ("simulate", "--rate"),
        ("retrain", "--wait"),
        ("rollout pause", "--wait"),
        ("metrics", "--until"),
        ("worker", "--web-port"),
        ("train", "--trials"),
        ("simulate-gates", "--alpha"),
        ("kafka start", "--timeout"),
    ]:
        assert expected in seen, expected


@pytest.fixture
def closed_services(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("BIFROST_"):
            monkeypatch.delenv(name)
    port = free_port()
    monkeypatch.setenv("BIFROST_KAFKA_BOOTSTRAP", f"127.0.0.1:{port}")
    monkeypatch.setenv("BIFROST_WORKER_URL", f"http://127.0.0.1:{port}")
    monkeypatch.chdir(tmp_path)  # anything a command writes by default lands here


@pytest.mark.parametrize(("path", "option"), OPTIONS, ids=[f"{' '.join(p)} {o}" for p, o in OPTIONS])
def test_numeric_option_never_shows_a_traceback(
    path: tuple[str, ...], option: str, closed_services: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    base = BASE.get(path, [])
    if path[0] == "kafka":
        base = ["--data-dir", str(tmp_path / "kafka")]
    for value in VALUES:
        argv = [*path, *base, option, value]
        try:
            code = cli_main.main(argv)
        except SystemExit as exc:  # argparse's usage error (2) or --help (0)
            code = exc.code if isinstance(exc.code, int) else 2
        out, err = capsys.readouterr()
        assert code in (0, 1, 2, 3), (argv, code, err)
        assert "Traceback" not in out + err, (argv, err)
        if code == 2:
            assert "error" in err, (argv, err)
        if path == ("up",):
            assert code == 2, (argv, out, err)  # refused before anything starts


def test_wait_zero_says_what_it_did(closed_services: None, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main.main(["retrain", "--wait", "0"])
    _, err = capsys.readouterr()
    assert code == 3 and "cannot reach Kafka" in err  # not waiting, and says why it failed to send


@pytest.mark.parametrize(
    "option", ["--arms", "--latency-factor", "--error-factor", "--cost-factor", "--quality-delta", "--win-delta"]
)
def test_name_number_pairs_are_finite(option: str, closed_services: None, capsys: pytest.CaptureFixture[str]) -> None:
    for value in ("nan", "inf", "-inf", "1e308"):
        code = cli_main.main(["simulate", "--duration", "1s", option, f"v2={value}"])
        err = capsys.readouterr().err
        assert code == 2 and "must be finite" in err, (option, value, err)
