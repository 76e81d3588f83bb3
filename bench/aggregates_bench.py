"""Micro-benchmark of the window aggregates: the fold, and merging partials for a view.

No Kafka: simulated routing and feedback events are encoded once, then

- **fold**: ``BatchFolder.fold`` over all of them in batches (what stage 1 does per batch);
- **merge**: ``merge_stats`` over every partial the fold produced (what a stage-2 view
  does per query), i.e. ``WindowStats.merge`` per router view entry;
- **codec**: ``encode_partial``/``decode_partial`` of those partials (table/changelog bytes).

Figures are CPU seconds of this process (``time.process_time``), the median of
``--repeats`` runs: on a shared machine CPU time is steadier than wall clock. It uses only
APIs that predate the mergeable aggregates, so the same script measures an older tree
(put it first on ``PYTHONPATH`` as a ``bifrost`` package) for a before/after comparison.

    nice -n 10 .venv/bin/python bench/aggregates_bench.py --events 200000 --repeats 5
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from collections.abc import Callable

import bifrost.streams.aggregates.stats as stats_module
from bifrost.client.simulator import TrafficConfig, generate
from bifrost.schemas import encode
from bifrost.streams.aggregates.partial import WindowPartial, decode_partial, encode_partial
from bifrost.streams.ingest.fold import BatchFolder, InputRecord, PartitionState
from bifrost.streams.rollup.query import merge_stats

ROUTING, FEEDBACK = "bench.routing", "bench.feedback"
PARTITIONS = 8
BATCH = 10_000


def records(n: int, seed: int) -> list[InputRecord]:
    """``n`` simulated requests (routing events plus 20% late feedback), round-robin over partitions."""
    config = TrafficConfig(
        routers=("router-a", "router-b"),
        arms={"v12": 0.8, "v13": 0.15, "v14": 0.05},
        rate_per_second=20.0,
        duration_seconds=n / 20.0 + 1,
        start_ts=1.7e9,
        feedback_fraction=0.2,
        seed=seed,
    )
    out: list[InputRecord] = []
    offsets = {(ROUTING, p): 0 for p in range(PARTITIONS)} | {(FEEDBACK, p): 0 for p in range(PARTITIONS)}
    for i, item in enumerate(itertools.islice(generate(config), n)):
        partition = i % PARTITIONS
        for topic, event in ((ROUTING, item.event), (FEEDBACK, item.feedback)):
            if event is None:
                continue
            offset = offsets[(topic, partition)]
            offsets[(topic, partition)] = offset + 1
            out.append(InputRecord(topic, partition, offset, None, encode(event)))
    return out


def fold_all(batches: list[list[InputRecord]]) -> dict[str, WindowPartial]:
    """Fold every batch into an in-memory table; return the final partials by key."""
    folder = BatchFolder(routing_topic=ROUTING, feedback_topic=FEEDBACK)
    table: dict[str, WindowPartial] = {}
    states: dict[tuple[str, int], PartitionState] = {}
    for batch in batches:
        result = folder.fold(batch, load=table.get, states=states, now=2e9)
        table.update(result.changed)
        for key in result.expired:
            table.pop(key, None)
    return table


def cpu_median(run: Callable[[], object], repeats: int) -> float:
    """Median CPU seconds of ``run`` over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        run()
        times.append(time.process_time() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="simulated requests (default 200,000)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per measure; the median is reported")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    inputs = records(args.events, args.seed)
    batches = [inputs[i : i + BATCH] for i in range(0, len(inputs), BATCH)]
    table = fold_all(batches)
    partials = list(table.values())
    raws = [encode_partial(p) for p in partials]
    entries = sum(len(p.arms) + len(p.models) + len(p.buckets) for p in partials)

    fold_s = cpu_median(lambda: fold_all(batches), args.repeats)
    merge_s = cpu_median(lambda: merge_stats(partials, from_ts=0, to_ts=2**62), args.repeats)
    encode_s = cpu_median(lambda: [encode_partial(p) for p in partials], args.repeats)
    decode_s = cpu_median(lambda: [decode_partial(r) for r in raws], args.repeats)
    print(
        json.dumps(
            {
                "stats_module": stats_module.__file__,
                "records": len(inputs),
                "partials": len(partials),
                "fold_records_per_cpu_s": round(len(inputs) / fold_s),
                "merge_entries_per_cpu_s": round(entries / merge_s),
                "encode_partials_per_cpu_s": round(len(partials) / encode_s),
                "decode_partials_per_cpu_s": round(len(partials) / decode_s),
                "partial_bytes_total": sum(map(len, raws)),
            }
        )
    )


if __name__ == "__main__":
    main()
