"""Chaos suite: "every input offset ends in a counted window partial or in the DLQ, exactly once".

Runs on a real local Kafka broker (started here, persistent temp data dir, fixed ports, so
it can be stopped and restarted on the same address) with real ``bifrost-opt worker``
processes (8 partitions, one web port per worker slot). In every experiment a publisher
offers valid routing events at ``--rate`` (≥ 3,500/s) for the whole run while a fault hits
at a random, seeded moment:

- ``kill_restart``: the worker is killed with SIGKILL three times and restarted at once;
- ``scale_out_kill``: a second worker joins mid-stream, then one of the two (random) is
  killed with SIGKILL and not restarted;
- ``broker_restart``: the broker is stopped and started again on the same port while the
  worker keeps running (it must recover by itself; the publisher buffers and retries);
- ``poison``: one record of each hostile kind mixed into valid traffic (deep nesting,
  ~900 KB, a 1 MB key, NaN, invalid UTF-8, tombstones, ...); the worker must never exit
  and every one must be in the DLQ with a reason (hostile-but-valid ones counted).

Then the input topic is re-read from the beginning and every offset decoded with the
project's own ``EventDecoder`` (ground truth), ``window-partials`` and the DLQ are read
``read_committed``, and the two are compared per (router, arm, partition, window).

    .venv/bin/python bench/chaos.py [--events N] [--rate R] [--experiments a,b,...] [--quick]
                                    [--seed S] [--code REV]

``--code REV`` runs workers and the decoder of git revision REV (exported to a temp dir),
e.g. ``--code HEAD`` while the working tree is being edited. Results: a table on stdout,
``bench/results/chaos.md`` and ``bench/results/chaos.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:  # run as a script: make `bench.*` and `tests.*` importable
    sys.path.insert(0, str(_REPO))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable, Coroutine, Sequence  # noqa: E402
from dataclasses import asdict, dataclass, field, replace  # noqa: E402
from typing import Any  # noqa: E402

from bench import machine  # noqa: E402
from bench.chaos_procs import ChaosBroker, Fault, ProgressMonitor, WorkerSlots, code_snapshot  # noqa: E402
from bench.chaos_traffic import ARMS, ROUTERS, PacedPublisher, Poison, poison_records  # noqa: E402
from bench.chaos_truth import Observed, compare, ground_truth, observe_partials, read_dead_letters, wait_drained  # noqa: E402
from bifrost.config import Settings  # noqa: E402
from bifrost.kafka.topics import TopicSpec, ensure_topics  # noqa: E402

log = logging.getLogger("bifrost.chaos")

EXPERIMENTS = ("kill_restart", "scale_out_kill", "broker_restart", "poison")
RESULTS_DIR = _REPO / "bench" / "results"


@dataclass(frozen=True)
class ChaosConfig:
    """Everything an experiment run depends on (printed and written with the results)."""

    events: int = 300_000
    rate: float = 4_000.0
    seed: int = 0
    partitions: int = 8
    session_timeout_seconds: float = 10.0
    commit_interval_seconds: float = 1.0
    batch_within_seconds: float = 0.25
    kills: int = 3
    drain_timeout_seconds: float = 180.0
    ready_timeout_seconds: float = 120.0
    warehouse_in_poison: bool = True
    fault_window: tuple[float, float] = (0.1, 0.9)  # faults hit between these fractions of the stream
    extra_env: dict[str, str] = field(default_factory=dict)  # more BIFROST_* settings for workers

    def for_experiment(self, name: str) -> ChaosConfig:
        """Per-experiment seed (printed), so one experiment can be re-run alone."""
        return replace(self, seed=self.seed * 1000 + EXPERIMENTS.index(name) + 1)


@dataclass
class Run:
    """The state of one experiment while it runs."""

    name: str
    config: ChaosConfig
    bootstrap: str
    settings: Settings
    slots: WorkerSlots
    monitor: ProgressMonitor
    publisher: PacedPublisher
    rng: random.Random
    faults: list[Fault] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    async def at_fraction(self, fraction: float) -> None:
        """Wait until the publisher has generated ``fraction`` of its events."""
        target = int(fraction * self.config.events)
        while self.publisher.stats.generated < target:
            await asyncio.sleep(0.02)

    def log(self, message: str) -> None:
        line = f"[{self.name}] {message}"
        self.notes.append(f"{time.strftime('%H:%M:%S')} {message}")
        print(line, flush=True)


def worker_settings(bootstrap: str, name: str, config: ChaosConfig, run_dir: Path, *, warehouse: bool) -> Settings:
    tag = uuid.uuid4().hex[:6]
    values: dict[str, Any] = dict(
        kafka_bootstrap=bootstrap,
        app_id=f"chaos-{name}-{tag}",
        topic_prefix=f"chaos{tag}.",
        partitions=config.partitions,
        session_timeout_seconds=config.session_timeout_seconds,
        commit_interval_seconds=config.commit_interval_seconds,
        batch_within_seconds=config.batch_within_seconds,
        warehouse_enabled=warehouse,
        warehouse_dir=str(run_dir / "warehouse"),
        store="memory://",
        log_level="info",
    )
    return Settings.from_env(dict(config.extra_env), **values)


async def wait_ready(run: Run, slots: Sequence[int], timeout: float) -> float:
    """Wait until the given slots together own every input partition; returns seconds."""
    began = time.monotonic()
    want = set(range(run.config.partitions))
    while time.monotonic() - began < timeout:
        run.slots.check_exits()
        dead = [s for s in slots if run.slots.slots[s].exits]
        if dead:
            slot = run.slots.slots[dead[0]]
            tail = slot.process.log_tail(12) if slot.process else ""
            raise RuntimeError(
                f"worker {dead[0]} exited while starting (code {slot.exits[-1]['rc']}); "
                f"log {slot.log_path} ends:\n{tail}"
            )
        owned: set[int] = set()
        for s in slots:
            owned |= await asyncio.to_thread(run.slots.owned, s)
        if owned == want:
            return time.monotonic() - began
        await asyncio.sleep(0.25)
    raise TimeoutError(f"workers {list(slots)} did not own all {len(want)} input partitions in {timeout:.0f} s")


def fault_points(rng: random.Random, count: int, window: tuple[float, float], min_gap: float) -> list[float]:
    """``count`` sorted random fractions in ``window``, at least ``min_gap`` apart."""
    low, high = window
    for _ in range(10_000):
        points = sorted(rng.uniform(low, high) for _ in range(count))
        if all(b - a >= min_gap for a, b in zip(points, points[1:])):
            return [round(p, 4) for p in points]
    return [round(low + (high - low) * (i + 1) / (count + 1), 4) for i in range(count)]


# --------------------------------------------------------------------------- the four faults


async def drive_kill_restart(run: Run) -> None:
    # Kills at least ~8 s apart, so each restart can be seen resuming before the next.
    duration = run.config.events / run.config.rate
    points = fault_points(
        run.rng, run.config.kills, run.config.fault_window, min_gap=max(0.12, min(8.0 / duration, 0.26))
    )
    run.log(f"kill -9 at fractions {points} of the stream (seeded)")
    for point in points:
        await run.at_fraction(point)
        owned = sorted(await asyncio.to_thread(run.slots.owned, 0)) or list(range(run.config.partitions))
        at = time.time()
        await asyncio.to_thread(run.slots.kill, 0)
        run.slots.start(0)
        restarted = time.time()
        baseline = await run.monitor.fetch_now()  # the dead worker commits nothing more
        run.faults.append(
            run.monitor.fault(
                "kill -9 + restart",
                at=at,
                recovered_at=restarted,
                partitions=owned,
                baseline=baseline,
                generated=run.publisher.stats.generated,
                fraction=point,
            )
        )
        run.log(f"killed worker 0 at {run.publisher.stats.generated:,} events generated; restarted")


async def wait_both_own(run: Run, timeout: float = 60.0) -> dict[int, list[int]]:
    began = time.monotonic()
    owned: dict[int, list[int]] = {}
    while time.monotonic() - began < timeout:
        owned = {s: sorted(await asyncio.to_thread(run.slots.owned, s)) for s in (0, 1)}
        if owned[0] and owned[1] and len(owned[0]) + len(owned[1]) == run.config.partitions:
            break
        await asyncio.sleep(0.25)
    return owned


async def drive_scale_out_kill(run: Run) -> None:
    low, high = run.config.fault_window
    join_at = round(run.rng.uniform(low, low + (high - low) * 0.4), 4)
    kill_at = round(run.rng.uniform(join_at + 0.2, high), 4)
    victim = run.rng.choice([0, 1])
    run.log(f"worker 1 joins at {join_at}, worker {victim} is killed at {kill_at} (seeded)")
    await run.at_fraction(join_at)
    at = time.time()
    run.slots.start(1)
    owned = await wait_both_own(run)
    settled = time.time()
    run.log(
        f"worker 1 joined at {run.publisher.stats.generated:,} events; both own input partitions "
        f"{owned} {settled - at:.1f} s after it started"
    )
    run.faults.append(
        run.monitor.fault(
            "worker joins",
            at=at,
            recovered_at=settled,
            partitions=list(range(run.config.partitions)),
            baseline=await run.monitor.fetch_now(),
            generated=run.publisher.stats.generated,
            fraction=join_at,
            join_to_owning_s=round(settled - at, 2),
        )
    )
    await run.at_fraction(kill_at)
    # "One of the two": both must really own input partitions (waits, bounded, if not yet).
    owned = await wait_both_own(run)
    at = time.time()
    await asyncio.to_thread(run.slots.kill, victim)
    baseline = await run.monitor.fetch_now()
    run.log(
        f"killed worker {victim} (it owned input partitions {owned[victim]}; the other owned "
        f"{owned[1 - victim]}) at {run.publisher.stats.generated:,} events; not restarted"
    )
    run.faults.append(
        run.monitor.fault(
            f"kill -9 worker {victim} (no restart)",
            at=at,
            partitions=owned[victim] or list(range(run.config.partitions)),
            baseline=baseline,
            generated=run.publisher.stats.generated,
            fraction=kill_at,
            owned_before=owned,
            victim=victim,
        )
    )


async def drive_broker_restart(run: Run, broker: ChaosBroker) -> None:
    low, high = run.config.fault_window
    point = round(run.rng.uniform(low + 0.15, high - 0.2), 4)
    run.log(f"broker stop + start at fraction {point} (seeded)")
    await run.at_fraction(point)
    at = time.time()
    await asyncio.to_thread(broker.stop)
    baseline = run.monitor.latest()  # the last poll that reached the broker
    stopped = time.time()
    run.log(f"broker stopped in {stopped - at:.1f} s at {run.publisher.stats.generated:,} events; starting it again")
    await asyncio.to_thread(broker.start)
    ready = time.time()
    run.log(f"broker answers again on {broker.bootstrap} ({ready - at:.1f} s after the stop began)")
    run.faults.append(
        run.monitor.fault(
            "broker stop + start",
            at=at,
            recovered_at=ready,
            partitions=list(range(run.config.partitions)),
            baseline=baseline,
            generated=run.publisher.stats.generated,
            fraction=point,
            stop_seconds=round(stopped - at, 2),
            outage_seconds=round(ready - at, 2),
        )
    )


async def drive_nothing(run: Run) -> None:
    return None


# --------------------------------------------------------------------------- one experiment


async def run_experiment(
    name: str,
    bootstrap: str,
    config: ChaosConfig,
    work_dir: Path,
    *,
    broker: ChaosBroker | None = None,
) -> dict[str, Any]:
    """Run one experiment end to end and return its report (also usable from tests)."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose from {', '.join(EXPERIMENTS)}")
    if name == "broker_restart" and broker is None:
        raise ValueError("broker_restart needs a ChaosBroker it may stop and start")
    config = config.for_experiment(name)
    _install_task_dump()
    rng = random.Random(config.seed)
    run_dir = work_dir / name
    run_dir.mkdir(parents=True, exist_ok=True)
    warehouse = name == "poison" and config.warehouse_in_poison
    settings = worker_settings(bootstrap, name, config, run_dir, warehouse=warehouse)
    topics = settings.topics
    await ensure_topics(
        bootstrap,
        [
            TopicSpec(topics.routing_events, config.partitions),
            TopicSpec(topics.feedback, config.partitions),
            TopicSpec(topics.dlq, config.partitions),
            TopicSpec(topics.window_partials, config.partitions),
        ],
    )
    poison: list[Poison] = poison_records(config.seed, settings.app_id) if name == "poison" else []
    placed = sorted(
        ((rng.randrange(int(config.events * 0.05), max(int(config.events * 0.95), 2)), p) for p in poison),
        key=lambda item: item[0],
    )
    slots = WorkerSlots(settings, run_dir)
    group = f"{settings.app_id}-ingest"
    monitor = ProgressMonitor(bootstrap, group, topics.routing_events, slots=slots)
    publisher = PacedPublisher(
        bootstrap,
        topics.routing_events,
        events=config.events,
        rate=config.rate,
        seed=config.seed,
        run_tag=settings.app_id,
        poison=[(i, p) for i, p in placed],
    )
    run = Run(name, config, bootstrap, settings, slots, monitor, publisher, rng)
    run.log(
        f"seed {config.seed}; {config.events:,} events at {config.rate:,.0f}/s; app id {settings.app_id}; "
        f"warehouse {'on' if warehouse else 'off'}; logs in {run_dir}"
    )
    report: dict[str, Any] = {
        "experiment": name,
        "seed": config.seed,
        "app_id": settings.app_id,
        "topic_prefix": settings.topic_prefix,
        "run_dir": str(run_dir),
        "warehouse_enabled": warehouse,
    }
    began = time.monotonic()
    tasks: list[asyncio.Task[Any]] = []
    try:
        slots.start(0)
        ready_s = await wait_ready(run, [0], config.ready_timeout_seconds)
        run.log(f"worker 0 owns all {config.partitions} input partitions after {ready_s:.1f} s")
        monitor.start()
        driver: Callable[[Run], Coroutine[Any, Any, None]] = {
            "kill_restart": drive_kill_restart,
            "scale_out_kill": drive_scale_out_kill,
            "broker_restart": lambda r: drive_broker_restart(r, broker),  # type: ignore[arg-type]
            "poison": drive_nothing,
        }[name]
        publishing = asyncio.create_task(publisher.run())
        faults = asyncio.create_task(driver(run))
        tasks += [publishing, faults]
        await faults
        stats = await publishing
        run.log(
            f"published {stats.generated:,} events (+{stats.poison_sent} poison) in "
            f"{stats.generation_done_at - stats.started_at:.1f} s = {stats.generation_rate:,.0f}/s offered; "
            f"all acknowledged after {stats.acked_all_at - stats.started_at:.1f} s "
            f"({stats.send_failures} send failures retried)"
        )
        drain = await wait_drained(
            bootstrap,
            group,
            topics.routing_events,
            topics.window_partials,
            timeout=config.drain_timeout_seconds,
            anyone_alive=lambda: any(slots.alive(s) for s in slots.slots),
        )
        run.log(f"drain: {drain}")
        await monitor.stop()
        for i, fault in enumerate(run.faults):
            later = [f.at for f in run.faults[i + 1 :] if f.at > fault.at]
            monitor.resolve(fault, until=min(later) if later else None)
            # A fault must hit while traffic flows, and the recovery must happen under load too.
            fault.detail["during_stream"] = fault.at < stats.generation_done_at
            fault.detail["recovered_during_stream"] = fault.recovered_at < stats.generation_done_at
            if not fault.detail["during_stream"]:
                run.log(f"WARNING: fault {fault.kind!r} hit after the publisher had finished (use more events)")
        truth = await ground_truth(
            bootstrap,
            topics.routing_events,
            limits=settings.limits,
            window_seconds=settings.window_seconds,
            track=[(p.key, p.value) for p in poison],
            key_prefix=f"chaos-{settings.app_id}-".encode(),
        )
        # Every event the publisher saw acknowledged must be in the topic (durability of
        # acks=all across the broker restart); retried sends may be there twice.
        missing_acked = sum(1 for key in publisher.acked_keys if key not in truth.keys)
        written_twice = sum(n - 1 for n in truth.keys.values() if n > 1)
        observed = Observed()
        await observe_partials(bootstrap, topics.window_partials, topics.routing_events, into=observed)
        await read_dead_letters(bootstrap, topics.dlq, into=observed)
        verdict = compare(truth, observed)
        slots.check_exits()
        alive = {s: slots.alive(s) for s in slots.slots}
        report.update(
            {
                "publisher": stats.as_dict(),
                "ground_truth": {
                    "records": truth.records,
                    "valid": truth.valid_total,
                    "invalid": len(truth.invalid),
                    "decoder_crashes": len(truth.decoder_crashes),
                    "end_offsets": truth.ends,
                },
                "observed": {
                    "snapshots": observed.snapshots,
                    "partial_keys": observed.partial_keys,
                    "dlq_records": observed.dlq_records,
                },
                "drain": drain,
                "publisher_vs_topic": {
                    "acked_events": len(publisher.acked_keys),
                    "topic_records": truth.records,
                    "acked_missing_from_topic": missing_acked,
                    "events_written_twice": written_twice,
                },
                "verdict": verdict.as_dict(),
                "faults": [f.as_dict() for f in run.faults],
                "workers": {
                    str(s): {
                        "starts": slot.starts,
                        "killed_by_suite": slot.killed,
                        "unexpected_exits": slot.exits,
                        "alive_at_end": alive[s],
                        "web_port": slot.settings.web_port,
                        "log": str(slot.log_path),
                        "log_findings": slots.log_findings(s),
                    }
                    for s, slot in slots.slots.items()
                },
                "worker_exited_by_itself": any(slot.exits for slot in slots.slots.values()),
                "monitor_poll_errors": monitor.errors,
            }
        )
        if poison:
            report["poison"] = poison_outcomes(truth, observed, placed, topics.routing_events)
        report["faults_during_stream"] = all(f.detail["during_stream"] for f in run.faults)
        report["ok"] = bool(
            verdict.ok
            and drain["drained"]
            and not report["worker_exited_by_itself"]
            and not missing_acked
            and not stats.unacked
            and all(p["ok"] for p in report.get("poison", []))
        )
    finally:
        for task in tasks:  # a failed fault driver must not leave the publisher running (and vice versa)
            if not task.done():
                task.cancel()
                try:
                    await task
                except BaseException:  # noqa: BLE001 - cancelled or already failed; reported by the caller
                    pass
        await monitor.stop()
        await asyncio.to_thread(slots.stop_all)
        report["seconds"] = round(time.monotonic() - began, 1)
        report["notes"] = run.notes
    return report


