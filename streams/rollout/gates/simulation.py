"""Monte-Carlo check of the gates under continuous monitoring (pure; no Kafka, no clock).

Every rollout synthesizes one canary stage window by window (by default 2,000 requests
a minute, 5% to the canary, up to 60 windows), keeps cumulative :class:`WindowStats`
for both arms, and after every window closes hands them to the rollout controller
(:func:`~bifrost.streams.rollout.controller.on_window_closed`, holding the stage) twice:
judged by :func:`evaluate_gates` and by :func:`naive_gates` (same traffic). Each scenario's canary differs
from the control as described; the control stream is shared by all scenarios of a
rollout (common random numbers) and every stream is seeded from ``(seed, rollout,
scenario)``, so results do not depend on the number of worker processes.

Example:
    >>> from bifrost.streams.rollout.gates import GateConfig
    >>> report = simulate_gates(GateConfig(), DEFAULT_SCENARIOS[:1], rollouts=2, seed=1,
    ...                         traffic=TrafficConfig(windows=3))
    >>> report.scenarios[0].sequential.rollouts
    2
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from bifrost.schemas.rollout import CommandKind, Phase, RolloutCommand, RolloutState
from bifrost.streams.aggregates.stats import WindowStats
from bifrost.streams.rollout.controller import RolloutPolicy, apply_command, on_window_closed
from bifrost.streams.rollout.gates.config import GateConfig
from bifrost.streams.rollout.gates.gates import evaluate_gates
from bifrost.streams.rollout.gates.naive import naive_gates
from bifrost.streams.rollout.gates.report import GateReport
from bifrost.streams.rollout.gates.traffic import ArmProfile, ArmSampler, binomial

Split = Literal["exact", "binomial"]
METHODS: tuple[str, ...] = ("sequential", "naive")


@dataclass(frozen=True, slots=True)
class Scenario:
    """A canary's behaviour relative to the control, and the gate that should catch it."""

    name: str
    description: str
    canary: ArmProfile
    expected_gate: str | None = None


@dataclass(frozen=True, slots=True)
class TrafficConfig:
    """Traffic of one simulated canary stage.

    ``split="exact"`` gives the canary exactly ``round(share × requests)`` requests a window
    (weighted round-robin); ``"binomial"`` assigns each request at random.
    """

    requests_per_window: int = 2000
    canary_share: float = 0.05
    windows: int = 60
    split: Split = "exact"
    control: ArmProfile = field(default_factory=ArmProfile)
    detection_budget: int = 200

    def __post_init__(self) -> None:
        if self.requests_per_window < 1 or self.windows < 1:
            raise ValueError("requests_per_window and windows must be positive")
        if not 0 < self.canary_share < 1:
            raise ValueError(f"canary_share must be within (0, 1), got {self.canary_share}")
        if self.split not in ("exact", "binomial"):
            raise ValueError(f"split must be 'exact' or 'binomial', got {self.split!r}")


_BASE = ArmProfile()

#: The scenarios of the brief, plus two that show what the table would otherwise hide.
DEFAULT_SCENARIOS: tuple[Scenario, ...] = (
    Scenario("A/A", "canary identical to control", _BASE),
    Scenario("latency x1.5", "every canary latency x1.5 (P95 +50%)",
             ArmProfile(latency_factor=1.5), "latency_p95"),
    Scenario("errors x1.1", "canary error rate 2.2% vs 2.0% (+10%)",
             ArmProfile(error_rate=_BASE.error_rate * 1.1), "error_rate"),
    Scenario("errors x1.5", "canary error rate 3.0% vs 2.0% (+50%)",
             ArmProfile(error_rate=_BASE.error_rate * 1.5), "error_rate"),
    Scenario("cost x1.3", "every canary cost x1.3 (+30%)",
             ArmProfile(cost_factor=1.3), "cost_per_task"),
    Scenario("win rate x0.9", "canary win rate 0.81 vs 0.90 (-10%)",
             ArmProfile(win_probability=_BASE.win_probability - 0.09), "win_rate"),
    Scenario("errors x3 (extra)", "canary error rate 6% vs 2% (gross regression)",
             ArmProfile(error_rate=_BASE.error_rate * 3.0), "error_rate"),
    Scenario("latency tail (extra)", "6% of canary requests x10 slower (P95 +52%, median +8%)",
             ArmProfile(tail_fraction=0.06, tail_factor=10.0), "latency_p95"),
)


