"""Is an arm's data something the gates can reason about at all?

The gates read sums and a latency sketch that arrive from partitions, the API or a store.
Figures no router can produce — NaN or infinite sums, negative counts, more errors or
judgements than requests, sketch bins that do not add up to the sketch's count, bucket
indices for absurd latencies or costs — are not evidence for or against the
canary: the gates say the data are invalid (``insufficient``, with the reason) rather than
pass, fail or raise a math error on them.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

from bifrost.streams.aggregates.sketch import MIN_INDEXABLE, QuantileSketch
from bifrost.streams.aggregates.stats import WindowStats
from bifrost.streams.rollout.gates.dispersion import METRIC_ORDER, ArmFigures, StageWindow, WindowSums

#: Latency beyond which a bucket index is corrupt rather than slow (far above anything
#: real or simulated; indices within it keep every moment and quantile finite).
MAX_LATENCY_MS = 1e30
#: Cost per request beyond which a cost-sketch bucket is corrupt rather than dear.
MAX_COST_USD = 1e30
#: Relative accuracies a cost sketch may have (the worker's is 1%): finer ones would make
#: the score test's bucket grid absurdly large, coarser ones carry no shape.
COST_SKETCH_ACCURACY = (1e-3, 0.2)
#: Largest count taken as real: every integer up to it is exact in a float, so the gates'
#: float arithmetic on counts cannot round a difference of counts below zero (2^53 requests
#: is ~285 years at a million requests a second).
MAX_COUNT = 2**53
#: Largest |mean log cost| taken as real (e^±700 USD: beyond any price, still finite in exp).
MAX_MEAN_LOG_COST = 700.0
#: Relative slack for ``Σ cost² ≥ (Σ cost)² / n`` (Cauchy–Schwarz), against rounding.
_SLACK = 1e-9


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _finite_nonnegative(value: object) -> bool:
    return _number(value) and value >= 0  # type: ignore[operator]


def count_problem(name: str, value: object) -> str | None:
    """Why ``value`` is not a count (an integer in ``[0, MAX_COUNT]``), or ``None``."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        return f"{name} is {value!r} (must be an integer)"
    value = int(value)
    if value < 0:
        return f"negative {name} ({value})"
    if value > MAX_COUNT:
        return f"{name} {value:,} above {MAX_COUNT:,} (no router counts that many)"
    return None


def sketch_problem(
    sketch: QuantileSketch,
    count: int,
    *,
    quantity: str = "latency",
    unit: str = " ms",
    largest: float = MAX_LATENCY_MS,
    smallest: float = 0.0,
) -> str | None:
    """Why a sketch of ``quantity`` for an arm with ``count`` values at most is invalid, or ``None``."""
    if not (_number(sketch.relative_accuracy) and 0 < sketch.relative_accuracy < 1):
        return f"relative accuracy {sketch.relative_accuracy!r} outside (0, 1)"
    reason = count_problem("sketch count", sketch.count) or count_problem("sketch zero count", sketch.zero_count)
    if reason:
        return reason
    if sketch.count > count:
        return f"{sketch.count:,} {'latencies' if quantity == 'latency' else quantity + 's'} for {count:,} requests"
    top = sketch.key(largest)
    bottom = sketch.key(smallest) if smallest > 0 else -top
    total = sketch.zero_count
    for k, c in sketch.bins.items():
        # Python ints only: the gates sum c·k², which wraps around silently in numpy's
        # fixed-width integers (what a decoded sketch never holds).
        if type(k) is not int:
            return f"{quantity} bin index {k!r} (must be an integer)"
        if type(c) is not int or c < 0:
            return f"{quantity} bin count {c!r} at index {k} (must be an integer ≥ 0)"
        if not bottom <= k <= top:
            return f"{quantity} bin index {k} outside [{bottom}, {top}] (beyond {smallest:g}–{largest:g}{unit})"
        total += c
    if total != sketch.count:
        return f"{quantity} bins hold {total:,} values, the sketch says {sketch.count:,}"
    return _extremes_problem(sketch, quantity, unit)


