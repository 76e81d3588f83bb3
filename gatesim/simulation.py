"""Monte-Carlo check of the gates through the real controller (pure; no Kafka, no clock).

Every simulated rollout starts a canary with the real rollout controller and feeds it
traffic batch by batch: each 1-minute window's requests (``requests_per_window``, with
an optional daily swing) are split into ``looks_per_window`` batches, each request goes
to the canary at random with the stage's weight (``split="binomial"``) or by weighted
round-robin (``"exact"``), and after every batch the controller looks
(:func:`~bifrost.streams.rollout.controller.on_look`) at the stage's windows so far —
what the worker does on every stage-2 snapshot. The controller rolls back, advances
through the stages (5% → 25% → 50% → 100% by default) when a stage is ripe by data, or
pauses a stage that times out, exactly as in production; ``mode="stage"`` instead holds
the first stage for ``max_windows`` windows (per-stage detection speed).

Traffic options: the latency distribution (the simulator's three-model mix, a lognormal
of a given σ, a Pareto), events in clusters (bursts of errors, grouped costs, latencies
or judgements), the request rate and its diurnal swing; canary options: regressions
and missing data (:class:`~.traffic.ArmProfile`). Every rollout is seeded from
``(seed, rollout, scenario)``, so results do not depend on the number of processes.

Example:
    >>> from bifrost.streams.rollout.gates import GateConfig
    >>> report = simulate_gates(GateConfig(), DEFAULT_SCENARIOS[:1], rollouts=2, seed=1,
    ...                         traffic=TrafficConfig(max_windows=3))
    >>> report.scenarios[0].rollouts
    2
"""

from __future__ import annotations

import math
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import msgspec

from bifrost.gatesim.naive import naive_gates
from bifrost.gatesim.traffic import (
    NO_CLUSTERS,
    ArmProfile,
    ArmSampler,
    BurstCarry,
    Clustering,
    LatencyModel,
    binomial,
)
from bifrost.schemas.rollout import CommandKind, Phase, RolloutCommand, RolloutState
from bifrost.streams.aggregates.stats import WindowStats, merged
from bifrost.streams.rollout.controller import Evaluate, Look, RolloutPolicy, apply_command, on_look
from bifrost.streams.rollout.gates.config import GateConfig
from bifrost.streams.rollout.gates.dispersion import ArmFigures, StageWindow, WindowSums
from bifrost.streams.rollout.gates.gates import evaluate_gates

Split = Literal["exact", "binomial"]
Mode = Literal["rollout", "stage"]
Gates = Literal["sequential", "naive"]