def _install_task_dump() -> None:
    """``kill -USR1 <pid>`` prints every asyncio task's stack (to see what a stuck run waits on)."""
    loop = asyncio.get_running_loop()

    def dump() -> None:
        for task in asyncio.all_tasks(loop):
            print(f"--- task {task.get_name()} ---", file=sys.stderr)
            task.print_stack(limit=12, file=sys.stderr)
        sys.stderr.flush()

    try:
        loop.add_signal_handler(signal.SIGUSR1, dump)
    except (NotImplementedError, RuntimeError, ValueError):
        pass  # not the main thread (e.g. under pytest-xdist): no dump


def poison_outcomes(
    truth: Any, observed: Observed, placed: list[tuple[int, Poison]], topic: str
) -> list[dict[str, Any]]:
    """Where each hostile record went (found in the topic by its exact key and value)."""
    wanted = {(p.key, p.value): p for _, p in placed}
    offsets: dict[str, list[tuple[str, int, int]]] = {p.name: [] for _, p in placed}
    for (key, value), offs in truth.tracked.items():
        p = wanted.get((key, value))
        if p is not None:
            offsets[p.name].extend(offs)
    rows = []
    for index, p in placed:
        offs = offsets[p.name]
        decoder = sorted({truth.invalid.get(o, "valid") for o in offs})
        in_dlq = sum(observed.dlq.get(o, 0) for o in offs)
        reasons = sorted({r for o in offs for r, _ in observed.dlq_reasons.get(o, [])})
        errors_ok = all(reason and err for o in offs for reason, err in observed.dlq_reasons.get(o, []))
        if p.intended == "decoder":  # whatever the decoder says, exactly once (the verdict checks counts)
            invalid = [o for o in offs if o in truth.invalid]
            ok = (
                bool(offs)
                and in_dlq == len(invalid)
                and all(observed.dlq.get(o, 0) == 1 for o in invalid)
                and errors_ok
            )
        elif p.intended == "dlq":
            ok = bool(offs) and all(observed.dlq.get(o, 0) == 1 for o in offs) and errors_ok
        else:
            ok = bool(offs) and in_dlq == 0 and decoder == ["valid"]
        rows.append(
            {
                "name": p.name,
                "intended": p.intended,
                "bytes": p.size,
                "index": index,
                "offsets": [list(o) for o in offs],
                "decoder": decoder,
                "dlq_records": in_dlq,
                "dlq_reasons": reasons,
                "ok": ok,
                "note": p.note,
            }
        )
    return rows


