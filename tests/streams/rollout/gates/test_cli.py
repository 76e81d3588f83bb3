"""`simulate-gates` command: a table or JSON, and argparse messages (exit 2) for misuse."""

from __future__ import annotations

import msgspec
import pytest

from bifrost.streams.rollout.gates.cli import main_simulate_gates
from bifrost.streams.rollout.gates.simulation import SimulationReport

TINY = ["--rollouts", "2", "--windows", "2", "--workers", "1"]


def test_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main_simulate_gates([*TINY, "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "| Scenario | Method |" in out
    assert "| A/A (false rollbacks) | sequential |" in out


def test_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main_simulate_gates([*TINY, "--json"]) == 0
    report = msgspec.json.decode(capsys.readouterr().out, type=SimulationReport)
    assert report.rollouts == 2 and report.windows == 2
    assert {s.name for s in report.scenarios} >= {"A/A", "latency x1.5", "errors x1.1", "cost x1.3", "win rate x0.9"}


@pytest.mark.parametrize(
    "argv",
    [["--rollouts", "0"], ["--rollouts", "many"], ["--seed", "x"], ["--bogus"], ["--split", "random"],
     ["--canary-share", "2"], ["--alpha", "0"], ["--workers", "-1"]],
)
def test_misuse_is_a_usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main_simulate_gates(argv) == 2
    err = capsys.readouterr().err
    assert "usage: bifrost-opt simulate-gates" in err
    assert "Traceback" not in err


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main_simulate_gates(["--help"]) == 0
    assert "--rollouts" in capsys.readouterr().out
