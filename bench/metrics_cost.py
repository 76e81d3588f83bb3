"""What the per router and arm metrics cost on the ingest path, against the fold itself.

    .venv/bin/python bench/metrics_cost.py [--events 200000] [--repeats 5]

Folds simulated routing events (3 routers, 2 arms, the simulator's models and buckets)
in batches of 10,000, as the ingest loop does, and times separately what the worker does
per committed batch for /metrics (``TrafficFigures.add_all`` over the fold's statistics).
Prints medians over the repeats.
"""

from __future__ import annotations

import argparse
import statistics
import time

from bifrost.client.simulator import TrafficConfig, generate
from bifrost.schemas import encode
from bifrost.streams.ingest.fold import BatchFolder, InputRecord
from bifrost.streams.metrics.traffic import TrafficFigures


def once(batches: list[list[bytes]]) -> tuple[float, float, int]:
    folder = BatchFolder(routing_topic="ev", feedback_topic="fb")
    figures = TrafficFigures(max_routers=200, max_arms_per_router=10)
    partials: dict = {}
    states: dict = {}
    offset, fold_s, metrics_s = 0, 0.0, 0.0
    for batch in batches:
        records = [InputRecord("ev", 0, offset + i, None, value) for i, value in enumerate(batch)]
        offset += len(batch)
        started = time.perf_counter()
        result = folder.fold(records, load=partials.get, states=states)
        partials.update(result.changed)
        folded = time.perf_counter()
        figures.add_all(result.traffic)
        fold_s += folded - started
        metrics_s += time.perf_counter() - folded
    return fold_s, metrics_s, sum(c.requests for _, _, c in figures.rows())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    config = TrafficConfig(
        routers=("r1", "r2", "r3"),
        arms={"v1": 0.9, "v2": 0.1},
        rate_per_second=500.0,
        duration_seconds=args.events / 500,
        start_ts=time.time() - 3 * 3600,
        seed=1,
    )
    values = [encode(g.event) for g in generate(config) if g.event is not None]
    batches = [values[i : i + 10_000] for i in range(0, len(values), 10_000)]
    runs = [once(batches) for _ in range(args.repeats)]
    fold_s = statistics.median(r[0] for r in runs)
    metrics_s = statistics.median(r[1] for r in runs)
    n = len(values)
    assert all(r[2] == n for r in runs), "every folded event is counted once"
    print(f"events {n:,} in batches of 10,000, {args.repeats} runs (medians)")
    print(f"fold:    {fold_s:.3f} s  {n / fold_s:,.0f} ev/s  {fold_s / n * 1e9:,.0f} ns/event")
    print(
        f"metrics: {metrics_s * 1000:.1f} ms  {metrics_s / n * 1e9:,.0f} ns/event  "
        f"({metrics_s / fold_s:.2%} of the fold)"
    )


if __name__ == "__main__":
    main()
