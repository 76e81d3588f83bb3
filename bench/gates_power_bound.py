"""How much of the data's information the gates use: fixed-horizon power at 15 minutes.

The suite (``gates_bench.py``) reports how often a regression is rolled back within the
first 15 minutes at the 5% stage. This bench asks what *any* test at the same error budget
could have done with the same data: it draws the first stage's 15 minutes of traffic
(the suite's simulator, 2,000 requests a minute, random assignment at 5%) and applies the
one-sided z-test that knows the sample size in advance — the most powerful test at its
level for these normal approximations, with no price for looking after every batch,
which the gates' always-valid tests pay. Its rejection rate is a ceiling for the gate's
"within 15 min" column, at the gate's first-stage α and at the whole rollout's α.

    .venv/bin/python bench/gates_power_bound.py [--rollouts 2000] [--seed 7]

Writes ``bench/results/gates_power_bound.md``. Pure CPU, about a minute.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from collections.abc import Callable
from pathlib import Path
from statistics import NormalDist

from bifrost.gatesim.simulation import DEFAULT_SCENARIOS, Scenario, TrafficConfig
from bifrost.gatesim.traffic import ArmSampler, binomial
from bifrost.streams.aggregates.stats import WindowStats
from bifrost.streams.rollout.controller import RolloutPolicy
from bifrost.streams.rollout.gates import GateConfig
from bifrost.streams.rollout.gates.score import shift_score

RESULTS = Path(__file__).resolve().parent / "results"
STAGE_MINUTES = 15
Statistic = Callable[[WindowStats, WindowStats, float], float]


def first_stage(
    scenario: Scenario, traffic: TrafficConfig, share: float, rng: random.Random
) -> tuple[WindowStats, WindowStats]:
    """The canary's and the control's sums after ``STAGE_MINUTES`` at ``share`` (random assignment)."""
    canary_sampler = ArmSampler.for_profile(scenario.canary, model=traffic.latency)
    control_sampler = ArmSampler.for_profile(traffic.control, model=traffic.latency)
    canary, control = WindowStats(), WindowStats()
    for _ in range(STAGE_MINUTES):
        n_canary = binomial(rng, traffic.requests_per_window, share)
        canary_sampler.add_window(canary, rng, n_canary)
        control_sampler.add_window(control, rng, traffic.requests_per_window - n_canary)
    return canary, control


def _mean_var(total: float, total_sq: float, n: int) -> tuple[float, float]:
    mean = total / n
    return mean, max(total_sq / n - mean * mean, 0.0)


def win_rate_z(canary: WindowStats, control: WindowStats, margin: float) -> float:
    """z of "canary win rate below control × (1 − margin)" (win = 1, tie = ½ per judged request)."""
    arms = []
    for s in (canary, control):
        judged = s.wins + s.losses + s.ties
        arms.append((*_mean_var(s.wins + s.ties / 2, s.wins + s.ties / 4, judged), judged))
    (mc, vc, nc), (mk, vk, nk) = arms
    gap = mk * (1 - margin) - mc
    return gap / math.sqrt(vc / nc + (1 - margin) ** 2 * vk / nk)


def log_cost_z(canary: WindowStats, control: WindowStats, margin: float) -> float:
    """z of "canary log cost above control's + log(1 + margin)" (the cost gate's shift test)."""
    mc, vc = _mean_var(canary.cost_log, canary.cost_log_sq, canary.cost_paid)
    mk, vk = _mean_var(control.cost_log, control.cost_log_sq, control.cost_paid)
    return (mc - mk - math.log1p(margin)) / math.sqrt(vc / canary.cost_paid + vk / control.cost_paid)


def error_rate_z(canary: WindowStats, control: WindowStats, margin: float) -> float:
    """z of "canary error rate above control × (1 + margin)"."""
    pc, pk = canary.errors / canary.count, control.errors / control.count
    se = math.sqrt(pc * (1 - pc) / canary.count + (1 + margin) ** 2 * pk * (1 - pk) / control.count)
    return (pc - pk * (1 + margin)) / se if se > 0 else 0.0


def cost_score_z(canary: WindowStats, control: WindowStats, margin: float) -> float:
    """z of the cost gate's efficient score test of a log-cost shift (on the cost sketches)."""
    if canary.cost_sketch is None or control.cost_sketch is None:
        return 0.0
    score = shift_score(canary.cost_sketch, control.cost_sketch, margin)
    return score.difference / score.standard_error if score is not None else 0.0


#: Per test: the statistic and the gate whose budget it is held to.
STATISTICS: dict[str, tuple[Statistic, str]] = {
    "error rate": (error_rate_z, "error_rate"),
    "log-cost mean": (log_cost_z, "cost_per_task"),
    "log-cost score": (cost_score_z, "cost_per_task"),
    "win rate": (win_rate_z, "win_rate"),
}
ROWS = (
    ("errors x3", "error rate"),
    ("cost x1.3", "log-cost mean"),
    ("cost x1.3", "log-cost score"),
    ("win rate x0.9", "win rate"),
)


def main(argv: list[str] | None = None) -> int:
    """Run the bench, print and write the table; returns the exit code."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rollouts", type=int, default=2000, help="first stages per row (default 2000)")
    p.add_argument("--seed", type=int, default=7, help="seed (default 7)")
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    args = p.parse_args(argv)
    if args.rollouts < 1:
        p.error("--rollouts must be at least 1")
    config, policy, traffic = GateConfig(), RolloutPolicy(), TrafficConfig()
    share = policy.stages[0]
    normal = NormalDist()
    lines = [
        '# Fixed-horizon power at 15 minutes: the ceiling for "within 15 min"',
        "",
        f"`bench/gates_power_bound.py --rollouts {args.rollouts} --seed {args.seed}`: the first stage "
        f"({share:.0%} canary, {traffic.requests_per_window:,} req/min, random assignment, the simulator's "
        f"mix, {STAGE_MINUTES} minutes), a one-sided z-test at the fixed sample size reached at "
        f"{STAGE_MINUTES} minutes with the gate's margin.",
        "",
        "| Scenario | gate | test | canary samples (median) | mean z at 15 min | first-stage gate α | power at it |"
        " whole-rollout α | power at it |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    scenarios = {s.name: s for s in DEFAULT_SCENARIOS}
    for name, test in ROWS:
        scenario = scenarios[name]
        statistic, gate = STATISTICS[test]
        assert gate == scenario.expected_gate
        margin = config.margin(gate)
        alpha_stage = config.gate_alpha(gate, policy.alpha_share(0))
        rng = random.Random(f"{args.seed}:{name}")
        zs, samples = [], []
        for _ in range(args.rollouts):
            canary, control = first_stage(scenario, traffic, share, rng)
            zs.append(statistic(canary, control, margin))
            samples.append(canary.count)
        samples.sort()
        power = [sum(z > normal.inv_cdf(1 - a) for z in zs) / len(zs) for a in (alpha_stage, config.alpha)]
        row = (
            f"| {name} | {gate} | {test} | {samples[len(samples) // 2]:,} | {sum(zs) / len(zs):.2f} | "
            f"{alpha_stage:.4f} | {power[0]:.1%} | {config.alpha:g} | {power[1]:.1%} |"
        )
        print(row, file=sys.stderr, flush=True)
        lines.append(row)
    lines += [
        "",
        "Power at the gate's α is what the best test that looks once, at exactly 15 minutes, with this",
        "stage's share of the budget would reach; the gates look after every batch and must stay valid",
        'at every look, so their "within 15 min" sits below it. At the whole rollout\'s α it is the',
        "ceiling if the entire budget were spent on this one gate at this one stage.",
        "",
        "For cost the ceiling depends on the test: the log-cost mean is the best test on the gate's",
        "moments, the score of a log shift on the arms' cost sketches (`gates/score.py`) sees the",
        "shift against the width of one price tier rather than the spread between tiers. Both cost",
        "rows draw the same traffic (the seed is per scenario): the two tests on identical data.",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gates_power_bound.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