class MethodSummary(msgspec.Struct, frozen=True, kw_only=True):
    """How one method (sequential or naive gates) fared on one scenario."""

    method: str
    rollouts: int
    rollbacks: int
    rollback_rate: float
    median_samples: float | None
    p95_samples: float | None
    within_budget: int
    within_budget_rate: float
    by_gate: dict[str, int]


class ScenarioSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One scenario's outcome for both methods."""

    name: str
    description: str
    expected_gate: str | None
    sequential: MethodSummary
    naive: MethodSummary


class SimulationReport(msgspec.Struct, frozen=True, kw_only=True):
    """Everything needed to reproduce and read a simulation."""

    rollouts: int
    seed: int
    requests_per_window: int
    canary_share: float
    windows: int
    split: str
    detection_budget: int
    config: dict[str, float | int]
    scenarios: list[ScenarioSummary]
    seconds: float


# One rollback record: (gate, canary samples at rollback) or None (never rolled back).
_Record = tuple[str, int] | None


# The controller holds the stage (no promotion) so one stage is measured end to end.
_ONE_STAGE = RolloutPolicy(min_stage_seconds=math.inf)


def _canary_state() -> RolloutState:
    # Only verified versions start: record the (simulated) canary as verified first.
    verified = RolloutCommand(command_id="sim-verified", router_id="sim", kind=CommandKind.ARTIFACT_VERIFIED,
                              artifact="canary", sha256="0" * 64)
    start = RolloutCommand(command_id="sim", router_id="sim", kind=CommandKind.START, artifact="canary", control="control")
    state = RolloutState(router_id="sim")
    for command in (verified, start):
        state = apply_command(state, command, arm_traffic={"control": 1}, wall=0.0, policy=_ONE_STAGE,
                              issued_by="simulation").state
    assert state.phase is Phase.CANARY, state.last_command
    return state


def _controller_step(
    state: RolloutState, evaluate: Callable[[WindowStats, WindowStats], GateReport],
    canary: WindowStats, control: WindowStats, clock: float,
) -> tuple[RolloutState, _Record]:
    """One window close through the real rollout controller; its rollback, if any."""
    decision = on_window_closed(
        state, clock=clock, canary=canary, control=control, evaluate=evaluate, wall=0.0, policy=_ONE_STAGE,
    )
    rollback = decision.rollback
    return decision.state, None if rollback is None else (rollback.gate, canary.count)


def run_rollout(
    index: int, seed: int, config: GateConfig, scenarios: Sequence[Scenario], traffic: TrafficConfig
) -> list[tuple[_Record, _Record]]:
    """Simulate one canary stage for every scenario; ``(sequential, naive)`` per scenario."""
    control_rng = random.Random(f"{seed}:{index}:control")
    canary_rngs = [random.Random(f"{seed}:{index}:{s.name}") for s in scenarios]
    control_sampler = ArmSampler.for_profile(traffic.control)
    samplers = [ArmSampler.for_profile(s.canary) for s in scenarios]
    control = WindowStats()
    canaries = [WindowStats() for _ in scenarios]
    seq: list[_Record] = [None] * len(scenarios)
    naive: list[_Record] = [None] * len(scenarios)
    seq_states = [_canary_state() for _ in scenarios]
    naive_states = [_canary_state() for _ in scenarios]
    sequential = lambda c, k: evaluate_gates(c, k, config)  # noqa: E731
    fixed = lambda c, k: naive_gates(c, k, config)  # noqa: E731
    active = list(range(len(scenarios)))
    total = traffic.requests_per_window
    for window in range(traffic.windows):
        clock = 60.0 * (window + 1)
        if not active:
            break
        if traffic.split == "exact":
            n_canary = round(total * traffic.canary_share)
        else:
            n_canary = binomial(control_rng, total, traffic.canary_share)
        control_sampler.add_window(control, control_rng, total - n_canary)
        still = []
        for i in active:
            canary = canaries[i]
            samplers[i].add_window(canary, canary_rngs[i], n_canary)
            if seq[i] is None:
                seq_states[i], seq[i] = _controller_step(seq_states[i], sequential, canary, control, clock)
            if naive[i] is None:
                naive_states[i], naive[i] = _controller_step(naive_states[i], fixed, canary, control, clock)
            if seq[i] is None or naive[i] is None:
                still.append(i)
        active = still
    return list(zip(seq, naive))


