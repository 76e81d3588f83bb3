"""Paced background load for the ingest benchmark's end-to-end latency phase (a child process).

It stands in for the routers: it publishes simulated routing events (event time = wall
time) at a fixed rate with one aiokafka producer, while the benchmark process publishes
and times its probes. It runs as its own process so that its CPU use does not add jitter
to the probe timings (the GIL), and reports what it actually achieved.

Protocol (line based): the parent starts it, it pre-generates every event it will send
(simulator, ``rate * seconds`` events) and prints ``{"ready": ...}``; the parent writes
``go`` on stdin; it publishes for ``seconds`` and prints one JSON line with the result.

    python bench/ingest_load.py --bootstrap HOST:PORT --topic T --rate 25000 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from typing import Any

import msgspec
from aiokafka import AIOKafkaProducer

from bifrost.client.simulator import TrafficConfig, generate
from bifrost.schemas import encode

TICK_SECONDS = 0.005
MAX_EVENTS = 3_000_000  # bound on what one load phase pre-generates (memory, start-up time)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--rate", type=float, required=True, help="events per second")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--routers", default="router-a,router-b,router-c,router-d")
    parser.add_argument("--seed", type=int, default=11)
    return parser.parse_args(argv)


async def publish(args: argparse.Namespace, events: list[Any], started_cpu: float) -> dict[str, Any]:
    producer = AIOKafkaProducer(
        bootstrap_servers=args.bootstrap,
        acks=1,
        linger_ms=5,
        max_batch_size=1024 * 1024,
        client_id="bench-load",
    )
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(args.topic))
        sys.stdout.write(json.dumps({"ready": True, "events": len(events), "partitions": len(partitions)}) + "\n")
        sys.stdout.flush()
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        if line.strip() != "go":
            return {"error": f"expected 'go', got {line!r}"}
        cpu0 = time.process_time()
        wall0 = time.time()
        t0 = time.perf_counter()
        rate = args.rate
        sent = 0
        behind_max = 0
        futures: list[asyncio.Future[object]] = []
        replace = msgspec.structs.replace
        next_partition = itertools.cycle(partitions)
        while sent < len(events):
            now = time.perf_counter()
            due = min(len(events), int((now - t0) * rate))
            behind_max = max(behind_max, due - sent)
            if due > sent:
                batches: dict[int, object] = {}
                for i in range(sent, due):
                    event = events[i]
                    value = encode(replace(event, ts=wall0 + event.ts))
                    partition = next(next_partition)
                    batch = batches.get(partition)
                    if batch is None:
                        batch = batches[partition] = producer.create_batch()
                    if batch.append(key=event.request_id.encode(), value=value, timestamp=None) is None:  # type: ignore[attr-defined]
                        futures.append(await producer.send_batch(batch, args.topic, partition=partition))
                        batch = batches[partition] = producer.create_batch()
                        batch.append(key=event.request_id.encode(), value=value, timestamp=None)
                for partition, batch in batches.items():
                    futures.append(await producer.send_batch(batch, args.topic, partition=partition))
                sent = due
                if len(futures) > 10_000:
                    futures = [f for f in futures if not f.done()]
            await asyncio.sleep(TICK_SECONDS)
        publish_seconds = time.perf_counter() - t0
        results = await asyncio.gather(*futures, return_exceptions=True)
        errors = [repr(r) for r in results if isinstance(r, BaseException)]
        acked_seconds = time.perf_counter() - t0
        return {
            "target_rate": rate,
            "events": sent,
            "publish_seconds": publish_seconds,
            "acked_seconds": acked_seconds,
            "achieved_rate": sent / publish_seconds if publish_seconds > 0 else None,
            "max_behind_schedule_events": behind_max,
            "errors": errors[:5],
            "error_count": len(errors),
            "cpu_cores": (time.process_time() - cpu0) / acked_seconds if acked_seconds > 0 else None,
            "generate_cpu_seconds": cpu0 - started_cpu,
        }
    finally:
        await producer.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started_cpu = time.process_time()
    total = min(MAX_EVENTS, int(args.rate * args.seconds))
    config = TrafficConfig(
        routers=tuple(args.routers.split(",")),
        rate_per_second=args.rate,
        duration_seconds=(total + 1) / args.rate,
        start_ts=0.0,
        seed=args.seed,
    )
    # Event times are offsets from the start; the real time is added when each is sent.
    events = [item.event for item in itertools.islice(generate(config), total) if item.event is not None]
    result = asyncio.run(publish(args, events, started_cpu))
    sys.stdout.write(json.dumps({"result": result}) + "\n")
    sys.stdout.flush()
    return 0 if "error" not in result and not result.get("error_count") else 1


if __name__ == "__main__":
    sys.exit(main())