@dataclass(frozen=True, slots=True)
class TrafficConfig:
    """Traffic of the simulated router (both arms).

    ``split="binomial"`` assigns each request to the canary at random with the stage's
    weight; ``"exact"`` gives it exactly its share of every window (weighted
    round-robin). ``diurnal`` is the amplitude of the daily swing of the request rate
    (0.5: ±50% over ``diurnal_period`` minutes, at a random phase per rollout).
    ``max_windows`` caps a rollout (``mode="stage"``: the length of the held stage).
    ``history_windows``: windows of control-only traffic before the rollout starts, and the
    number of earlier windows the gates read to learn how clustered the traffic is (the
    worker passes the hour before the stage).
    """

    requests_per_window: int = 2000
    split: Split = "binomial"
    looks_per_window: int = 10
    latency: LatencyModel = field(default_factory=LatencyModel)
    clustering: Clustering = NO_CLUSTERS
    diurnal: float = 0.0
    diurnal_period: int = 1440
    control: ArmProfile = field(default_factory=ArmProfile)
    detection_budget: int = 200
    max_windows: int = 400
    window_seconds: int = 60
    history_windows: int = 60

    def __post_init__(self) -> None:
        if self.requests_per_window < 1 or self.max_windows < 1 or self.looks_per_window < 1:
            raise ValueError("requests_per_window, max_windows and looks_per_window must be positive")
        if self.split not in ("exact", "binomial"):
            raise ValueError(f"split must be 'exact' or 'binomial', got {self.split!r}")
        if not 0 <= self.diurnal < 1:
            raise ValueError(f"diurnal must be within [0, 1), got {self.diurnal}")

    def describe(self) -> str:
        """One line for tables."""
        parts = [
            f"{self.requests_per_window:,} req/min",
            self.latency.label,
            "random assignment" if self.split == "binomial" else "exact split",
        ]
        if self.clustering.size > 1:
            parts.append(f"{'/'.join(sorted(self.clustering.metrics))} in clusters of mean {self.clustering.size:g}")
        if self.diurnal:
            parts.append(f"diurnal ±{self.diurnal:.0%}")
        if self.history_windows != 60:
            parts.append(
                "no history before the rollout"
                if self.history_windows == 0
                else f"{self.history_windows} min of history"
            )
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Scenario:
    """A canary's behaviour relative to the control, and the gate that should catch it.

    ``expected_gate`` is ``None`` for an A/A (identical canary: every rollback is false)
    and for missing-data scenarios (``expected="no promotion"``). ``traffic`` overrides
    the run's traffic for this scenario.
    """

    name: str
    description: str
    canary: ArmProfile
    expected_gate: str | None = None
    traffic: TrafficConfig | None = None
    expected: str = ""


_BASE = ArmProfile()
#: How far before a stage its dispersion history reaches (the LookBuilder's default).
HISTORY_SECONDS = 3600

#: The canary behaviours: A/A, the regressions of the brief, and what the table would hide.
DEFAULT_SCENARIOS: tuple[Scenario, ...] = (
    Scenario("A/A", "canary identical to control", _BASE),
    Scenario("latency x1.5", "every canary latency x1.5 (P95 +50%)", ArmProfile(latency_factor=1.5), "latency_p95"),
    Scenario(
        "errors x1.1",
        "canary error rate 2.2% vs 2.0% (+10%)",
        ArmProfile(error_rate=_BASE.error_rate * 1.1),
        "error_rate",
    ),
    Scenario(
        "errors x1.5",
        "canary error rate 3.0% vs 2.0% (+50%)",
        ArmProfile(error_rate=_BASE.error_rate * 1.5),
        "error_rate",
    ),
    Scenario(
        "errors x3",
        "canary error rate 6% vs 2% (gross regression)",
        ArmProfile(error_rate=_BASE.error_rate * 3.0),
        "error_rate",
    ),
    Scenario("cost x1.3", "every canary cost x1.3 (+30%)", ArmProfile(cost_factor=1.3), "cost_per_task"),
    Scenario(
        "win rate x0.9",
        "canary win rate 0.81 vs 0.90 (-10%)",
        ArmProfile(win_probability=_BASE.win_probability - 0.09),
        "win_rate",
    ),
    Scenario(
        "latency tail",
        "6% of canary requests x10 slower (P95 +52%, median +8%)",
        ArmProfile(tail_fraction=0.06, tail_factor=10.0),
        "latency_p95",
    ),
)

#: Canaries whose data are missing: they must never be promoted.
MISSING_SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "canary latency 0",
        "the canary reports latency 0 for every request",
        ArmProfile(latency_zero_fraction=1.0),
        expected="no promotion",
    ),
    Scenario(
        "canary latency 0 for 20%",
        "the canary reports latency 0 for a fifth of its requests",
        ArmProfile(latency_zero_fraction=0.2),
        expected="no promotion",
    ),
    Scenario(
        "canary unjudged",
        "no judgements for canary requests (the control has them)",
        ArmProfile(judged_fraction=0.0),
        expected="no promotion",
    ),
    Scenario(
        "canary without cost", "the canary reports cost 0", ArmProfile(reports_cost=False), expected="no promotion"
    ),
)


