"""Lag status rules (Burrow's, over a window of samples): pure, no Kafka."""

from __future__ import annotations

import pytest

from bifrost.streams.lag.rules import (
    GroupSnapshot,
    LagStatus,
    LagWindows,
    PartitionLag,
    PartitionSample,
    consumable_lag,
    evaluate_partition,
    group_status,
    record_age,
    since_last_reset,
)

SIZE = 5


def window(
    committed: list[int | None], ends: list[int], *, members: int = 1, every: float = 10.0
) -> list[PartitionSample]:
    """Samples every ``every`` seconds; lag = end - committed."""
    return [
        PartitionSample(at=i * every, committed=c, end=e, lag=max(0, e - (c or 0)), members=members)
        for i, (c, e) in enumerate(zip(committed, ends))
    ]


def status(samples: list[PartitionSample], size: int = SIZE) -> LagStatus:
    return evaluate_partition(samples, size).status


def test_empty_window_is_ok() -> None:
    verdict = evaluate_partition([], SIZE)
    assert verdict.status is LagStatus.OK and "no sample" in verdict.reason


def test_lag_zero_is_always_ok_even_without_members_or_progress() -> None:
    assert status(window([10] * 5, [10] * 5, members=0)) is LagStatus.OK
    assert status(window([10] * 5, [10] * 5)) is LagStatus.OK


def test_consuming_with_falling_lag_is_ok() -> None:
    assert status(window([0, 10, 20, 30, 40], [15, 25, 32, 38, 45])) is LagStatus.OK


def test_no_member_with_lag_is_stop_at_once() -> None:
    # STOP needs no full window: a group with no live member cannot catch up.
    assert status(window([10], [12], members=0)) is LagStatus.STOP
    assert status(window([10, 10, 10, 10, 10], [10, 11, 12, 13, 14], members=0)) is LagStatus.STOP


def test_stop_wins_over_a_recent_zero_lag() -> None:
    # Burrow checks "stopped" before "lag was zero in the window".
    assert status(window([10, 10, 10], [10, 10, 13], members=0)) is LagStatus.STOP


def test_offsets_stuck_while_the_log_grows_is_err() -> None:
    verdict = evaluate_partition(window([10] * 5, [11, 12, 13, 14, 15]), SIZE)
    assert verdict.status is LagStatus.ERR
    assert "5 records arrived" not in verdict.reason and "4 records arrived" in verdict.reason


def test_offsets_stuck_with_a_still_log_is_stall() -> None:
    verdict = evaluate_partition(window([10] * 5, [13] * 5), SIZE)
    assert verdict.status is LagStatus.STALL and "stuck" in verdict.reason


def test_lag_never_decreasing_while_consuming_is_warn() -> None:
    assert status(window([0, 5, 10, 15, 20], [10, 16, 22, 28, 34])) is LagStatus.WARN
    assert status(window([0, 5, 10, 15, 20], [10, 15, 20, 25, 30])) is LagStatus.WARN  # constant lag counts


def test_one_decrease_in_the_window_is_ok() -> None:
    assert status(window([0, 5, 10, 15, 20], [10, 16, 19, 28, 34])) is LagStatus.OK


def test_zero_lag_inside_the_window_clears_err_stall_and_warn() -> None:
    # The consumer caught up within the window: not stuck, not falling behind.
    assert status(window([10, 10, 10, 10, 10], [10, 11, 12, 13, 14])) is LagStatus.OK
    assert status(window([0, 10, 10, 15, 20], [10, 10, 22, 28, 34])) is LagStatus.OK


def test_a_partial_window_is_not_judged() -> None:
    # Four identical samples of a window of five: ERR would be a guess.
    verdict = evaluate_partition(window([10] * 4, [11, 12, 13, 14]), SIZE)
    assert verdict.status is LagStatus.OK and "4/5" in verdict.reason


def test_only_the_last_size_samples_count() -> None:
    # Old progress scrolled out of the window: stuck for the last five samples.
    assert status(window([0, 5, 10, 10, 10, 10, 10], [20, 21, 22, 23, 24, 25, 26])) is LagStatus.ERR


def test_offsets_reset_restart_the_window() -> None:
    # A reset to an earlier offset (replay): the samples before it do not count, so a
    # short new story is not judged, and the "stuck" offsets before it are forgotten.
    samples = window([50, 50, 50, 0, 10], [60, 61, 62, 63, 64])
    assert [s.committed for s in since_last_reset(samples)] == [0, 10]
    assert status(samples) is LagStatus.OK


