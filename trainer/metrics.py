"""Prometheus metrics of the trainer service, on its own HTTP endpoint.

The trainer is a separate process (it shares only ``schemas/``, ``router/`` and
``kafka/`` with the workers), so it serves its own ``/metrics`` with
prometheus_client (:class:`bifrost.common.metrics_endpoint.MetricsEndpoint`) on ``BIFROST_TRAINER_METRICS_HOST``:
``BIFROST_TRAINER_METRICS_PORT`` (127.0.0.1:6067; port 0 turns it off). A port already
taken is logged and the trainer runs on without metrics: metrics never stop training.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from bifrost.common.metrics_endpoint import MetricsEndpoint

log = logging.getLogger("bifrost.trainer")

REGISTRY = CollectorRegistry(auto_describe=True)

RUNS = Counter(
    "bifrost_trainer_runs_total",
    "Training runs, by outcome: published (stored and announced), rejected (data quality or validation), "
    "skipped (nothing to train on yet), failed (an unexpected error).",
    ["outcome"],
    registry=REGISTRY,
)
RUN_SECONDS = Histogram(
    "bifrost_trainer_run_duration_seconds",
    "Wall time of a training run (data loading to publication), by outcome.",
    ["outcome"],
    buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
    registry=REGISTRY,
)
RUNNING = Gauge("bifrost_trainer_run_in_progress", "1 while a training run is in progress.", registry=REGISTRY)
LAST_RUN = Gauge(
    "bifrost_trainer_last_run_timestamp_seconds",
    "When the last run with each outcome ended (epoch seconds).",
    ["outcome"],
    registry=REGISTRY,
)
IGNORED = Counter(
    "bifrost_trainer_triggers_ignored_total",
    "Trigger records not trained on, by reason: duplicate (an id already handled), invalid (undecodable).",
    ["reason"],
    registry=REGISTRY,
)
ARTIFACT = Gauge(
    "bifrost_trainer_artifact_info",
    "The current version of the trainer's artifact store (always 1).",
    ["version"],
    registry=REGISTRY,
)

ENDPOINT = MetricsEndpoint(
    REGISTRY, log, "trainer.metrics", note="set BIFROST_TRAINER_METRICS_PORT to a free port (0: off)"
)
#: Start the ``/metrics`` endpoint once per process; False when off or the port is taken.
serve = ENDPOINT.serve


@dataclass(slots=True)
class RunRecord:
    """Filled in by the caller: the run's outcome (``failed`` if it raised)."""

    outcome: str = "failed"


@contextmanager
def training_run() -> Iterator[RunRecord]:
    """Time one run and count it by the outcome the caller sets (``failed`` when it raised)."""
    record = RunRecord()
    started = time.monotonic()
    RUNNING.set(1)
    try:
        yield record
    except BaseException:
        record.outcome = "failed"
        raise
    finally:
        RUNNING.set(0)
        RUNS.labels(record.outcome).inc()
        RUN_SECONDS.labels(record.outcome).observe(time.monotonic() - started)
        LAST_RUN.labels(record.outcome).set(time.time())


def set_current_artifact(version: str | None) -> None:
    """Show ``version`` as the store's current one (no series when there is none)."""
    ARTIFACT.clear()
    if version:
        ARTIFACT.labels(version).set(1)