class RolloutRecord(msgspec.Struct, frozen=True, array_like=True):
    """How one simulated rollout ended."""

    outcome: str  # rolled_back | promoted | paused | running (hit max_windows)
    stage: int  # stage index at the end
    gate: str | None  # the gate that rolled back, or the first pause reason's gate
    samples: int  # canary requests in that stage at the end
    stage_minutes: float  # minutes of traffic the stage had run at the end
    minutes: float  # minutes of traffic of the whole rollout
    canary_requests: int  # canary requests over the whole rollout
    #: Rolled back at or before the stage's first look ripe by data (``min_stage_seconds``
    #: covered, ``min_samples`` per arm): within the stage's minimum length, before it could
    #: have advanced.
    by_ripe_look: bool = False


class ScenarioSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One scenario's outcome over all its rollouts."""

    name: str
    description: str
    traffic: str
    expected_gate: str | None
    expected: str
    rollouts: int
    rolled_back: int
    rollback_rate: float
    rolled_back_by_stage: list[int]
    by_gate: dict[str, int]
    promoted: int
    paused: int
    paused_by: dict[str, int]
    running: int
    first_stage: int  # rolled back in the first stage
    within_budget: int  # ... at most detection_budget canary samples into it
    within_min_stage: int  # ... at or before its first look ripe by data (min_stage_seconds covered)
    median_samples: float | None  # canary samples at first-stage rollbacks
    p95_samples: float | None
    median_minutes: float | None  # rollout duration (minutes of traffic)
    median_canary_requests: float | None
    #: Promoted rollouts: median minutes of traffic per gated stage (the time evidence takes).
    median_stage_minutes_promoted: float | None = None


class SimulationReport(msgspec.Struct, frozen=True, kw_only=True):
    """Everything needed to reproduce and read a simulation."""

    rollouts: int
    seed: int
    mode: str
    gates: str
    stages: list[float]
    min_stage_seconds: float
    stage_timeout_seconds: float
    detection_budget: int
    looks_per_window: int
    config: dict[str, float | int]
    scenarios: list[ScenarioSummary]
    seconds: float


_VERIFY = RolloutCommand(
    command_id="sim-verified", router_id="sim", kind=CommandKind.ARTIFACT_VERIFIED, artifact="canary", sha256="0" * 64
)
_START = RolloutCommand(command_id="sim", router_id="sim", kind=CommandKind.START, artifact="canary", control="control")


def _canary_state(policy: RolloutPolicy) -> RolloutState:
    # Only verified versions start: record the (simulated) canary as verified first.
    state = RolloutState(router_id="sim")
    for command in (_VERIFY, _START):
        state = apply_command(
            state, command, arm_traffic={"control": 1}, wall=0.0, policy=policy, issued_by="simulation"
        ).state
    assert state.phase is Phase.CANARY, state.last_command
    return state


def stage_policy(policy: RolloutPolicy) -> RolloutPolicy:
    """``mode="stage"``: the first stage is held (never ripe, never times out) and spends
    the first stage's share of alpha, as it would in a whole rollout."""
    return replace(policy, stages=(policy.stages[0], 1.0), min_stage_seconds=math.inf, stage_timeout_seconds=0.0)


def _evaluator(config: GateConfig, gates: Gates, share_scale: float) -> Evaluate:
    if gates == "naive":
        return lambda look, share: naive_gates(look.canary, look.control, config)
    # ``look.history`` here already sums the stage's closed windows too (run_rollout keeps
    # it up to date), so only the open window is summed at each look: the same sums.
    return lambda look, share: evaluate_gates(
        look.canary,
        look.control,
        config,
        windows=look.windows[-1:],
        history=look.history,
        alpha_share=share * share_scale,
        totals=look.totals,
        fixed_looks=look.fixed_looks,
    )


