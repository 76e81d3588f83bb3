"""Prometheus metrics of the worker (served at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

INGESTED = Counter(
    "bifrost_ingest_events_total",
    "Input records folded into window tables, by topic.",
    ["topic"],
    registry=REGISTRY,
)
DUPLICATES = Counter(
    "bifrost_ingest_duplicates_total",
    "Re-delivered input records skipped because their offset was already folded.",
    ["topic"],
    registry=REGISTRY,
)
REJECTED = Counter(
    "bifrost_dlq_events_total",
    "Input records sent to the DLQ, by topic and reason.",
    ["topic", "reason"],
    registry=REGISTRY,
)
BATCH_SECONDS = Histogram(
    "bifrost_ingest_batch_seconds",
    "Time to fold one batch and hand its writes to the commit lanes.",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
TRANSACTION_SECONDS = Histogram(
    "bifrost_ingest_transaction_seconds",
    "Duration of one input partition's ingest transaction (writes, offsets, commit).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    "bifrost_ingest_batch_records",
    "Records per ingest batch.",
    buckets=(1, 10, 100, 1000, 5000, 10000, 50000),
    registry=REGISTRY,
)
PARTIALS_MERGED = Counter(
    "bifrost_rollup_partials_total",
    "Window partials merged into per-router tables, by outcome (stored, stale).",
    ["outcome"],
    registry=REGISTRY,
)
LIVE_WINDOWS = Gauge(
    "bifrost_live_window_partials",
    "Window partial records held by this worker.",
    ["stage"],
    registry=REGISTRY,
)
ROLLBACKS = Counter(
    "bifrost_rollout_rollbacks_total",
    "Rollbacks decided by this worker's controllers, by router and gate (forced ones: gate=manual).",
    ["router", "gate"],
    registry=REGISTRY,
)
COMMANDS = Counter(
    "bifrost_rollout_commands_total",
    "Rollout commands handled, by kind and outcome.",
    ["kind", "outcome"],
    registry=REGISTRY,
)
CONSUMER_LAG_MESSAGES = Gauge(
    "bifrost_consumer_lag_messages",
    "Records a consumer group still has to read, per partition (read_committed log end minus committed offset, "
    "transaction markers excluded).",
    ["group", "topic", "partition"],
    registry=REGISTRY,
)
CONSUMER_LAG_SECONDS = Gauge(
    "bifrost_consumer_lag_seconds",
    "Age of the next record a consumer group has not consumed, per partition (0 when caught up; NaN when unknown).",
    ["group", "topic", "partition"],
    registry=REGISTRY,
)
CONSUMER_GROUP_STATUS = Gauge(
    "bifrost_consumer_group_status",
    "1 for a consumer group's current lag status (OK, WARN, STALL, ERR, STOP), 0 for the others.",
    ["group", "status"],
    registry=REGISTRY,
)
