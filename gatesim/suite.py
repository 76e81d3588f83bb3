"""The scenario suite behind the README table: every traffic shape × the canaries that matter.

Each row is a :class:`~.simulation.Scenario` with its own traffic. A/A rows (identical
canary: every rollback is false) run under every traffic shape; regression rows under the
shapes where they are hard; missing-data rows check that absent figures never promote.
``bifrost-opt simulate-gates --suite`` and ``bench/gates_bench.py`` run it.
"""

from __future__ import annotations

from dataclasses import replace

from bifrost.gatesim.simulation import MISSING_SCENARIOS, Scenario, TrafficConfig
from bifrost.gatesim.traffic import ArmProfile, Clustering, LatencyModel

_BASE = ArmProfile()

#: Traffic shapes (2,000 requests a minute unless said otherwise, random assignment).
TRAFFIC: dict[str, TrafficConfig] = {
    "mix": TrafficConfig(),
    "mix, exact split": TrafficConfig(split="exact"),
    "lognormal σ 1.0": TrafficConfig(latency=LatencyModel("lognormal", sigma=1.0)),
    "lognormal σ 1.5": TrafficConfig(latency=LatencyModel("lognormal", sigma=1.5)),
    "Pareto 1.5": TrafficConfig(latency=LatencyModel("pareto", shape=1.5)),
    "error clusters 5": TrafficConfig(clustering=Clustering(5.0, frozenset({"errors"}))),
    "error clusters 20": TrafficConfig(clustering=Clustering(20.0, frozenset({"errors"}))),
    "all clustered 5": TrafficConfig(
        clustering=Clustering(5.0, frozenset({"errors", "cost", "judgements", "latency"}))
    ),
    "diurnal ±60%": TrafficConfig(diurnal=0.6),
    "diurnal ±95%": TrafficConfig(diurnal=0.95),
    "500 req/min": TrafficConfig(requests_per_window=500),
    "10,000 req/min": TrafficConfig(requests_per_window=10_000),
}

#: Shapes that regression rows use but A/A rows do not (an A/A row each would cost an hour of suite).
REGRESSION_TRAFFIC: dict[str, TrafficConfig] = {
    "lognormal σ 1.0, no history": TrafficConfig(latency=LatencyModel("lognormal", sigma=1.0), history_windows=0),
}

_REGRESSIONS: dict[str, tuple[str, ArmProfile, str]] = {
    "latency x1.5": ("every canary latency x1.5 (P95 +50%)", ArmProfile(latency_factor=1.5), "latency_p95"),
    "errors x3": ("canary error rate 6% vs 2%", ArmProfile(error_rate=_BASE.error_rate * 3.0), "error_rate"),
    "errors x1.5": ("canary error rate 3% vs 2%", ArmProfile(error_rate=_BASE.error_rate * 1.5), "error_rate"),
    "errors x1.1": ("canary error rate 2.2% vs 2%", ArmProfile(error_rate=_BASE.error_rate * 1.1), "error_rate"),
    "cost x1.3": ("every canary cost x1.3", ArmProfile(cost_factor=1.3), "cost_per_task"),
    "win rate x0.9": (
        "canary win rate 0.81 vs 0.90",
        ArmProfile(win_probability=_BASE.win_probability - 0.09),
        "win_rate",
    ),
    "latency tail": (
        "6% of canary requests x10 slower (P95 +52%, median +8%)",
        ArmProfile(tail_fraction=0.06, tail_factor=10.0),
        "latency_p95",
    ),
}

#: (regression, traffic shape) rows.
REGRESSION_ROWS: tuple[tuple[str, str], ...] = (
    ("latency x1.5", "lognormal σ 1.0"),
    ("latency x1.5", "lognormal σ 1.5"),
    ("latency x1.5", "mix"),
    ("latency x1.5", "mix, exact split"),
    ("latency x1.5", "Pareto 1.5"),
    ("errors x3", "mix"),
    ("errors x3", "error clusters 5"),
    ("errors x3", "error clusters 20"),
    ("cost x1.3", "diurnal ±95%"),
    ("latency x1.5", "lognormal σ 1.0, no history"),
    ("cost x1.3", "mix"),
    ("cost x1.3", "all clustered 5"),
    ("win rate x0.9", "mix"),
    ("win rate x0.9", "all clustered 5"),
    ("latency tail", "mix"),
    ("errors x1.5", "mix"),
    ("errors x1.1", "mix"),
)


def aa_rows() -> list[Scenario]:
    """An identical canary under every traffic shape."""
    return [
        Scenario(f"A/A · {name}", "canary identical to control", _BASE, traffic=traffic)
        for name, traffic in TRAFFIC.items()
    ]


def regression_rows() -> list[Scenario]:
    rows = []
    for regression, shape in REGRESSION_ROWS:
        description, profile, gate = _REGRESSIONS[regression]
        traffic = (TRAFFIC | REGRESSION_TRAFFIC)[shape]
        rows.append(Scenario(f"{regression} · {shape}", description, profile, gate, traffic=traffic))
    return rows


def missing_rows() -> list[Scenario]:
    return [replace(s, name=f"{s.name} · mix", traffic=TRAFFIC["mix"]) for s in MISSING_SCENARIOS]


def suite() -> list[Scenario]:
    """Every row of the README table, A/A first."""
    return [*aa_rows(), *regression_rows(), *missing_rows()]
