"""Reference router decisions per second, against LightGBM's own predict in the same run.

One run does everything in one process, on one artifact:

1. **bootstrap** a real artifact from the full-information dataset
   (``bifrost.trainer.bootstrap.bootstrap_artifact``, default config, a throw-away
   Ed25519 key) and build ``bifrost.router.ReferenceRouter(artifact)``: per request it
   evaluates the triage model and every LLM's quality and cost model (one stacked tree
   walk, ``router/prompt_models.py``);
2. take the dataset's *test*-split prompts (never seen by the bootstrap) and cycle them
   to ``--decisions`` decisions per measure (after one warm-up pass);
3. **check** that the numpy tree evaluator's raw outputs equal LightGBM's
   (``Booster.predict(raw_score=True)`` of every model) within 1e-9 on every test feature
   vector, and that routing a prompt, its feature vector and the batch all pick the same
   model (asserted);
4. **measure**, each call timed on its own (``perf_counter_ns``):

   a. ``router.route(prompt)`` end to end (features + GBDT + policy + ``Decision``);
   b. ``router.route(feature_vector)`` (features precomputed);
   c. ``router.route_many(prompts)`` in batches of ``--batch-sizes``;
   d. baselines and components: every model's ``lightgbm.Booster(model_str=…).predict(x[None, :])``
      per call (the naive way), the numpy evaluator alone, feature extraction alone
      (and its two halves), and LightGBM on a whole batch;

5. **profile** (a) under cProfile.

Results: a table on stdout, ``bench/results/router.json`` and ``bench/results/router.md``.

    .venv/bin/python bench/router_bench.py [--decisions 20000 | --quick] [--trials 200]

No Kafka, no network; single-threaded Python (LightGBM may use its OpenMP threads).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import itertools
import json
import logging
import os
import pstats
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

if str(Path(__file__).resolve().parents[1]) not in sys.path:  # run as a script: make `bench.*` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import machine
from bench.profiling import top_functions
from bifrost.router import ReferenceRouter, base_features, encode
from bifrost.storage.dataset import load_dataset
from bifrost.trainer.bootstrap import bootstrap_artifact

log = logging.getLogger("bench.router")

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
REPO_DIR = BENCH_DIR.parent
DATASET = (
    machine.REPO_DIR / "data" / "routing-eval" / "llmrouter-dc.jsonl.gz"
)  # bundled copy of shared/data/routing-eval

GOAL_SECONDS_PER_DECISION = 1e-3
PROBABILITY_TOLERANCE = 1e-9
PROFILE_DECISIONS = 5_000


# --------------------------------------------------------------------------- timing


def latency_stats(name: str, ns: np.ndarray, wall: float, items_per_call: int = 1, note: str = "") -> dict[str, Any]:
    """Decisions/s over the whole loop (wall) and per-call latency percentiles (µs)."""
    us = ns.astype(np.float64) / 1000.0
    p50, p95, p99 = np.percentile(us, [50, 95, 99])
    calls = len(ns)
    return {
        "name": name,
        "calls": calls,
        "items_per_call": items_per_call,
        "decisions": calls * items_per_call,
        "wall_seconds": wall,
        "per_second": calls * items_per_call / wall,
        "mean_us_per_item": wall / (calls * items_per_call) * 1e6,
        "p50_us": float(p50),
        "p95_us": float(p95),
        "p99_us": float(p99),
        "max_us": float(us.max()),
        "note": note,
    }


def timed_calls(
    name: str,
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    n: int,
    *,
    items_per_call: int = 1,
    note: str = "",
    keep: list[np.ndarray] | None = None,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> dict[str, Any]:
    """Call ``fn`` on ``items`` cycled to ``n`` calls (after one warm-up pass); time every call.

    Call ``i`` gets ``items[i % len(items)]``; ``keep`` receives the per-call nanoseconds.
    ``clock`` is wall time by default; ``time.thread_time_ns`` counts only this thread's CPU
    time (what a dedicated core would see: the time the process was descheduled is left out).
    """
    for item in items:  # warm-up: caches, lazy imports, branch predictors
        fn(item)
    work = list(itertools.islice(itertools.cycle(items), n))
    ns = np.empty(n, dtype=np.int64)
    started = time.perf_counter()
    for i, item in enumerate(work):
        t0 = clock()
        fn(item)
        ns[i] = clock() - t0
    wall = time.perf_counter() - started
    stats = latency_stats(name, ns, wall, items_per_call, note)
    if keep is not None:
        keep.append(ns)
    log.info(
        "%-34s %10.0f /s  p50 %7.1f µs  p99 %7.1f µs  max %8.1f µs",
        name,
        stats["per_second"],
        stats["p50_us"],
        stats["p99_us"],
        stats["max_us"],
    )
    return stats


LENGTH_BINS = (0, 250, 500, 1000, 2000)


def by_prompt_length(prompts: Sequence[str], ns: np.ndarray) -> dict[str, Any]:
    """``route(prompt)`` latency against prompt length: per-prompt medians over the cycles, binned, and a line fit."""
    k = len(prompts)
    calls = len(ns) // k * k
    if calls == 0:
        return {}
    per_prompt = np.median(ns[:calls].reshape(-1, k), axis=0) / 1000.0  # µs, call i routed prompts[i % k]
    chars = np.array([len(p) for p in prompts], dtype=np.float64)
    slope, intercept = np.polyfit(chars, per_prompt, 1)
    bins = []
    edges = [*LENGTH_BINS, np.inf]
    for lo, hi in zip(edges, edges[1:]):
        inside = (chars >= lo) & (chars < hi)
        if inside.any():
            bins.append(
                {
                    "chars": f"{lo:,}–{hi:,.0f}" if np.isfinite(hi) else f"≥ {lo:,}",
                    "prompts": int(inside.sum()),
                    "mean_chars": float(chars[inside].mean()),
                    "median_us": float(np.median(per_prompt[inside])),
                    "max_us": float(per_prompt[inside].max()),
                }
            )
    return {
        "cycles_per_prompt": calls // k,
        "fit_us": {"intercept": float(intercept), "per_1000_chars": float(slope * 1000)},
        "prompt_median_p99_us": float(np.percentile(per_prompt, 99)),
        "prompts_over_1ms": int((per_prompt >= GOAL_SECONDS_PER_DECISION * 1e6).sum()),
        "longest_prompt_chars": int(chars.max()),
        "longest_prompt_us": float(per_prompt[int(chars.argmax())]),
        "bins": bins,
    }


# --------------------------------------------------------------------------- checks


class Boosters:
    """LightGBM boosters of every tree model the router evaluates, in the stacked evaluator's output order."""

    def __init__(self, router: ReferenceRouter, **params: Any) -> None:
        self.boosters = [lightgbm.Booster(model_str=text) for text in router.scorer.strings]
        self.params = params

    def raw(self, X: np.ndarray) -> np.ndarray:
        """Raw outputs side by side, ``(rows, [3 +] 2·models)``."""
        return np.column_stack(
            [np.asarray(b.predict(X, raw_score=True, **self.params)).reshape(len(X), -1) for b in self.boosters]
        )


