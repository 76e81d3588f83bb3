"""A :class:`SimulationReport` as a Markdown table (what the CLI prints, what bench saves)."""

from __future__ import annotations

from bifrost.streams.rollout.gates.simulation import MethodSummary, SimulationReport


def _samples(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _rate(summary: MethodSummary) -> str:
    return f"{100.0 * summary.rollback_rate:.1f}% ({summary.rollbacks}/{summary.rollouts})"


def _gates(summary: MethodSummary) -> str:
    return ", ".join(f"{gate} {count}" for gate, count in summary.by_gate.items()) or "–"


def to_markdown(report: SimulationReport) -> str:
    """Scenario × method → rollback rate, median/P95 canary samples at rollback, within budget."""
    budget = report.detection_budget
    lines = [
        f"Canary stage: {report.requests_per_window:,} requests/window, canary share "
        f"{100 * report.canary_share:g}% ({report.split} split), up to {report.windows} windows, "
        f"gates evaluated after every window; {report.rollouts:,} rollouts per scenario, "
        f"seed {report.seed}, alpha {report.config['alpha']}.",
        "",
        f"| Scenario | Method | Rollback rate | Median canary samples | P95 canary samples "
        f"| Within {budget} samples | Gates tripped |",
        "|---|---|---|---|---|---|---|",
    ]
    for scenario in report.scenarios:
        label = scenario.name if scenario.expected_gate else f"{scenario.name} (false rollbacks)"
        for summary in (scenario.sequential, scenario.naive):
            lines.append(
                f"| {label} | {summary.method} | {_rate(summary)} | {_samples(summary.median_samples)} "
                f"| {_samples(summary.p95_samples)} | {100.0 * summary.within_budget_rate:.1f}% | {_gates(summary)} |"
            )
    lines.append("")
    lines.append(
        "Rollback rate is the false-rollback rate for A/A and the detection rate otherwise; "
        "samples are canary requests at the evaluation that rolled back (rollbacks only)."
    )
    return "\n".join(lines) + "\n"