def _run_chunk(args: tuple[range, int, GateConfig, Sequence[Scenario], TrafficConfig]) -> list[list[tuple[_Record, _Record]]]:
    indices, seed, config, scenarios, traffic = args
    return [run_rollout(i, seed, config, scenarios, traffic) for i in indices]


def _percentile(ordered: list[int], q: float) -> float | None:
    """Nearest-rank percentile of sorted values."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q * len(ordered)))
    return float(ordered[rank - 1])


def _summarize(method: str, records: list[_Record], budget: int) -> MethodSummary:
    hits = [r for r in records if r is not None]
    samples = sorted(s for _, s in hits)
    by_gate: dict[str, int] = {}
    for gate, _ in hits:
        by_gate[gate] = by_gate.get(gate, 0) + 1
    n = len(records)
    median = None
    if samples:
        mid = len(samples) // 2
        median = float(samples[mid]) if len(samples) % 2 else (samples[mid - 1] + samples[mid]) / 2.0
    within = sum(1 for s in samples if s <= budget)
    return MethodSummary(
        method=method,
        rollouts=n,
        rollbacks=len(hits),
        rollback_rate=len(hits) / n if n else 0.0,
        median_samples=median,
        p95_samples=_percentile(samples, 0.95),
        within_budget=within,
        within_budget_rate=within / n if n else 0.0,
        by_gate=dict(sorted(by_gate.items())),
    )


def simulate_gates(
    config: GateConfig,
    scenarios: Sequence[Scenario] = DEFAULT_SCENARIOS,
    rollouts: int = 1000,
    seed: int = 7,
    *,
    traffic: TrafficConfig = TrafficConfig(),
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> SimulationReport:
    """Run ``rollouts`` simulated canary stages per scenario through both gate sets.

    Args:
        config: the gate configuration under test.
        scenarios: canary behaviours (names must be unique); default A/A and regressions.
        rollouts: independent stages per scenario.
        seed: base seed; with it the report is reproducible, whatever ``workers``.
        traffic: volume, split and length of a stage.
        workers: processes to use (``os.cpu_count()`` when 0).
        progress: called with (rollouts done, rollouts) as chunks finish.

    Returns:
        Per scenario and method: rollback (false-rollback or detection) rate, median and
        P95 canary samples at rollback, rollbacks within ``traffic.detection_budget``
        canary samples, and which gates tripped.
    """
    if rollouts < 1:
        raise ValueError(f"rollouts must be at least 1, got {rollouts}")
    names = [s.name for s in scenarios]
    if not names or len(set(names)) != len(names):
        raise ValueError("scenarios must be a non-empty sequence with unique names")
    workers = workers or os.cpu_count() or 1
    started = time.perf_counter()
    chunk = max(1, min(25, math.ceil(rollouts / (4 * workers))))
    tasks = [(range(i, min(i + chunk, rollouts)), seed, config, tuple(scenarios), traffic)
             for i in range(0, rollouts, chunk)]
    results: list[list[tuple[_Record, _Record]]] = []
    if workers == 1:
        for task in tasks:
            results.extend(_run_chunk(task))
            if progress:
                progress(len(results), rollouts)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for part in pool.map(_run_chunk, tasks):
                results.extend(part)
                if progress:
                    progress(len(results), rollouts)
    summaries = []
    for j, scenario in enumerate(scenarios):
        seq = [r[j][0] for r in results]
        naive = [r[j][1] for r in results]
        summaries.append(ScenarioSummary(
            name=scenario.name,
            description=scenario.description,
            expected_gate=scenario.expected_gate,
            sequential=_summarize("sequential", seq, traffic.detection_budget),
            naive=_summarize("naive", naive, traffic.detection_budget),
        ))
    return SimulationReport(
        rollouts=rollouts,
        seed=seed,
        requests_per_window=traffic.requests_per_window,
        canary_share=traffic.canary_share,
        windows=traffic.windows,
        split=traffic.split,
        detection_budget=traffic.detection_budget,
        config=msgspec.to_builtins(config),
        scenarios=summaries,
        seconds=round(time.perf_counter() - started, 2),
    )