# --------------------------------------------------------------------------- report


def machine_info(config: ChaosConfig, code: str) -> dict[str, Any]:
    import aiokafka
    import faust

    return machine.describe(
        aiokafka=aiokafka.__version__,
        faust=faust.__version__,
        commit=machine.commit(),
        code_under_test=code,
        working_tree_changes=_dirty_files() if "working tree" in code else [],
    )


def _dirty_files() -> list[str]:
    """Uncommitted changes the run included (the code under test was the working tree)."""
    import subprocess

    out = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=_REPO, capture_output=True, text=True
    ).stdout
    return [line[3:] for line in out.splitlines() if line.strip()]


def fmt_s(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} s"


def summary_rows(reports: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for r in reports:
        if "verdict" not in r:
            rows.append([r["experiment"], "–", "–", "–", "–", "–", "–", "–", "–", "ERROR: " + r.get("error", "?")[:80]])
            continue
        v, p = r["verdict"], r["publisher"]
        resumes = (
            "; ".join(
                f"{f['kind']}: both own partitions after {fmt_s(f.get('join_to_owning_s'))}"
                if f["kind"] == "worker joins"
                else f"{f['kind']}: {fmt_s(f['resume_first_s'])} / {fmt_s(f['resume_all_s'])}"
                + (" (next fault came first)" if f.get("interrupted_by_next_fault") else "")
                for f in r["faults"]
            )
            or "–"
        )
        rows.append(
            [
                r["experiment"],
                f"{p['generated']:,} (+{p['poison_acked']} poison) @ {p['generation_rate']:,.0f}/s",
                f"{v['expected_valid']:,} / {v['invalid']:,}",
                f"{v['counted']:,}",
                f"{v['lost']:,}",
                f"{v['double_counted']:,}",
                f"{v['dlq_lost']:,} / {v['dlq_duplicates']:,}",
                "yes" if r["drain"]["drained"] else "NO",
                "PASS" if r["ok"] else "FAIL",
                resumes,
            ]
        )
    return rows


HEADER = [
    "experiment",
    "published",
    "valid / invalid",
    "counted",
    "lost",
    "double",
    "DLQ lost / dup",
    "drained",
    "verdict",
    "resume after fault (first / all partitions)",
]


def render_table(rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(HEADER, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(HEADER), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def render_markdown(result: dict[str, Any]) -> str:
    m, c = result["machine"], result["config"]
    out = [
        "# Chaos suite: nothing lost, nothing counted twice",
        "",
        f"{m['date']} · {m['cpu_count']} CPUs ({m['cpu_model']}) · Python {m['python']} · aiokafka {m['aiokafka']} · "
        f"faust {m['faust']} · commit {m['commit']} · code under test: {m['code_under_test']}",
        "",
        *(
            [f"Uncommitted changes included in the run: {', '.join(m['working_tree_changes'])}", ""]
            if m.get("working_tree_changes")
            else []
        ),
        f"Command: `{result['command']}`",
        "",
        f"Configuration: {c['events']:,} events per experiment at {c['rate']:,.0f}/s offered, seed {c['seed']}, "
        f"{c['partitions']} partitions, BIFROST_SESSION_TIMEOUT_SECONDS={c['session_timeout_seconds']}, "
        f"BIFROST_COMMIT_INTERVAL_SECONDS={c['commit_interval_seconds']}, "
        f"BIFROST_BATCH_WITHIN_SECONDS={c['batch_within_seconds']}, warehouse off except in `poison` "
        f"({'on' if c['warehouse_in_poison'] else 'off'} there), Kafka {result['kafka_version']} "
        f"(single node, local, on {result['broker_bootstrap']}).",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join("---" for _ in HEADER) + "|",
    ]
    out += ["| " + " | ".join(row) + " |" for row in summary_rows(result["experiments"])]
    out += [
        "",
        "Resume = seconds from the restart (worker spawned, broker answering again, or the fault itself when "
        "nothing restarts) until the affected partitions' committed offsets of the ingest group move past "
        "their value at the fault: first partition / all of them.",
        "",
    ]
    for r in result["experiments"]:
        out += [f"## {r['experiment']}", ""]
        if "verdict" not in r:
            out += [f"Error: `{r.get('error')}`", ""]
            continue
        v = r["verdict"]
        out += [
            f"Seed {r['seed']}, app id `{r['app_id']}`, {r['seconds']} s. Publisher: {json.dumps(r['publisher'])}.",
            "",
            f"Drain: {json.dumps(r['drain'])}.",
            "",
        ]
        for f in r["faults"]:
            out.append(f"- fault: {json.dumps(f)}")
        out.append("")
        if v["rows"]:
            out += [
                "Non-zero rows (per router, arm, input partition; compared per window):",
                "",
                "| router | arm | partition | expected | counted | lost | double |",
                "|---|---|---:|---:|---:|---:|---:|",
            ]
            out += [
                f"| {x['router']} | {x['arm']} | {x['partition']} | {x['expected']:,} | {x['counted']:,} | "
                f"{x['lost']:,} | {x['double']:,} |"
                for x in v["rows"]
            ]
            out.append(
                f"| **total** | | | {v['expected_valid']:,} | {v['counted']:,} | {v['lost']:,} | "
                f"{v['double_counted']:,} |"
            )
            out.append("")
        else:
            out += [
                f"No lost or double-counted events: {v['counted']:,} counted = {v['expected_valid']:,} valid offsets.",
                "",
            ]
        pv = r.get("publisher_vs_topic", {})
        out.append(
            f"Publisher vs topic: {pv.get('acked_events', 0):,} valid events acknowledged, "
            f"{pv.get('acked_missing_from_topic', 0)} of them missing from the topic, "
            f"{pv.get('events_written_twice', 0)} written twice by retries (each copy must count)."
        )
        out.append("")
        if r["faults"]:
            out.append(f"Faults during the traffic: {'yes' if r.get('faults_during_stream') else '**no**'}.")
            out.append("")
        out.append(
            f"DLQ: {v['invalid']:,} invalid offsets, {v['dlq_lost']} missing from the DLQ, "
            f"{v['dlq_duplicates']} duplicate dead letters, {v['valid_in_dlq']} valid offsets dead-lettered."
        )
        out.append("")
        for s, w in r["workers"].items():
            lf = w.get("log_findings", {})
            out.append(
                f"- worker {s}: starts {w['starts']}, killed by the suite {w['killed_by_suite']}, "
                "exited by itself "
                f"{len(w['unexpected_exits'])}, alive at end {w['alive_at_end']}, log tracebacks "
                f"{lf.get('tracebacks', 0)}, ERROR lines {lf.get('errors', 0)}"
            )
            if lf.get("first_traceback_tail"):
                out.append(
                    "  first traceback ends: `" + " / ".join(x.strip() for x in lf["first_traceback_tail"])[:600] + "`"
                )
        out.append("")
        if "poison" in r:
            out += [
                "| poison | intended | bytes | decoder says | dead letters | DLQ reason | ok |",
                "|---|---|---:|---|---:|---|---|",
            ]
            out += [
                f"| {p['name']} | {p['intended']} | {p['bytes']:,} | {', '.join(p['decoder'])} | "
                f"{p['dlq_records']} | "
                f"{', '.join(p['dlq_reasons']) or '–'} | {'yes' if p['ok'] else '**NO**'} |"
                for p in r["poison"]
            ]
            out.append("")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- CLI


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, help="valid events per experiment (default 300,000; --quick 100,000)")
    parser.add_argument("--rate", type=float, default=4000.0, help="offered events/s (default 4,000)")
    parser.add_argument(
        "--experiments", default=",".join(EXPERIMENTS), help=f"comma separated: {','.join(EXPERIMENTS)}"
    )
    parser.add_argument("--quick", action="store_true", help="100,000 events per experiment (~25 s of traffic each)")
    parser.add_argument("--seed", type=int, help="master seed (default: random, printed)")
    parser.add_argument(
        "--session-timeout", type=float, default=10.0, help="BIFROST_SESSION_TIMEOUT_SECONDS (default 10)"
    )
    parser.add_argument("--drain-timeout", type=float, default=180.0, help="longest wait for the worker to drain (s)")
    parser.add_argument(
        "--code", help="git revision whose code runs (workers and decoder); default: the installed tree"
    )
    parser.add_argument("--no-warehouse-in-poison", action="store_true", help="keep the warehouse sink off in `poison`")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="output folder (default bench/results)")
    parser.add_argument("--keep", action="store_true", help="keep the broker data and worker logs")
    return parser.parse_args(argv)


def _reexec_with_code(rev: str, argv: Sequence[str]) -> int:
    """Run this script again with ``rev``'s code first on PYTHONPATH."""
    import subprocess

    root = Path(tempfile.mkdtemp(prefix="bifrost-chaos-code-"))
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", rev], cwd=_REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        pkg = code_snapshot(rev, root)
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join([str(pkg), str(_REPO)]),
            BIFROST_CHAOS_CODE=f"{rev} ({sha})",
            BIFROST_CHAOS_COMMAND=" ".join(["bench/chaos.py", *sys.argv[1:]]),
        )
        print(f"code under test: {rev} = {sha}, exported to {root}", flush=True)
        child = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *argv], env=env)
        forward = lambda signum, _frame: child.send_signal(signum)  # noqa: E731 - the child cleans up
        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        return child.wait()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.code and not os.environ.get("BIFROST_CHAOS_CODE"):
        rest = [
            a
            for i, a in enumerate(argv)
            if a != "--code" and (i == 0 or argv[i - 1] != "--code") and not a.startswith("--code=")
        ]
        return _reexec_with_code(args.code, rest)
    # SIGTERM unwinds like Ctrl-C: workers and the broker are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda _s, _f: (_ for _ in ()).throw(KeyboardInterrupt()))
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # thousands of lines while the broker is away
    names = [n.strip() for n in args.experiments.split(",") if n.strip()]
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        print(f"unknown experiments {unknown}; choose from {', '.join(EXPERIMENTS)}", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)
    events = args.events or (100_000 if args.quick else 300_000)
    if args.rate < 3500:
        print(f"note: --rate {args.rate} is below the 3,500/s the suite is specified for", file=sys.stderr)
    config = ChaosConfig(
        events=events,
        rate=args.rate,
        seed=seed,
        session_timeout_seconds=args.session_timeout,
        drain_timeout_seconds=args.drain_timeout,
        warehouse_in_poison=not args.no_warehouse_in_poison,
    )
    code = os.environ.get("BIFROST_CHAOS_CODE", "working tree (installed package)")
    import bifrost.schemas.codec as codec_module

    print(f"chaos: seed {seed}; experiments {names}; config {json.dumps(asdict(config))}", flush=True)
    print(f"chaos: code under test: {code} (bifrost.schemas from {Path(codec_module.__file__).parent})", flush=True)
    work = Path(tempfile.mkdtemp(prefix="bifrost-chaos-"))
    broker = ChaosBroker(work / "kafka")
    reports: list[dict[str, Any]] = []
    try:
        return _run_all(args, argv, names, config, code, seed, work, broker, reports)
    finally:
        broker.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _run_all(
    args: argparse.Namespace,
    argv: list[str],
    names: list[str],
    config: ChaosConfig,
    code: str,
    seed: int,
    work: Path,
    broker: ChaosBroker,
    reports: list[dict[str, Any]],
) -> int:
    try:
        broker.start()
        print(
            f"chaos: broker on {broker.bootstrap} (controller {broker.controller_port}), data {broker.data_dir}",
            flush=True,
        )
        for name in names:
            try:
                if not broker.is_running():
                    broker.start()
                reports.append(asyncio.run(run_experiment(name, broker.bootstrap, config, work, broker=broker)))
            except Exception as exc:  # the other experiments still run; reported
                log.exception("experiment %s failed", name)
                reports.append({"experiment": name, "error": repr(exc)[:500], "ok": False})
    finally:
        broker.stop()
    result = {
        "command": os.environ.get("BIFROST_CHAOS_COMMAND") or " ".join(["bench/chaos.py", *argv]),
        "machine": machine_info(config, code),
        "kafka_version": broker.version,
        "broker_bootstrap": broker.bootstrap,
        "config": {
            **asdict(config),
            "experiments": names,
            "routers": list(ROUTERS),
            "arm_weights": ARMS,
            "worker_settings": "BIFROST_PARTITIONS=8, one BIFROST_WEB_PORT per worker slot (kept across restarts), "
            "BIFROST_STORE=memory://, BIFROST_WAREHOUSE_ENABLED=false (poison: true)",
        },
        "experiments": reports,
        "ok": all(r.get("ok") for r in reports),
    }
    rows = summary_rows(reports)
    print()
    print(render_table(rows))
    for r in reports:
        rows_ = r.get("verdict", {}).get("rows", [])
        for row in rows_[:12]:
            print(
                f"  {r['experiment']}: {row['router']}/{row['arm']} partition {row['partition']}: "
                f"expected {row['expected']:,}, "
                f"counted {row['counted']:,}, lost {row['lost']:,}, double {row['double']:,}"
            )
        if len(rows_) > 12:
            print(f"  {r['experiment']}: ... {len(rows_) - 12} more non-zero rows in the report")
        bad = [p for p in r.get("poison", []) if not p["ok"]]
        for p in bad[:8]:
            print(
                f"  poison NOT ok: {p['name']}: decoder says {p['decoder']}, dead letters "
                f"{p['dlq_records']}, offsets {p['offsets']}"
            )
        if len(bad) > 8:
            print(f"  ... {len(bad) - 8} more poison records not handled as intended (see the report)")
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "chaos.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (args.results / "chaos.md").write_text(render_markdown(result))
    print(
        f"\nwrote {args.results / 'chaos.md'} and {args.results / 'chaos.json'}; work dir {work}"
        f"{' (kept)' if args.keep else ' (removed)'}"
    )
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
