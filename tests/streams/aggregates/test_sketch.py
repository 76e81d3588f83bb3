"""The quantile sketch keeps its relative-error bound, merges exactly, serializes."""

from __future__ import annotations

import math
import random

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bifrost.streams.aggregates.sketch import IncompatibleSketches, QuantileSketch

QUANTILES = (0.0, 0.1, 0.5, 0.9, 0.95, 0.99, 1.0)


def exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


def within_bound(estimate: float, truth: float, alpha: float) -> bool:
    return abs(estimate - truth) <= alpha * abs(truth) + 1e-9


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(min_value=1e-3, max_value=1e7, allow_nan=False), min_size=1, max_size=400))
def test_relative_error_bound(values: list[float]) -> None:
    sketch = QuantileSketch()
    sketch.add_many(values)
    for q in QUANTILES:
        estimate = sketch.quantile(q)
        assert estimate is not None
        assert within_bound(estimate, exact(values, q), sketch.relative_accuracy), q


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), max_size=200),
    st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), max_size=200),
)
def test_merge_equals_one_sketch_of_everything(left: list[float], right: list[float]) -> None:
    a, b, whole = QuantileSketch(), QuantileSketch(), QuantileSketch()
    a.add_many(left)
    b.add_many(right)
    whole.add_many(left + right)
    a.merge(b)
    assert a.bins == whole.bins and a.count == whole.count and a.zero_count == whole.zero_count
    assert math.isclose(a.total, whole.total, rel_tol=1e-9, abs_tol=1e-9)
    for q in QUANTILES:
        assert a.quantile(q) == whole.quantile(q)


def test_round_trip_through_json() -> None:
    sketch = QuantileSketch()
    sketch.add_many(random.Random(1).lognormvariate(6, 0.5) for _ in range(5000))
    clone = msgspec.json.decode(msgspec.json.encode(sketch), type=QuantileSketch)
    assert clone.bins == sketch.bins
    assert clone.quantile(0.95) == sketch.quantile(0.95)


def test_memory_is_bounded_and_high_quantiles_stay_accurate() -> None:
    rng = random.Random(3)
    values = [10 ** rng.uniform(-6, 9) for _ in range(20_000)]
    sketch = QuantileSketch(max_bins=256)
    sketch.add_many(values)
    assert len(sketch.bins) <= 256
    for q in (0.95, 0.99):
        assert within_bound(sketch.quantile(q) or 0.0, exact(values, q), sketch.relative_accuracy)


def test_empty_and_invalid_queries() -> None:
    sketch = QuantileSketch()
    assert sketch.quantile(0.5) is None
    sketch.add(5.0)
    with pytest.raises(ValueError):
        sketch.quantile(1.5)
    with pytest.raises(IncompatibleSketches):
        sketch.merge(QuantileSketch(relative_accuracy=0.05))


def test_add_log_fills_the_same_buckets_as_add() -> None:
    rng = random.Random(3)
    values = [rng.lognormvariate(-7.0, 2.0) for _ in range(2_000)] + [1e-12, 5e-10]
    plain, logged = QuantileSketch(), QuantileSketch()
    for v in values:
        plain.add(v)
        logged.add_log(v, math.log(v))
    assert logged == plain


@pytest.mark.parametrize("n", [5, 31, 32, 500])
def test_add_batch_counts_what_add_counts(n: int) -> None:
    rng = random.Random(n)
    values = [rng.lognormvariate(-7.0, 2.0) for _ in range(n)] + [0.0, 1e-12]
    plain, batched = QuantileSketch(), QuantileSketch()
    plain.add(0.5)
    batched.add(0.5)
    for v in values:
        plain.add(v)
    batched.add_batch(values)
    assert batched.bins == plain.bins and all(type(k) is int and type(c) is int for k, c in batched.bins.items())
    assert (batched.count, batched.zero_count, batched.min, batched.max) == (
        plain.count,
        plain.zero_count,
        plain.min,
        plain.max,
    )
    assert math.isclose(batched.total, plain.total, rel_tol=1e-12)
