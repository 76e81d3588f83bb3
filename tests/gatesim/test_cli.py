"""`simulate-gates` command: a table or JSON, scenario options, and argparse messages (exit 2) for misuse."""

from __future__ import annotations

import msgspec
import pytest

from bifrost.gatesim.cli import configs, main_simulate_gates, parser, scenarios_of
from bifrost.gatesim.simulation import SimulationReport

TINY = ["--rollouts", "2", "--max-windows", "2", "--workers", "1", "--looks-per-window", "2", "--history-windows", "2"]


def test_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main_simulate_gates([*TINY, "--seed", "3", "--scenarios", "aa"]) == 0
    out = capsys.readouterr().out
    assert "| Scenario | Traffic | Rollouts | Rolled back |" in out
    assert "| A/A (false rollbacks) |" in out


def test_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main_simulate_gates([*TINY, "--json"]) == 0
    report = msgspec.json.decode(capsys.readouterr().out, type=SimulationReport)
    assert report.rollouts == 2 and report.mode == "rollout" and report.looks_per_window == 2
    assert {s.name for s in report.scenarios} >= {"A/A", "latency x1.5", "errors x3", "cost x1.3", "win rate x0.9"}


def test_scenario_options_reach_the_configs() -> None:
    args = parser().parse_args(
        [
            "--latency",
            "lognormal:1.5@600",
            "--split",
            "exact",
            "--cluster-size",
            "20",
            "--cluster-metrics",
            "errors,judgements",
            "--rate",
            "500",
            "--diurnal",
            "0.4",
            "--stages",
            "0.1,0.5,1.0",
            "--stage-timeout-seconds",
            "1800",
            "--alpha",
            "0.02",
        ]
    )
    config, traffic, policy = configs(args)
    assert config.alpha == 0.02
    assert (traffic.latency.kind, traffic.latency.sigma, traffic.latency.median_ms) == ("lognormal", 1.5, 600.0)
    assert traffic.split == "exact" and traffic.requests_per_window == 500 and traffic.diurnal == 0.4
    assert traffic.clustering.size == 20.0 and traffic.clustering.metrics == {"errors", "judgements"}
    assert policy.stages == (0.1, 0.5, 1.0) and policy.timeout_seconds == 1800.0
    assert parser().parse_args(["--latency", "pareto:2.5"]).latency.shape == 2.5


def test_suite_counts() -> None:
    args = parser().parse_args(["--suite", "--rollouts", "1000", "--regression-rollouts", "500"])
    chosen, counts = scenarios_of(args)
    assert len(chosen) == len(counts) > 20
    assert {c for s, c in zip(chosen, counts) if s.name.startswith("A/A")} == {1000}
    assert {c for s, c in zip(chosen, counts) if not s.name.startswith("A/A")} == {500}


@pytest.mark.parametrize(
    "argv",
    [
        ["--rollouts", "0"],
        ["--rollouts", "many"],
        ["--seed", "x"],
        ["--bogus"],
        ["--split", "random"],
        ["--alpha", "0"],
        ["--workers", "-1"],
        ["--latency", "weibull:2"],
        ["--latency", "lognormal:x"],
        ["--cluster-metrics", "tokens"],
        ["--stages", "0.5,0.2,1.0"],
        ["--diurnal", "2"],
        ["--cluster-size", "0.5"],
        ["--mode", "forever"],
        ["--latency", "pareto:0.01"],
        ["--latency", "lognormal:100"],
        ["--latency", "lognormal:1@1e300"],
    ],
)
def test_misuse_is_a_usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main_simulate_gates(argv) == 2
    err = capsys.readouterr().err
    assert "usage: bifrost-opt simulate-gates" in err
    assert "Traceback" not in err


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main_simulate_gates(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--rollouts" in out and "--latency" in out and "--cluster-size" in out and "--suite" in out