def _batches(n: int, parts: int) -> list[int]:
    base, extra = divmod(n, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def run_rollout(
    index: int,
    seed: int,
    config: GateConfig,
    scenario: Scenario,
    traffic: TrafficConfig,
    policy: RolloutPolicy = RolloutPolicy(),
    *,
    mode: Mode = "rollout",
    gates: Gates = "sequential",
) -> RolloutRecord:
    """Simulate one rollout of ``scenario``'s canary through the controller."""
    traffic = scenario.traffic or traffic
    share_scale = 1.0
    if mode == "stage":
        share_scale = policy.alpha_share(0)
        policy = stage_policy(policy)
    rng = random.Random(f"{seed}:{index}:{scenario.name}")
    control_sampler = ArmSampler.for_profile(traffic.control, model=traffic.latency)
    canary_sampler = ArmSampler.for_profile(scenario.canary, model=traffic.latency)
    evaluate = _evaluator(config, gates, share_scale)
    clustering = traffic.clustering
    ws = traffic.window_seconds
    looks = traffic.looks_per_window
    phase = rng.random() * traffic.diurnal_period
    state = _canary_state(policy)
    past: list[StageWindow] = []  # closed windows before the current stage
    canary_bursts, control_bursts = BurstCarry(), BurstCarry()
    for minute in range(-traffic.history_windows, 0):
        before = WindowStats()
        control_sampler.add_window(before, rng, traffic.requests_per_window, clustering, control_bursts)
        past.append(StageWindow(minute * ws, ArmFigures(), ArmFigures.of(before)))
    # history + the stage's closed windows
    sums = WindowSums.of(past[-traffic.history_windows :]) if traffic.history_windows else WindowSums()
    totals = (ArmFigures(), ArmFigures())  # both arms' figures summed over the stage
    closed: list[StageWindow] = []
    canary_cum, control_cum = WindowStats(), WindowStats()
    stage_start = 0.0
    ripe_before = False  # a look of this stage before the current one was ripe by data
    total_canary = 0
    minutes = 0.0
    for minute in range(traffic.max_windows):
        rate = traffic.requests_per_window
        if traffic.diurnal:
            rate = round(
                rate * (1.0 + traffic.diurnal * math.sin(2.0 * math.pi * (minute + phase) / traffic.diurnal_period))
            )
        start = minute * ws
        canary_w, control_w = WindowStats(), WindowStats()
        canary_f, control_f = ArmFigures(), ArmFigures()
        owed = 0.0
        for b, n in enumerate(_batches(rate, looks)):
            share = state.weights.get("canary", 0.0)
            if traffic.split == "exact":
                owed += share * n
                n_canary = min(n, int(owed + 0.5))
                owed -= n_canary
            else:
                n_canary = binomial(rng, n, share)
            batch_c, batch_k = WindowStats(), WindowStats()
            canary_sampler.add_window(batch_c, rng, n_canary, clustering, canary_bursts)
            control_sampler.add_window(batch_k, rng, n - n_canary, clustering, control_bursts)
            for target in (canary_w, canary_cum):
                target.merge(batch_c)
            for target in (control_w, control_cum):
                target.merge(batch_k)
            fig_c, fig_k = ArmFigures.of(batch_c), ArmFigures.of(batch_k)
            canary_f, control_f = canary_f + fig_c, control_f + fig_k
            totals = (totals[0] + fig_c, totals[1] + fig_k)
            total_canary += n_canary
            minutes = minute + (b + 1) / looks
            windows = [*closed, StageWindow(start, canary_f, control_f)]
            look = Look(
                clock=start + ws * (b + 1) / looks,
                window_seconds=ws,
                windows=windows,
                canary=canary_cum,
                control=control_cum,
                history=sums,
                totals=totals,
            )
            decision = on_look(state, look, evaluate=evaluate, wall=0.0, policy=policy)
            new = decision.state
            stage_minutes = minutes - stage_start
            if decision.rollback is not None:
                return RolloutRecord(
                    "rolled_back",
                    state.stage_index,
                    decision.rollback.gate,
                    canary_cum.count,
                    stage_minutes,
                    minutes,
                    total_canary,
                    by_ripe_look=not ripe_before,
                )
            if new.phase is Phase.PAUSED:
                return RolloutRecord(
                    "paused",
                    state.stage_index,
                    _reason_gate(new),
                    canary_cum.count,
                    stage_minutes,
                    minutes,
                    total_canary,
                )
            if new.phase is Phase.PROMOTED:
                return RolloutRecord(
                    "promoted", new.stage_index, None, canary_cum.count, stage_minutes, minutes, total_canary
                )
            if new.stage_index != state.stage_index:
                # The new stage starts at the current window (its since is the frontier).
                # Like the LookBuilder, the new stage's history is the hour before it: the
                # earlier stages' windows too (and what is left of the traffic before the rollout).
                past += closed
                sums = WindowSums.of(past[-max(1, HISTORY_SECONDS // ws) :])
                closed = []
                canary_cum, control_cum = merged([canary_w]), merged([control_w])
                totals = (canary_f, control_f)
                stage_start = minute
                owed = 0.0
                ripe_before = False
            else:
                ripe_before = ripe_before or policy.ripe(new.covered_seconds, new.canary_samples, new.control_samples)
            state = new
        finished = StageWindow(start, canary_f, control_f)
        closed.append(finished)
        sums = sums + WindowSums.of([finished])
    return RolloutRecord(
        "running", state.stage_index, None, canary_cum.count, minutes - stage_start, minutes, total_canary
    )


def _reason_gate(state: RolloutState) -> str:
    """The first stall reason, shortened to what blocked (e.g. ``slo_p95 blocked``)."""
    reasons = state.stall.reasons if state.stall else []
    if not reasons:
        return "unknown"
    first = reasons[0]
    if first.startswith("only "):
        return "coverage"
    if first.startswith("too few"):
        return "too few requests"
    words = first.split(":", 1)[0].split()
    return " ".join(words[:3] if words[1:3] == ["not", "shown"] else words[:2])


def _run_chunk(
    args: tuple[range, int, GateConfig, Scenario, TrafficConfig, RolloutPolicy, Mode, Gates],
) -> list[RolloutRecord]:
    indices, seed, config, scenario, traffic, policy, mode, gates = args
    return [run_rollout(i, seed, config, scenario, traffic, policy, mode=mode, gates=gates) for i in indices]


def _percentile(ordered: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted values."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q * len(ordered)))
    return float(ordered[rank - 1])


def _median(values: Sequence[float]) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    mid = len(ordered) // 2
    return float(ordered[mid]) if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0


def summarize(
    scenario: Scenario, traffic: TrafficConfig, records: list[RolloutRecord], stages: int, min_stage_minutes: float
) -> ScenarioSummary:
    """Rates and figures of one scenario's rollouts."""
    n = len(records)
    back = [r for r in records if r.outcome == "rolled_back"]
    first = [r for r in back if r.stage == 0]
    samples = sorted(r.samples for r in first)
    by_stage = [0] * max(stages, 1)
    for r in back:
        if 0 <= r.stage < len(by_stage):
            by_stage[r.stage] += 1
    paused_by = Counter(r.gate or "unknown" for r in records if r.outcome == "paused")
    return ScenarioSummary(
        name=scenario.name,
        description=scenario.description,
        traffic=(scenario.traffic or traffic).describe(),
        expected_gate=scenario.expected_gate,
        expected=scenario.expected,
        rollouts=n,
        rolled_back=len(back),
        rollback_rate=len(back) / n if n else 0.0,
        rolled_back_by_stage=by_stage,
        by_gate=dict(sorted(Counter(r.gate or "?" for r in back).items())),
        promoted=sum(1 for r in records if r.outcome == "promoted"),
        paused=sum(1 for r in records if r.outcome == "paused"),
        paused_by=dict(paused_by.most_common()),
        running=sum(1 for r in records if r.outcome == "running"),
        first_stage=len(first),
        within_budget=sum(1 for s in samples if s <= traffic.detection_budget),
        within_min_stage=sum(1 for r in first if r.by_ripe_look),
        median_samples=_median(samples),
        p95_samples=_percentile(samples, 0.95),
        median_minutes=_median([r.minutes for r in records]),
        median_canary_requests=_median([r.canary_requests for r in records]),
        median_stage_minutes_promoted=_median(
            [r.minutes / max(r.stage, 1) for r in records if r.outcome == "promoted"]
        ),
    )


def simulate_gates(
    config: GateConfig,
    scenarios: Sequence[Scenario] = DEFAULT_SCENARIOS,
    rollouts: int | Sequence[int] = 1000,
    seed: int = 7,
    *,
    traffic: TrafficConfig = TrafficConfig(),
    policy: RolloutPolicy = RolloutPolicy(),
    mode: Mode = "rollout",
    gates: Gates = "sequential",
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> SimulationReport:
    """Run ``rollouts`` simulated rollouts per scenario through the controller.

    Args:
        config: the gate configuration under test (``alpha`` per whole rollout).
        scenarios: canary behaviours (names must be unique), each with optional traffic.
        rollouts: rollouts per scenario (one number, or one per scenario).
        seed: base seed; with it the report is reproducible, whatever ``workers``.
        traffic: the traffic of scenarios that bring none.
        policy: stages, minimum stage length and samples, stage timeout.
        mode: ``"rollout"`` (whole rollouts) or ``"stage"`` (the first stage held).
        gates: ``"sequential"`` or the ``"naive"`` fixed-threshold baseline.
        workers: processes to use (``os.cpu_count()`` when 0).
        progress: called with (rollouts done, rollouts) as chunks finish.
    """
    counts = [rollouts] * len(scenarios) if isinstance(rollouts, int) else list(rollouts)
    if len(counts) != len(scenarios) or any(c < 1 for c in counts):
        raise ValueError(f"rollouts must be at least 1 per scenario, got {rollouts}")
    names = [s.name for s in scenarios]
    if not names or len(set(names)) != len(names):
        raise ValueError("scenarios must be a non-empty sequence with unique names")
    if mode not in ("rollout", "stage"):
        raise ValueError(f"mode must be rollout or stage, got {mode!r}")
    workers = workers or os.cpu_count() or 1
    started = time.perf_counter()
    tasks = []
    for scenario, count in zip(scenarios, counts):
        chunk = max(1, min(25, math.ceil(count / (4 * workers))))
        tasks += [
            (range(i, min(i + chunk, count)), seed, config, scenario, traffic, policy, mode, gates)
            for i in range(0, count, chunk)
        ]
    results: dict[str, list[RolloutRecord]] = {name: [] for name in names}
    total, done = sum(counts), 0

    def collect(task: tuple[Any, ...], part: list[RolloutRecord]) -> None:
        nonlocal done
        results[task[3].name].extend(part)
        done += len(part)
        if progress:
            progress(done, total)

    if workers == 1:
        for task in tasks:
            collect(task, _run_chunk(task))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for task, part in zip(tasks, pool.map(_run_chunk, tasks)):
                collect(task, part)
    effective = stage_policy(policy) if mode == "stage" else policy
    min_stage_minutes = policy.min_stage_seconds / 60.0
    summaries = [summarize(s, traffic, results[s.name], len(effective.stages), min_stage_minutes) for s in scenarios]
    return SimulationReport(
        rollouts=max(counts),
        seed=seed,
        mode=mode,
        gates=gates,
        stages=list(effective.stages),
        min_stage_seconds=policy.min_stage_seconds,
        stage_timeout_seconds=policy.timeout_seconds,
        detection_budget=traffic.detection_budget,
        looks_per_window=traffic.looks_per_window,
        config=msgspec.to_builtins(config),
        scenarios=summaries,
        seconds=round(time.perf_counter() - started, 2),
    )