def check_equivalence(
    router: ReferenceRouter, boosters: Boosters, prompts: Sequence[str], vectors: Sequence[np.ndarray]
) -> dict[str, Any]:
    """numpy evaluator vs LightGBM on every vector (one by one and batched); same decisions three ways."""
    X = np.vstack(vectors)
    reference = boosters.raw(X)
    ensemble = router.scorer.ensemble
    one_by_one = np.vstack([ensemble.raw_scores_one(x) for x in vectors])
    batched = ensemble.raw_scores(X)
    single_lgb = np.vstack([boosters.raw(x[None, :]) for x in vectors])
    diff_one = float(np.abs(one_by_one - reference).max())
    diff_batch = float(np.abs(batched - reference).max())
    diff_lgb_single = float(np.abs(single_lgb - reference).max())
    assert diff_one <= PROBABILITY_TOLERANCE, f"numpy evaluator (one row) differs from LightGBM by {diff_one:.3g}"
    assert diff_batch <= PROBABILITY_TOLERANCE, f"numpy evaluator (batch) differs from LightGBM by {diff_batch:.3g}"

    from_prompt = [router.route(p) for p in prompts]
    from_vector = [router.route(x) for x in vectors]
    batch = router.route_many(prompts).model_names()
    mismatched_vector = sum(a.model != b.model or a.bucket != b.bucket for a, b in zip(from_prompt, from_vector))
    mismatched_batch = sum(a.model != b for a, b in zip(from_prompt, batch))
    assert mismatched_vector == 0, f"{mismatched_vector} prompts route differently from their feature vectors"
    assert mismatched_batch == 0, f"{mismatched_batch} prompts route differently in route_many"
    features_equal = all(np.array_equal(np.asarray(d.features), x) for d, x in zip(from_prompt, vectors))
    assert features_equal, "route(prompt) logged other features than extract()"
    models: dict[str, int] = {}
    for d in from_prompt:
        models[d.model] = models.get(d.model, 0) + 1
    buckets: dict[str, int] = {}
    for d in from_prompt:
        buckets[d.bucket] = buckets.get(d.bucket, 0) + 1
    result = {
        "vectors": len(vectors),
        "outputs": int(reference.shape[1]),
        "tolerance": PROBABILITY_TOLERANCE,
        "max_abs_diff_numpy_one_vs_lightgbm": diff_one,
        "max_abs_diff_numpy_batch_vs_lightgbm": diff_batch,
        "max_abs_diff_lightgbm_single_vs_batch": diff_lgb_single,
        "route_prompt_vs_vector_mismatches": mismatched_vector,
        "route_prompt_vs_route_many_mismatches": mismatched_batch,
        "decision_models": dict(sorted(models.items(), key=lambda kv: -kv[1])),
        "decision_buckets": buckets,
        "passed": True,
    }
    log.info(
        "check: %d vectors × %d outputs, max |numpy - lightgbm| = %.3g (one row) / %.3g (batch); decisions agree",
        len(vectors),
        reference.shape[1],
        diff_one,
        diff_batch,
    )
    return result


