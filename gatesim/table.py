"""A :class:`SimulationReport` as a Markdown table (what the CLI prints, what bench saves)."""

from __future__ import annotations

from bifrost.gatesim.simulation import ScenarioSummary, SimulationReport


def _samples(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _pct(count: int, total: int) -> str:
    return "–" if total == 0 else f"{100.0 * count / total:.1f}%"


def _counted(count: int, total: int) -> str:
    return f"{_pct(count, total)} ({count}/{total})"


def _paused(s: ScenarioSummary) -> str:
    text = "0"
    if s.paused:
        top = ", ".join(f"{reason} {n}" for reason, n in list(s.paused_by.items())[:2])
        text = f"{_pct(s.paused, s.rollouts)} ({top})"
    if s.running:
        text += f"; {s.running} still running at the window cap"
    return text


def _minutes(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _stages(s: ScenarioSummary, stages: list[float]) -> str:
    gated = [f"{100 * share:g}%: {n}" for share, n in zip(stages, s.rolled_back_by_stage) if share < 1.0]
    return " / ".join(gated)


def to_markdown(report: SimulationReport) -> str:
    """One row per scenario: rollbacks (false ones for A/A), where and how fast, promotions, pauses."""
    budget = report.detection_budget
    minutes = report.min_stage_seconds / 60.0
    mode = ("whole rollouts" if report.mode == "rollout" else "the first stage held") + f" ({report.gates} gates)"
    lines = [
        f"{mode}: stages {', '.join(f'{100 * s:g}%' for s in report.stages)}; a stage advances after "
        f"{minutes:g} min covered by data and every gate passing, pauses after "
        f"{report.stage_timeout_seconds / 60:g} min of traffic without a decision; the gates look after every batch "
        f"({report.looks_per_window} per 1-minute window); "
        + (
            "no error budget (thresholds on point estimates); "
            if report.gates == "naive"
            else f"alpha {report.config['alpha']} per whole rollout; "
        )
        + f"seed {report.seed}.",
        "",
        f"| Scenario | Traffic | Rollouts | Rolled back | By stage | First stage: within {budget} canary samples "
        f"| within its {minutes:g} min (by the first ripe look) | Median / P95 canary samples (first stage) "
        "| Promoted to 100% "
        f"| Median min per stage (promoted) | Paused (why) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in report.scenarios:
        aa = s.expected_gate is None and not s.expected
        label = f"{s.name} (false rollbacks)" if aa else s.name
        first = s.rolled_back_by_stage[0] if s.rolled_back_by_stage else 0
        lines.append(
            f"| {label} | {s.traffic} | {s.rollouts:,} | {_counted(s.rolled_back, s.rollouts)} "
            f"| {_stages(s, report.stages)} "
            f"| {'–' if aa else _pct(s.within_budget, s.rollouts)} "
            f"| {'–' if aa else _pct(s.within_min_stage, s.rollouts)} "
            f"| {_samples(s.median_samples) if first else '–'} / {_samples(s.p95_samples) if first else '–'} "
            f"| {_counted(s.promoted, s.rollouts)} | {_minutes(s.median_stage_minutes_promoted)} | {_paused(s)} |"
        )
    lines.append("")
    lines.append(
        "Rolled back: per whole rollout (false rollbacks for A/A rows, detection otherwise). First-stage columns: "
        "share of all rollouts rolled back in the first stage within the budget, and within the stage's "
        "minimum length: at or before its first look ripe by data (the look after the last of its minimum minutes "
        "covered by data closes, 6 s of traffic later here; the earliest the stage could advance). "
        "Samples: canary requests in the "
        "stage when it rolled back. Median min per stage: minutes of traffic per gated stage of the promoted rollouts "
        "(a stage advances only once every gate has shown the canary within tolerance). Paused: the stage timed out "
        "without a decision (the controller's first reason)."
    )
    return "\n".join(lines) + "\n"