def _extremes_problem(sketch: QuantileSketch, quantity: str = "latency", unit: str = " ms") -> str | None:
    """``min``/``max`` must lie where the bins say: quantiles are clamped to them."""
    if not sketch.bins:
        return None
    if not (_finite_nonnegative(sketch.min) and _finite_nonnegative(sketch.max) and sketch.min <= sketch.max):
        return f"{quantity} min/max ({sketch.min!r}, {sketch.max!r}) must be finite, ≥ 0 and ordered"
    gamma = (1 + sketch.relative_accuracy) / (1 - sketch.relative_accuracy)
    top, bottom = max(sketch.bins), min(sketch.bins)
    # Bin k holds values in (γ^(k−1), γ^k]; the lowest bins may have been merged upwards.
    if sketch.max < gamma ** (top - 1) * (1 - _SLACK) or sketch.max > gamma**top * (1 + _SLACK):
        return f"{quantity} max {sketch.max:.6g}{unit} outside its bin {top} (the largest value recorded)"
    if sketch.min > gamma**bottom * (1 + _SLACK):
        return f"{quantity} min {sketch.min:.6g}{unit} above its bin {bottom} (the smallest value recorded)"
    return None


def cost_sketch_problem(stats: WindowStats) -> str | None:
    """Why an arm's cost sketch is invalid, or ``None``.

    It holds the positive costs, so never more values than ``cost_paid``; fewer (none at
    all, or windows from a worker that did not keep it) only leaves the cost gate's score
    test out.
    """
    sketch = stats.cost_sketch
    if sketch is None:
        return None
    if not isinstance(sketch, QuantileSketch):
        return f"cost_sketch is {type(sketch).__name__} (must be a QuantileSketch or None)"
    if not (
        _number(sketch.relative_accuracy)
        and COST_SKETCH_ACCURACY[0] <= sketch.relative_accuracy <= COST_SKETCH_ACCURACY[1]
    ):
        return (
            f"cost sketch relative accuracy {sketch.relative_accuracy!r} outside "
            f"[{COST_SKETCH_ACCURACY[0]:g}, {COST_SKETCH_ACCURACY[1]:g}]"
        )
    reason = count_problem("cost_paid", stats.cost_paid)
    if reason:
        return reason
    return sketch_problem(
        sketch, stats.cost_paid, quantity="cost", unit=" USD", largest=MAX_COST_USD, smallest=MIN_INDEXABLE
    )


def stats_problem(stats: WindowStats) -> str | None:
    """Why one arm's cumulative statistics are invalid, or ``None``."""
    n = stats.count
    for name in ("count", "errors", "wins", "losses", "ties", "quality_count", "cost_paid"):
        reason = count_problem(name, getattr(stats, name))
        if reason:
            return reason
    if stats.errors > n:
        return f"{stats.errors:,} errors for {n:,} requests"
    judged = stats.wins + stats.losses + stats.ties
    if judged > n:
        return f"{judged:,} judged (wins + losses + ties) for {n:,} requests"
    for name in ("cost_usd", "cost_sq"):
        if not _finite_nonnegative(getattr(stats, name)):
            return f"{name} is {getattr(stats, name)!r} (must be finite and ≥ 0)"
    # Σ cost² ≥ (Σ cost)²/n, compared as quotients: the squares may overflow a float.
    if n > 0 and stats.cost_usd > 0 and stats.cost_sq / stats.cost_usd < stats.cost_usd / n * (1 - _SLACK):
        return f"cost_sq {stats.cost_sq:.4g} below cost² / count for cost {stats.cost_usd:.4g}: inconsistent sums"
    if not _number(stats.quality_sum):
        return f"quality_sum is {stats.quality_sum!r}"
    return sketch_problem(stats.latency_ms, n) or _log_cost_problem(stats) or cost_sketch_problem(stats)


def _log_cost_problem(stats: WindowStats) -> str | None:
    paid, total, squares = stats.cost_paid, stats.cost_log, stats.cost_log_sq
    if not 0 <= paid <= stats.count:
        return f"{paid:,} requests with a cost for {stats.count:,} requests"
    if not (_number(total) and _finite_nonnegative(squares)):
        return f"log-cost sums ({total!r}, {squares!r}) must be finite"
    if paid == 0:
        return None if total == 0 and squares == 0 else "log-cost sums without any request with a cost"
    mean = total / paid
    if abs(mean) > MAX_MEAN_LOG_COST:
        return f"mean log cost {mean:.4g} (beyond any price)"
    if squares / paid < mean * mean * (1 - _SLACK) - 1e-12:
        return "cost_log_sq below cost_log² / cost_paid: inconsistent log-cost sums"
    # The mean cost of the costed requests is at least their geometric mean (AM ≥ GM).
    if stats.cost_usd / paid < math.exp(mean) * (1 - 1e-6):
        return (
            f"mean cost {stats.cost_usd / paid:.4g} below the geometric mean {math.exp(mean):.4g} "
            "the log-cost sums imply: inconsistent cost sums"
        )
    return None