# --------------------------------------------------------------------------- profile


def profile_route(router: ReferenceRouter, prompts: Sequence[str], n: int) -> dict[str, Any]:
    """``route(prompt)`` under cProfile; the top lists and the share of the main steps."""
    work = list(itertools.islice(itertools.cycle(prompts), n))
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for prompt in work:
        router.route(prompt)
    profiler.disable()
    wall = time.perf_counter() - started
    stats = pstats.Stats(profiler)
    total = sum(row[2] for row in stats.stats.values())  # type: ignore[attr-defined]
    by_name = {(Path(func[0]).name, func[2]): (func, row) for func, row in stats.stats.items()}  # type: ignore[attr-defined]

    def cum(file: str, name: str) -> float:
        return by_name[(file, name)][1][3] if (file, name) in by_name else 0.0

    # eligible() runs once inside choose() and once more in _decide(): count the outer call only.
    eligible_outside = cum("policy.py", "eligible")
    if ("policy.py", "eligible") in by_name:
        callers = by_name[("policy.py", "eligible")][1][4]
        eligible_outside -= sum(row[3] for func, row in callers.items() if func[2] == "choose")
    steps = {
        "base_features": cum("features.py", "base_features"),
        "similarities (hashed TF-IDF · centroids)": cum("features.py", "similarities"),
        "tree models (numpy evaluator: triage, q̂, ĉ)": cum("prompt_models.py", "predict_one"),
        "policy (choose + eligible)": cum("policy.py", "choose") + eligible_outside,
    }
    route_total = cum("reference.py", "route") or total
    steps["rest (Decision, dicts, conversions)"] = max(0.0, route_total - sum(steps.values()))
    return {
        "decisions": n,
        "wall_seconds": wall,
        "per_second_under_profiler": n / wall,
        "profiled_seconds": total,
        "steps": [
            {"step": k, "cumtime": round(v, 4), "share": v / route_total if route_total else 0.0}
            for k, v in steps.items()
        ],
        "top_tottime": top_functions(stats, "tottime", 12),
        "top_cumulative": top_functions(stats, "cumulative", 12),
    }


# --------------------------------------------------------------------------- report


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    return machine.describe(
        numpy=np.__version__,
        lightgbm=lightgbm.__version__,
        git_commit=machine.commit() + (" (router/ modified)" if machine.changed("router") else ""),
        load_average_start=[round(v, 2) for v in os.getloadavg()],
    )


def fmt_us(value: float) -> str:
    return f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"


MEASURE_LABELS = {
    "route_prompt": "(a) `route(prompt)` end to end",
    "route_prompt_cpu": "(a) same, this thread's CPU time (descheduled time left out)",
    "route_vector": "(b) `route(feature_vector)`",
    "lightgbm_predict_one": "(d) LightGBM `Booster.predict(x[None, :])`, every model",
    "lightgbm_predict_one_1thread": "(d) same, `num_threads=1`",
    "numpy_predict_one": "(d) numpy evaluator `scorer.predict_one(x)` (all models)",
    "extract": "(d) feature extraction `extract(prompt)`",
    "base_features": "(d) · `base_features(prompt)`",
    "similarities": "(d) · `similarities(prompt)` (TF-IDF · centroids)",
}


Row = tuple[str, str, str, str, str, str, str]


def latency_row(label: str, s: dict[str, Any]) -> Row:
    """One measure's row: its rate, then mean, p50, p95, p99 and max latency in µs."""
    mean, p50, p95, p99, top = (fmt_us(s[key]) for key in ("mean_us_per_item", "p50_us", "p95_us", "p99_us", "max_us"))
    return (label, f"{s['per_second']:,.0f}", mean, p50, p95, p99, top)


def table_rows(report: dict[str, Any]) -> list[Row]:
    """(measure, decisions/s, mean, p50, p95, p99, max) rows; latencies in µs per call."""
    rows = [latency_row(label, report["measures"][key]) for key, label in MEASURE_LABELS.items()]
    rows += [latency_row(f"(c) `route_many` × {s['items_per_call']} (latency per batch)", s) for s in report["batched"]]
    s = report["lightgbm_batch"]
    rows.append(latency_row(f"(d) LightGBM `predict(X)` × {s['items_per_call']} (latency per batch)", s))
    return rows


HEADER = ("measure", "decisions/s", "mean µs", "p50 µs", "p95 µs", "p99 µs", "max µs")


