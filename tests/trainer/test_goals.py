"""The goal on the bundled dataset and on each stress variant (test split), and the baseline to beat.

Each case trains on the train split exactly as ``bifrost-opt train`` does (fewer Optuna
trials than the default, to keep the test short; no training row shares its prompt text
with a test prompt) and scores the 500 test prompts: score ≥ best single model (chosen on
the train split) −2% at ≤ 50% of its cost, and against the per-model logistic-regression
baseline whose λ was chosen on the train split to spend what the artifact spends: not
significantly worse (the paired difference above −2 standard errors). "At or above the
baseline" is what the README reports per seed (it held on 19 of the 20 promised rows at 200
trials), but 500 test prompts cannot separate the two (differences of ±0.01, SE ≈ 0.011),
so a test asserting it would fail by chance. README figures:
the same code with 200 trials and seeds 0–4 (``python -m bifrost.trainer.goals``,
bench/results/quality.md).
"""

from __future__ import annotations

import pytest

from bifrost.storage.dataset import FullInfoDataset
from bifrost.trainer.goals import PROMISED, goal_row

TRIALS = 30


# Not ``noisy``: the README reports the goal missed there on 3 of 5 seeds (a known gap, not a promise).
@pytest.mark.parametrize("name", PROMISED)
def test_goal_and_baseline(real_dataset: FullInfoDataset, name: str) -> None:
    row = goal_row(real_dataset, name, trials=TRIALS, seed=0)
    assert row.rows == 500 and row.dropped_overlap == 119
    assert row.goal_met, row
    assert row.score >= 0.98 * row.best_single_score and row.cost_vs_best <= 0.5
    assert row.reference_chosen_on == "train split"
    # The knob's default: the search's 95% bound ≤ 40% of the reference's cost, validated at the goal's 50%.
    assert row.search_cost_upper is not None and row.search_cost_upper <= 0.40
    assert row.holdout_cost_share is not None and row.holdout_cost_share <= 0.50
    # The baseline's λ is chosen on the train split to spend the artifact's cost share. The test split's
    # task mix moves the two apart (bundled, 30 trials: the artifact 40.4%, the baseline 48.6%); the
    # comparison must not flatter the artifact by letting the baseline spend clearly less.
    assert row.baseline_cost_vs_best >= row.cost_vs_best - 0.05, row
    assert row.diff_vs_baseline >= -2.0 * row.diff_vs_baseline_se, row
    # At exactly equal cost: the baseline's own frontier on the test rows, interpolated at the artifact's cost.
    assert row.score >= row.baseline_frontier_at_cost - 2.0 * row.diff_vs_baseline_se, row
    # Below the oracle, as any policy.
    assert row.score <= row.oracle_score