def figures_problem(figures: ArmFigures) -> str | None:
    """Why one arm's figures in one window are invalid, or ``None``."""
    for name in ("count", "errors", "judged", "latency_n", "cost_paid"):
        reason = count_problem(name, getattr(figures, name))
        if reason:
            return reason
    if max(figures.errors, figures.judged, figures.latency_n, figures.cost_paid) > figures.count:
        return "errors, judgements, latencies or costs exceed the requests"
    for name in ("cost", "cost_sq", "cost_log_sq", "win", "win_sq", "latency_k2"):
        if not _finite_nonnegative(getattr(figures, name)):
            return f"{name} is {getattr(figures, name)!r}"
    if not (_number(figures.latency_k) and _number(figures.cost_log)):
        return "latency_k or cost_log is not finite"
    return None


def sums_problem(sums: WindowSums) -> str | None:
    """Why dispersion sums (the ``history`` before a stage) are invalid, or ``None``."""
    for arm, per_metric in (("canary", sums.canary), ("control", sums.control)):
        for name, acc in zip(METRIC_ORDER, per_metric):
            if not all(_finite_nonnegative(v) for v in (acc.n, acc.q, acc.between)) or not _number(acc.s):
                return f"{arm} {name} sums ({acc.n!r}, {acc.s!r}, {acc.q!r}, {acc.between!r}) must be finite"
            reason = count_problem(f"{arm} {name} windows", acc.windows)
            if reason:
                return reason
    return None


def problem(
    canary: WindowStats,
    control: WindowStats,
    windows: Sequence[StageWindow] = (),
    history: WindowSums | None = None,
    totals: tuple[ArmFigures, ArmFigures] | None = None,
) -> str | None:
    """Why the gates cannot use these data (``"invalid canary data: …"``), or ``None``."""
    for arm, stats in (("canary", canary), ("control", control)):
        reason = stats_problem(stats)
        if reason:
            return f"invalid {arm} data: {reason}"
    sketches = (canary.cost_sketch, control.cost_sketch)
    if sketches[0] is not None and sketches[1] is not None:
        if sketches[0].relative_accuracy != sketches[1].relative_accuracy:
            return (
                f"invalid canary data: its cost sketch's relative accuracy {sketches[0].relative_accuracy:g} "
                f"is not the control's {sketches[1].relative_accuracy:g}"
            )
    for w in windows:
        for arm, figures in (("canary", w.canary), ("control", w.control)):
            reason = figures_problem(figures)
            if reason:
                return f"invalid {arm} data in the window starting at {w.start}: {reason}"
    if history is not None:
        reason = sums_problem(history)
        if reason:
            return f"invalid history before the stage: {reason}"
    for arm, stats, figures in zip(("canary", "control"), (canary, control), totals or ()):
        reason = figures_problem(figures) or totals_mismatch(stats, figures)
        if reason:
            return f"invalid {arm} stage totals: {reason}"
    return None


def totals_mismatch(stats: WindowStats, figures: ArmFigures) -> str | None:
    """Why an arm's stage ``totals`` do not describe the same data as its statistics, or ``None``.

    The totals only spare the gates a pass over the sketch's bins; figures that disagree
    with the statistics they summarize (another stage's, a stale copy) would test one set
    of requests with another's dispersion. Counts must match exactly, sums to rounding.
    """
    judged = stats.wins + stats.losses + stats.ties
    latencies = stats.latency_ms.count - stats.latency_ms.zero_count
    for name, expected, got in (
        ("count", stats.count, figures.count),
        ("errors", stats.errors, figures.errors),
        ("judged", judged, figures.judged),
        ("cost_paid", stats.cost_paid, figures.cost_paid),
        ("latency_n", latencies, figures.latency_n),
    ):
        if expected != got:
            return f"{name} {got!r} where the arm's statistics say {expected!r}"
    for name, expected_sum, got_sum in (
        ("cost", stats.cost_usd, figures.cost),
        ("cost_log", stats.cost_log, figures.cost_log),
        ("win", stats.wins + 0.5 * stats.ties, figures.win),
    ):
        if not math.isclose(expected_sum, got_sum, rel_tol=1e-6, abs_tol=1e-9):
            return f"{name} {got_sum:.6g} where the arm's statistics say {expected_sum:.6g}"
    return None