def print_table(rows: Sequence[tuple[str, ...]]) -> None:
    """A plain fixed-width table on stdout."""
    rows = [HEADER, *rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    print()
    for row in rows:
        print("  ".join(f"{c:<{widths[0]}}" if i == 0 else f"{c:>{widths[i]}}" for i, c in enumerate(row)))
    print()


def profile_markdown(title: str, rows: list[dict[str, Any]]) -> list[str]:
    lines = [f"**{title}**", "", "| function | ncalls | tottime s | cumtime s |", "|---|---:|---:|---:|"]
    lines += [f"| `{r['function']}` | {r['ncalls']:,} | {r['tottime']:.3f} | {r['cumtime']:.3f} |" for r in rows]
    return lines + [""]


#: A 1-minute load average at the start at or above this means other jobs were running.
BUSY_LOAD = 0.5


def machine_sharing(machine: dict[str, Any]) -> str:
    """Whether the CPUs were shared, read from the load average when the run started."""
    if machine["load_average_start"][0] >= BUSY_LOAD:
        return "shared with other jobs"
    return "idle when the run started (the end figure includes this benchmark)"


def interpret(report: dict[str, Any]) -> str:
    """One paragraph derived from the numbers, so a re-run rewrites it consistently.

    Components are compared by their medians: on a shared 2-CPU machine the means and tails
    carry other processes' bursts (and LightGBM's OpenMP threads suffer most from them).
    """
    m = report["measures"]
    a, b = m["route_prompt"], m["route_vector"]
    lgb_one, lgb_1t, np_one = m["lightgbm_predict_one"], m["lightgbm_predict_one_1thread"], m["numpy_predict_one"]
    ext = m["extract"]
    big = max(report["batched"], key=lambda s: s["items_per_call"])
    goal = report["goal"]
    policy = b["p50_us"] - np_one["p50_us"]
    text = (
        f"`route(prompt)` makes {a['per_second']:,.0f} decisions/s on one core: median {a['p50_us']:.0f} µs, mean "
        f"{a['mean_us_per_item']:.0f} µs, p99 {a['p99_us']:,.0f} µs, max {a['max_us']:,.0f} µs. The < 1 ms goal is "
        f"{'met' if goal['p50_met'] else 'not met'} for the median and {'met' if goal['mean_met'] else 'not met'} "
        f"for the mean, and {'met' if goal['met'] else 'not met'} at the p99. "
        f"Per median call, feature extraction takes {ext['p50_us']:.0f} µs (`base_features` "
        f"{m['base_features']['p50_us']:.0f} µs and the hashed TF-IDF similarities "
        f"{m['similarities']['p50_us']:.0f} µs), the numpy evaluator of all {report['artifact']['trees']} trees "
        "(one quality and one cost model per "
        f"LLM{', and the triage' if report['artifact']['triage_evaluated'] else ''}) "
        f"{np_one['p50_us']:.0f} µs and the policy plus building "
        f"the `Decision` about {policy:.0f} µs. "
    )
    bl = report.get("route_prompt_by_length")
    if bl:
        text += (
            f"Latency grows with the prompt: about {bl['fit_us']['intercept']:.0f} µs plus "
            f"{bl['fit_us']['per_1000_chars']:.0f} µs per 1,000 characters (the regular expressions, character counts "
            f"and token hashing are linear in the text; the GBDT and the policy are not), so the p99 is the long "
            f"prompts: the longest ({bl['longest_prompt_chars']:,} characters) takes {bl['longest_prompt_us']:,.0f} µs "
            f"and {bl['prompts_over_1ms']} of {report['prompts']} prompts take 1 ms or more (median of their calls). "
        )
    text += (
        f"With the features already computed, `route(feature_vector)` makes {b['per_second']:,.0f} decisions/s "
        f"(median {b['p50_us']:.0f} µs). "
        f"The naive baseline, LightGBM's `Booster.predict(x[None, :])` of each of the {report['artifact']['parts']} "
        f"models per call, has a median of {lgb_one['p50_us']:.0f} µs ({lgb_1t['p50_us']:.0f} µs with "
        f"`num_threads=1`) against the numpy evaluator's {np_one['p50_us']:.0f} µs for the same trees: the evaluator "
        f"walks every tree at once, {report['artifact']['max_depth']} levels of a handful of numpy calls on complete "
        "trees, where LightGBM pays a Python call per model. Tails (p99): LightGBM "
        f"{lgb_one['p99_us']:,.0f} µs with its default OpenMP threads, {lgb_1t['p99_us']:,.0f} µs with one thread, "
        f"the numpy evaluator {np_one['p99_us']:,.0f} µs. Its raw outputs match LightGBM's within "
        f"{report['check']['max_abs_diff_numpy_one_vs_lightgbm']:.1e}. "
        f"Batching amortizes the GBDT and the policy: `route_many` over {big['items_per_call']} prompts makes "
        f"{big['per_second']:,.0f} decisions/s ({big['mean_us_per_item']:.0f} µs each, nearly all of it feature "
        "extraction, which stays per prompt). "
        f"Measured on {report['machine']['cpu_count']} CPUs, {machine_sharing(report['machine'])} "
        "(1-minute load average "
        f"{report['machine']['load_average_start'][0]:.2f} at the start, "
        f"{report['machine']['load_average_end'][0]:.2f} "
        f"at the end), with the test split's {report['prompts']} prompts cycled (mean "
        f"{report['mean_prompt_chars']:.0f} characters); the token-hash cache is warm after the first pass, as in a "
        "long-running router."
    )
    return text


def write_markdown(report: dict[str, Any], rows: Sequence[tuple[str, ...]], path: Path) -> None:
    """``router.md``: the table, the check, the profile, and the interpretation paragraph."""
    mach, art, chk, prof = report["machine"], report["artifact"], report["check"], report["profile"]
    lines = [
        "# Reference router benchmark",
        "",
        f"{mach['date']} · {mach['cpu_count']} CPUs ({mach['cpu_model']}) · Python {mach['python']} · "
        f"numpy {mach['numpy']} · lightgbm {mach['lightgbm']} · commit {mach['git_commit']} · load average "
        f"{mach['load_average_start'][0]:.2f} → {mach['load_average_end'][0]:.2f} (1 min; {machine_sharing(mach)})",
        "",
        f"Command: `{report['command']}`",
        "",
        (
            f"Artifact bootstrapped in this run from `{report['dataset']}`"
            if "loaded_from" not in report["bootstrap"]
            else f"Artifact `{art['version']}` loaded from `{report['bootstrap']['loaded_from']}` "
            "(trained by `bifrost-opt "
            f"train` on `{report['dataset']}`, before this run)"
        )
        + f" ({report['bootstrap']['trials']} trials, seed {report['bootstrap']['seed']}"
        + (
            f", {report['bootstrap']['seconds']:.1f} s"
            if report["bootstrap"]["seconds"] == report["bootstrap"]["seconds"]
            else ""
        )
        + f"): {art['features']} features "
        f"({art['clusters']} clusters), {art['models']} models; {art['trees']} trees in {art['parts']} models stacked "
        f"into one walk (quality {art['quality_trees']}, cost {art['cost_trees']}"
        + (
            f", triage {art['triage_trees']}"
            if art["triage_evaluated"]
            else f"; the escalation gate is off, so the triage's {art['triage_trees']} trees are not evaluated"
        )
        + f"; {art['nodes']:,} split nodes, depth ≤ {art['max_depth']}); artifact {art['bytes']:,} bytes. "
        f"Workload: the {report['prompts']} test-split prompts, cycled to {report['decisions']:,} decisions per "
        "measure after one warm-up pass; every call timed on its own.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|---|" + "---:|" * (len(HEADER) - 1),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    g = report["goal"]
    lines += [
        "",
        f"Goal < 1 ms per decision, `route(prompt)`: p50 {g['p50_us']:,.0f} µs "
        f"({'met' if g['p50_met'] else 'NOT met'}), mean {g['mean_us']:,.0f} µs "
        f"({'met' if g['mean_met'] else 'NOT met'}), "
        f"p99 {g['p99_us']:,.0f} µs (**{'met' if g['met'] else 'NOT met'}**) in wall time on this machine; "
        f"in CPU time (what a dedicated core would see) p99 {g['cpu_p99_us']:,.0f} µs "
        f"(**{'met' if g['cpu_met'] else 'NOT met'}**). When the wall p99 is far above the CPU p99, the difference is "
        "time this process was descheduled: `route(feature_vector)`, which does no text work, has the same tail.",
        "",
        "## Check: numpy evaluator = LightGBM (every model)",
        "",
        f"On all {chk['vectors']} test feature vectors × {chk['outputs']} raw outputs: max |numpy − LightGBM| = "
        f"{chk['max_abs_diff_numpy_one_vs_lightgbm']:.2e} one row at a time, "
        f"{chk['max_abs_diff_numpy_batch_vs_lightgbm']:.2e} batched (tolerance {chk['tolerance']:.0e}; asserted). "
        f"`route(prompt)`, `route(feature_vector)` and `route_many` choose the same model for every prompt "
        f"(mismatches: {chk['route_prompt_vs_vector_mismatches']}, {chk['route_prompt_vs_route_many_mismatches']}). "
        "Decisions on the test split: " + ", ".join(f"{k} {v}" for k, v in chk["decision_models"].items()) + ".",
        "",
        f"## Profile: `route(prompt)` under cProfile ({prof['decisions']:,} decisions)",
        "",
        f"{prof['per_second_under_profiler']:,.0f} decisions/s under the profiler (its overhead inflates the many "
        "small Python calls, so shares are indicative).",
        "",
        "| step | cumtime s | share of `route` |",
        "|---|---:|---:|",
    ]
    lines += [f"| {s['step']} | {s['cumtime']:.3f} | {s['share']:.0%} |" for s in prof["steps"]]
    lines += [""]
    lines += profile_markdown("Top 12 by own time (tottime)", prof["top_tottime"])
    lines += profile_markdown("Top 12 by cumulative time", prof["top_cumulative"])
    bl = report.get("route_prompt_by_length")
    if bl:
        lines += [
            "## `route(prompt)` latency by prompt length",
            "",
            f"Median of each prompt's {bl['cycles_per_prompt']} timed calls, then grouped by length. Line fit: "
            f"{bl['fit_us']['intercept']:.0f} µs + {bl['fit_us']['per_1000_chars']:.0f} µs per 1,000 characters. "
            f"Longest prompt ({bl['longest_prompt_chars']:,} chars): "
            f"{bl['longest_prompt_us']:,.0f} µs; prompts at or over "
            f"1 ms: {bl['prompts_over_1ms']} of {report['prompts']}; p99 of the per-prompt medians "
            f"{bl['prompt_median_p99_us']:,.0f} µs.",
            "",
            "| prompt chars | prompts | mean chars | median µs | max µs |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {b['chars']} | {b['prompts']} | {b['mean_chars']:,.0f} | {b['median_us']:,.0f} | {b['max_us']:,.0f} |"
            for b in bl["bins"]
        ]
        lines += [""]
    lp = report.get("long_prompts")
    if lp:
        t = lp["longest_train"]
        lines += [
            "## Long prompts",
            "",
            f"Text features read the first {lp['max_chars']:,} characters (`TextSpec.max_chars`, recorded in the "
            "artifact; lengths count the whole prompt), so a decision's time is bounded whatever the length.",
            "",
            "| prompts | calls | wall p50 µs | wall p99 µs | CPU p50 µs | CPU p99 µs | CPU max µs |",
            "|---|---:|---:|---:|---:|---:|---:|",
            "| the 100 longest train prompts "
            f"({lp['longest_train_chars'][0]:,}–{lp['longest_train_chars'][1]:,} chars) | "
            f"{t['calls']:,} | {t['p50_us']:,.0f} | {t['p99_us']:,.0f} | {lp['longest_train_cpu']['p50_us']:,.0f} | "
            f"{lp['longest_train_cpu']['p99_us']:,.0f} | {lp['longest_train_cpu']['max_us']:,.0f} |",
        ]
        lines += [
            f"| {name} | {m['calls']:,} | {m['p50_us']:,.0f} | {m['p99_us']:,.0f} | {c['p50_us']:,.0f} | "
            f"{c['p99_us']:,.0f} | {c['max_us']:,.0f} |"
            for (name, m), c in zip(lp["extremes"].items(), lp["extremes_cpu"].values())
        ]
        lines += [""]
    if report.get("changes"):
        lines += ["## Changes made with this benchmark", "", report["changes"].strip(), ""]
    if report.get("candidates"):
        lines += ["## Not changed: further speedups, measured on prototypes", "", report["candidates"].strip(), ""]
    lines += ["## Interpretation", "", report["interpretation"].strip(), ""]
    path.write_text("\n".join(lines))


# --------------------------------------------------------------------------- main

CHANGES = """
Bounded text (issue 10's outside test: p99 1.03 ms on the 100 longest train prompts, 5.4 ms for
10,000 non-ASCII characters): text features now read only the first `TextSpec.max_chars`
characters (2,000 by default, recorded in the artifact; lengths still count the whole prompt;
older artifacts keep their 20,000). Exact speed-ups, asserted equal on every dataset prompt and
random text: character classes of non-ASCII text counted once per distinct character; math
operators as operator characters (`bytes.translate`) plus the digit-minus-digit pattern;
the LaTeX, function-call and "how many" scans skipped when their first character is absent;
token hashes looked up with one `map` over the tokens.

Non-ASCII text (2026-12-02; 10,000 non-ASCII characters were the one long-prompt row above
1 ms): its keywords are counted from one tokenization of the lower-cased text, as ASCII text's
are (was four regular-expression scans), and its character classes from numpy's sort of the
code points on text of 200 characters or more (was `Counter`); both asserted equal to the
scans and per-character definitions on the dataset and on random non-ASCII text. Same machine,
before and after, best of 7 × 100 calls: `base_features` of that prompt 511 → 327 µs.

Per-prompt routing (artifact format 2): every request now evaluates the triage model **and**
one quality and one cost model per LLM (19 LightGBM models on the bundled set, where the
previous artifact had only the triage's 165 trees). To keep that within the budget:

* `router/gbdt.py`: `TreeEnsemble.concat` stacks all models into one ensemble (outputs side by
  side), so a request is one walk; trees no deeper than 8 levels (the trainer now grows them
  with `max_depth` 6) are also stored as *complete* binary trees (a leaf above the bottom is
  repeated below itself), so the one-row walk is a fixed number of levels with five numpy
  operations each and no bookkeeping of which trees still descend. Exact: raw outputs equal
  LightGBM's to 0.0 on the check below (NaN rows and missing-value splits keep the general walk,
  tested in `tests/router/test_gbdt.py`). Prototype on 705 trees: 62 → 37 µs median per row.
* `router/features.py`: the four keyword counts of ASCII text (code, math, reasoning and
  instruction words) come from one `\\w+` tokenization and a word → category table instead of
  four regex alternation scans (a single-word `\\b(?:…)\\b` alternative matches exactly a maximal
  `\\w+` run; "how many/much" keeps a small regex). Asserted equal to the scans on all 6,108
  dataset prompts and 20,000 random strings. On the five longest test prompts `base_features`
  went 431 → 288 µs (median).
* `router/text.py`: the bigram hashes and the modulo in uint64 numpy (identical buckets and
  IDF on every dataset prompt).
* `router/prompt_models.py`: when the artifact's escalation gate is off (τ_hard = 0, as the
  search chose on the bundled set: every prompt may use every model), the triage cannot change
  a decision and its trees are not evaluated (about half the walk on this artifact).
"""

CANDIDATES = """
* **Regular expressions** (`base_features`): the remaining scans (code symbols, function calls,
  numbers, math operators, choice markers) are most of its time on long prompts.
* **A compiled evaluator** (e.g. the trees as generated C, or LightGBM's own predictor in one
  call for all models through its C API) would cut the tree walk further but brings back a
  native dependency the router avoids.
"""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=20_000, help="decisions per measure (default 20,000)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 trials, 2,000 decisions")
    parser.add_argument("--trials", type=int, default=200, help="Optuna trials of the bootstrap (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--batch-sizes", default="32,500", help="route_many batch sizes (default 32,500)")
    parser.add_argument("--dataset", type=Path, default=DATASET, help="full-information dataset (read-only)")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="output folder (default bench/results)")
    parser.add_argument(
        "--artifact",
        type=Path,
        help="measure this stored artifact (version folder or artifact.json) instead of bootstrapping one in the run",
    )
    parser.add_argument("--key", type=Path, help="with --artifact: its verification key file")
    args = parser.parse_args(argv)
    if args.quick:
        args.trials = min(args.trials, 20)
        args.decisions = min(args.decisions, 2_000)
    try:
        args.batch_sizes = sorted({int(b) for b in args.batch_sizes.split(",") if b.strip()})
    except ValueError:
        parser.error("--batch-sizes takes comma-separated integers")
    if args.decisions <= 0 or args.trials <= 0 or not args.batch_sizes or min(args.batch_sizes) <= 0:
        parser.error("--decisions, --trials and --batch-sizes must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    report: dict[str, Any] = {
        "command": " ".join(
            [".venv/bin/python", "bench/router_bench.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "dataset": str(args.dataset),
        "machine": machine_info(),
    }

    if args.artifact is not None:  # an artifact trained elsewhere (e.g. nice'd, so this process only measures)
        if args.key is None:
            raise SystemExit("--artifact needs --key (the verification key)")
        t0 = time.perf_counter()
        router = ReferenceRouter.load(args.artifact, args.key)
        build_seconds = time.perf_counter() - t0
        artifact = router.artifact
        training = artifact.reports.training
        gate = training.get("search", {}).get("gate", "?")
        report["bootstrap"] = {
            "trials": training.get("search", {}).get("trials"),
            "seed": training.get("config", {}).get("seed"),
            "seconds": training.get("timings_s", {}).get("total", float("nan")),
            "timings": training.get("timings_s", {}),
            "loaded_from": str(args.artifact),
        }
    else:
        log.info("bootstrap: %s, %d trials, seed %d", args.dataset, args.trials, args.seed)
        t0 = time.perf_counter()
        artifact, boot = bootstrap_artifact(
            args.dataset, trials=args.trials, seed=args.seed, signing_key=Ed25519PrivateKey.generate()
        )
        boot_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        router = ReferenceRouter(artifact)
        build_seconds = time.perf_counter() - t0
        gate = boot.search.gate
        log.info(
            "bootstrap: artifact %s in %.1f s; router built in %.1f ms",
            artifact.version,
            boot_seconds,
            build_seconds * 1e3,
        )
        report["bootstrap"] = {
            "trials": args.trials,
            "seed": args.seed,
            "seconds": boot_seconds,
            "timings": boot.timings,
            "cv_accuracy": boot.cv.accuracy,
            "cv_logloss": boot.cv.logloss,
            "outcomes_logloss": boot.outcomes.mean_logloss,
        }
    boosters = Boosters(router)
    e = router.scorer.ensemble
    n_models = len(router.tables.models)
    per_class = np.bincount(e.tree_class, minlength=e.num_class)
    if not router.scorer.gate:  # the triage is not evaluated: count its trees anyway, for the record
        per_class = np.concatenate([np.zeros(3, dtype=np.int64), per_class])
    triage_trees = int(len(lightgbm.Booster(model_str=artifact.gbdt.model).dump_model()["tree_info"]))
    report["artifact"] = {
        "version": artifact.version,
        "bytes": len(encode(artifact)),
        "features": e.num_features,
        "clusters": router.extractor.schema.clusters,
        "trees": int(e.roots.size),
        "parts": len(router.scorer.strings),
        "triage_trees": triage_trees,
        "triage_evaluated": router.scorer.gate,
        "quality_trees": int(per_class[3 : 3 + n_models].sum()),
        "cost_trees": int(per_class[3 + n_models :].sum()),
        "nodes": int(e.feature.size),
        "max_depth": e.depth,
        "complete_tree_walk": e._complete is not None,  # noqa: SLF001 - reported
        "models": n_models,
        "gate": gate,
        "router_build_ms": build_seconds * 1e3,
    }

    prompts = list(load_dataset(args.dataset).split("test").prompts)
    if not prompts:
        raise SystemExit(f"{args.dataset} has no test-split prompts")
    vectors = [np.asarray(router.extractor.extract(p)[0], dtype=np.float64) for p in prompts]
    n = args.decisions
    report.update(
        prompts=len(prompts),
        decisions=n,
        mean_prompt_chars=float(np.mean([len(p) for p in prompts])),
        lightgbm_num_threads="default (OpenMP, all cores)",
    )

    report["check"] = check_equivalence(router, boosters, prompts, vectors)

    log.info("measure: %d decisions per measure", n)
    measures: dict[str, Any] = {}
    gc.collect()
    kept: list[np.ndarray] = []
    measures["route_prompt"] = timed_calls("route(prompt)", router.route, prompts, n, keep=kept)
    report["route_prompt_by_length"] = by_prompt_length(prompts, kept[0])
    measures["route_vector"] = timed_calls("route(feature_vector)", router.route, vectors, n)
    measures["lightgbm_predict_one"] = timed_calls(
        "lightgbm predict(x[None, :]) × models", lambda x: boosters.raw(x[None, :]), vectors, n
    )
    boosters_1t = Boosters(router, num_threads=1)  # their own boosters: predict params may stick
    measures["lightgbm_predict_one_1thread"] = timed_calls(
        "lightgbm predict(.., num_threads=1) × models", lambda x: boosters_1t.raw(x[None, :]), vectors, n
    )
    measures["numpy_predict_one"] = timed_calls("numpy scorer.predict_one(x)", router.scorer.predict_one, vectors, n)
    measures["extract"] = timed_calls("extract(prompt)", router.extractor.extract, prompts, n)
    max_chars = router.extractor.schema.text.max_chars
    measures["base_features"] = timed_calls(
        "base_features(prompt)", lambda p: base_features(p, max_chars=max_chars), prompts, n
    )
    measures["similarities"] = timed_calls("similarities(prompt)", router.extractor.similarities, prompts, n)
    report["measures"] = measures

    batched = []
    for size in args.batch_sizes:
        cycled = list(itertools.islice(itertools.cycle(prompts), max(n, size)))
        batches = [cycled[lo : lo + size] for lo in range(0, len(cycled) - size + 1, size)]
        batched.append(
            timed_calls(f"route_many × {size}", router.route_many, batches, len(batches), items_per_call=size)
        )
    report["batched"] = batched
    X = np.vstack(vectors)
    calls = max(1, n // len(X))
    report["lightgbm_batch"] = timed_calls(
        f"lightgbm predict(X) × {len(X)}", boosters.raw, [X], calls, items_per_call=len(X)
    )

    # Long prompts: the 100 longest train prompts (the test split has none this long) and made-up
    # extremes; features read only the first max_chars characters, so the time is bounded.
    train = sorted(load_dataset(args.dataset).split("train").prompts, key=len)[-100:]
    extremes = {
        "10,000 non-ASCII chars": "Ω≈ç√∫" * 2000,
        "20,000 × 'a'": "a" * 20_000,
        "200,000 × 'x'": "x" * 200_000,
        "2,000 words": "word " * 2000,
        "code, 500 lines": "def f(x):\n    return (x)\n" * 500,
    }
    long_n = max(1000, n // 10)
    cpu = time.thread_time_ns
    report["long_prompts"] = {
        "max_chars": max_chars,
        "longest_train": timed_calls("route(prompt), 100 longest train prompts", router.route, train, long_n),
        "longest_train_cpu": timed_calls(
            "route(prompt), 100 longest, CPU time", router.route, train, long_n, clock=cpu
        ),
        "longest_train_chars": [len(train[0]), len(train[-1])],
        "extremes": {
            name: timed_calls(f"route(prompt), {name}", router.route, [text], 200) for name, text in extremes.items()
        },
        "extremes_cpu": {
            name: timed_calls(f"route(prompt), {name}, CPU time", router.route, [text], 200, clock=cpu)
            for name, text in extremes.items()
        },
    }
    measures["route_prompt_cpu"] = timed_calls("route(prompt), CPU time", router.route, prompts, n, clock=cpu)

    a = measures["route_prompt"]
    report["goal"] = {
        "seconds_per_decision": GOAL_SECONDS_PER_DECISION,
        "measure": "route(prompt) p99",
        "p99_us": a["p99_us"],
        "mean_us": a["mean_us_per_item"],
        "p50_us": a["p50_us"],
        "met": a["p99_us"] < GOAL_SECONDS_PER_DECISION * 1e6,
        "mean_met": a["mean_us_per_item"] < GOAL_SECONDS_PER_DECISION * 1e6,
        "p50_met": a["p50_us"] < GOAL_SECONDS_PER_DECISION * 1e6,
        "p99_headroom": GOAL_SECONDS_PER_DECISION * 1e6 / a["p99_us"],
        "cpu_p99_us": measures["route_prompt_cpu"]["p99_us"],
        "cpu_met": measures["route_prompt_cpu"]["p99_us"] < GOAL_SECONDS_PER_DECISION * 1e6,
    }

    profiled = min(n, PROFILE_DECISIONS)
    log.info("profile: route(prompt) under cProfile, %d decisions", profiled)
    report["profile"] = profile_route(router, prompts, profiled)
    report["changes"] = CHANGES
    report["candidates"] = CANDIDATES
    report["machine"]["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    report["interpretation"] = interpret(report)

    rows = table_rows(report)
    print_table(rows)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "router.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    write_markdown(report, rows, args.results / "router.md")
    log.info("wrote %s and %s", args.results / "router.json", args.results / "router.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
