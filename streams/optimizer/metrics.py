"""Prometheus metrics of the optimizer (on the worker's ``/metrics``). Labels are bounded: kinds and outcomes."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from bifrost.streams.observability import REGISTRY

ANALYSES = Counter(
    "bifrost_optimizer_analyses_total",
    "Scheduled optimizer analyses of the routers this worker owns, by outcome (ok, failed, skipped: too few requests).",
    ["outcome"],
    registry=REGISTRY,
)
ANALYSIS_SECONDS = Histogram(
    "bifrost_optimizer_analysis_duration_seconds",
    "Wall time of one analysis (tables, warehouse, counterfactual replay, rules).",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
    registry=REGISTRY,
)
RECOMMENDATIONS = Counter(
    "bifrost_optimizer_recommendations_total",
    "Recommendations of scheduled analyses, by kind and outcome (published; suppressed: already on the topic).",
    ["kind", "outcome"],
    registry=REGISTRY,
)
APPLIED = Counter(
    "bifrost_optimizer_apply_commands_total",
    "Apply commands handled, by outcome (accepted, already_applied, refused, unauthorized, invalid).",
    ["outcome"],
    registry=REGISTRY,
)