def test_a_recreated_topic_restarts_the_window() -> None:
    samples = window([50, 50, 50, 50, 50], [60, 60, 60, 3, 3])
    assert len(since_last_reset(samples)) == 2


def test_never_committed_partition() -> None:
    # A partition the group never committed counts from the log start.
    assert status(window([None] * 5, [3, 4, 5, 6, 7])) is LagStatus.ERR
    assert status(window([None], [3], members=0)) is LagStatus.STOP


def test_group_status_is_the_worst() -> None:
    assert group_status([]) is LagStatus.OK
    assert group_status([LagStatus.OK, LagStatus.WARN, LagStatus.STALL]) is LagStatus.STALL
    assert group_status([LagStatus.ERR, LagStatus.STOP, LagStatus.OK]) is LagStatus.STOP
    assert [s.alerting for s in LagStatus] == [False, False, True, True, True]


@pytest.mark.parametrize(
    ("committed", "start", "end", "first", "counted", "expected"),
    [
        (10, 0, 10, None, None, 0),  # caught up
        (12, 0, 10, None, None, 0),  # committed ahead of the LSO (open transaction): not negative
        (9, 0, 10, None, 0, 0),  # only a commit marker left
        (5, 0, 10, None, 0, 0),  # aborted records and markers only
        (5, 0, 10, 6, 3, 3),  # read to the end: exact, markers between records not counted
        (5, 0, 10, 7, None, 3),  # markers before the next record are not lag
        (5, 0, 10, None, None, 5),  # not read in time: raw difference
        (None, 4, 10, None, None, 6),  # never committed: from the log start
        (2, 4, 10, None, None, 6),  # committed offset deleted by retention
        (5, 0, 10, 12, None, 5),  # a record past the end (arrived meanwhile) does not shrink it
    ],
)
def test_consumable_lag(
    committed: int | None, start: int, end: int, first: int | None, counted: int | None, expected: int
) -> None:
    assert consumable_lag(committed, start, end, first_record=first, counted=counted) == expected


def test_record_age() -> None:
    assert record_age(100.0, 90_500) == pytest.approx(9.5)
    assert record_age(100.0, 101_000) == 0.0  # clock skew: never negative
    assert record_age(100.0, None) is None
    assert record_age(100.0, -1) is None


def snap(
    at: float, parts: dict[tuple[str, int], tuple[int | None, int]], *, members: int = 1, group: str = "g"
) -> GroupSnapshot:
    return GroupSnapshot(
        group=group,
        at=at,
        state="Stable" if members else "Empty",
        members=members,
        exists=True,
        partitions=tuple(
            PartitionLag(
                topic=t, partition=p, committed=c, log_end=e, lag=max(0, e - (c or 0)), lag_seconds=float(e - (c or 0))
            )
            for (t, p), (c, e) in parts.items()
        ),
    )


def test_windows_track_partitions_and_report_the_worst() -> None:
    windows = LagWindows(size=3)
    report = None
    for i in range(3):
        report = windows.add(snap(i * 10.0, {("t", 0): (10 * i, 10 * i), ("t", 1): (5, 6 + i)}))
    assert report is not None
    assert [p.status for p in report.partitions] == [LagStatus.OK, LagStatus.ERR]
    assert report.status is LagStatus.ERR and report.lag == 3 and report.lag_seconds == 3.0
    assert (report.samples, report.window) == (3, 3)


def test_windows_partition_added_starts_unjudged() -> None:
    windows = LagWindows(size=3)
    for i in range(3):
        windows.add(snap(i * 10.0, {("t", 0): (5, 5)}))
    report = windows.add(snap(30.0, {("t", 0): (5, 5), ("t", 1): (0, 4)}))
    added = report.partitions[1]
    assert added.status is LagStatus.OK and "1/3" in added.reason


def test_windows_forget_partitions_that_disappear() -> None:
    windows = LagWindows(size=2)
    windows.add(snap(0.0, {("t", 0): (5, 9)}))
    windows.add(snap(10.0, {}))
    report = windows.add(snap(20.0, {("t", 0): (5, 9)}))
    assert report.partitions[0].status is LagStatus.OK  # one sample again: not judged


def test_unknown_group_reports_ok_and_empty() -> None:
    report = LagWindows(size=3).add(GroupSnapshot(group="x", at=0.0, state="unknown", members=0, exists=False))
    assert (report.status, report.lag, report.lag_seconds, report.partitions) == (LagStatus.OK, 0, 0.0, ())


def test_window_size_must_hold_two_samples() -> None:
    with pytest.raises(ValueError):
        LagWindows(size=1)
