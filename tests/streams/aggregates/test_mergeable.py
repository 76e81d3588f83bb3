"""Every aggregate kind, and every composition of them, merges commutatively and associatively."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bifrost.schemas import Bucket, FeedbackEvent, Outcome, RoutingEvent
from bifrost.streams.aggregates.mergeable import (
    ADD,
    KEYED,
    MERGE,
    UNION,
    Count,
    Mergeable,
    MissingKind,
    aggregate_kinds,
    merged_all,
)
from bifrost.streams.aggregates.sketch import QuantileSketch
from bifrost.streams.aggregates.stats import WindowStats
from bifrost.streams.rollup.query import MergedStats

outcomes = st.none() | st.sampled_from(list(Outcome))
routing = st.builds(
    lambda latency, success, limited, fallback, cost, tin, tout, quality, win: RoutingEvent(
        request_id="r",
        ts=1.0,
        router_id="a",
        arm="v1",
        model="m",
        provider="p",
        bucket=Bucket.MID,
        latency_ms=latency,
        cost_usd=cost,
        success=success,
        rate_limited=limited,
        fallback_used=fallback,
        tokens_in=tin,
        tokens_out=tout,
        quality=quality,
        win=win,
    ),
    st.floats(min_value=0.0, max_value=1e6),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.floats(min_value=0.0, max_value=10.0),
    st.integers(0, 10_000),
    st.integers(0, 10_000),
    st.none() | st.floats(min_value=0.0, max_value=1.0),
    outcomes,
)
feedback = st.builds(
    lambda grade, outcome, success: FeedbackEvent(
        request_id="r", ts=1.0, router_id="a", arm="v1", model="m", grade=grade, outcome=outcome, success=success
    ),
    st.floats(min_value=0.0, max_value=1.0),
    outcomes,
    st.none() | st.booleans(),
)
# A WindowStats is described by what was folded into it, so each merge gets fresh objects.
stats_spec = st.tuples(st.lists(routing, max_size=6), st.lists(feedback, max_size=3))
names = st.sampled_from(["v1", "v2", "canary"])


def build_stats(spec: tuple[list[RoutingEvent], list[FeedbackEvent]]) -> WindowStats:
    stats = WindowStats()
    for event in spec[0]:
        stats.add_event(event)
    for signal in spec[1]:
        stats.add_feedback(signal)
    return stats


def build_sketch(values: list[float]) -> QuantileSketch:
    sketch = QuantileSketch()
    sketch.add_many(values)
    return sketch


def build_keyed(spec: dict[str, Any]) -> dict[str, WindowStats]:
    return {name: build_stats(s) for name, s in spec.items()}


def build_merged(spec: tuple[dict[str, Any], dict[str, Any], dict[str, Any], set[int]]) -> MergedStats:
    arms, models, buckets, windows = spec
    return MergedStats(
        arms=build_keyed(arms), models=build_keyed(models), buckets=build_keyed(buckets), windows=set(windows)
    )


def merge_in_place(mine: Any, theirs: Any) -> Any:
    mine.merge(theirs)
    return mine


@dataclass(frozen=True)
class Case:
    """One mergeable type: how to draw a description, build a fresh value from it, and merge."""

    name: str
    spec: st.SearchStrategy[Any]
    build: Callable[[Any], Any]
    merge: Callable[[Any, Any], Any]
    empty: Callable[[], Any]


keyed_spec = st.dictionaries(names, stats_spec, max_size=3)
CASES = [
    Case("Count", st.integers(0, 2**40), int, ADD.merge, int),
    Case("Sum", st.floats(min_value=0.0, max_value=1e9), float, ADD.merge, float),
    Case(
        "Sketch",
        st.lists(st.floats(min_value=0.0, max_value=1e7), max_size=40),
        build_sketch,
        MERGE.merge,
        QuantileSketch,
    ),
    Case("Keyed", keyed_spec, build_keyed, KEYED.merge, dict),
    Case("Distinct", st.sets(st.integers(0, 10**6), max_size=8), set, UNION.merge, set),
    Case("WindowStats", stats_spec, build_stats, merge_in_place, WindowStats),
    Case(
        "MergedStats",
        st.tuples(keyed_spec, keyed_spec, keyed_spec, st.sets(st.integers(0, 10**6), max_size=5)),
        build_merged,
        merge_in_place,
        MergedStats,
    ),
]


def plain(value: Any) -> Any:
    """Structs and dataclasses as dicts, sets sorted: values comparable field by field."""
    if isinstance(value, msgspec.Struct):
        return {f: plain(getattr(value, f)) for f in value.__struct_fields__}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, set):
        return sorted(value)
    return value


def same(a: Any, b: Any) -> bool:
    """Equal, with float sums equal up to rounding (float addition is not associative)."""
    a, b = plain(a), plain(b)
    return _same(a, b)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_merge_is_commutative_and_associative(case: Case, data: st.DataObject) -> None:
    a, b, c = (data.draw(case.spec, label=label) for label in "abc")
    make, merge = case.build, case.merge
    assert same(merge(make(a), make(b)), merge(make(b), make(a)))
    assert same(merge(merge(make(a), make(b)), make(c)), merge(make(a), merge(make(b), make(c))))
    assert same(merge(make(a), case.empty()), make(a))
    assert same(merge(case.empty(), make(a)), make(a))


@settings(max_examples=40, deadline=None)
@given(st.lists(stats_spec, min_size=1, max_size=5))
def test_merged_partials_equal_one_fold_of_everything(parts: list[Any]) -> None:
    everything = ([e for events, _ in parts for e in events], [f for _, signals in parts for f in signals])
    assert same(merged_all(WindowStats, [build_stats(p) for p in parts]), build_stats(everything))


def test_every_field_of_the_window_statistics_declares_its_merge() -> None:
    assert list(aggregate_kinds(WindowStats)) == list(WindowStats.__struct_fields__)
    assert list(aggregate_kinds(MergedStats)) == [f.name for f in dataclasses.fields(MergedStats)]


def test_a_field_without_a_kind_is_refused_when_the_class_is_defined() -> None:
    with pytest.raises(MissingKind, match="Broken.forgotten"):

        class Broken(Mergeable, msgspec.Struct):
            counted: Count = 0
            forgotten: int = 0


def test_merging_a_key_only_the_other_side_has_copies_it() -> None:
    theirs = {"v1": WindowStats(count=2)}
    mine: dict[str, WindowStats] = {}
    KEYED.merge(mine, theirs)
    mine["v1"].merge(WindowStats(count=1))
    assert theirs["v1"].count == 2 and mine["v1"].count == 3
