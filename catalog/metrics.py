"""Prometheus metrics of ``bifrost-opt refresher`` (catalog refreshes and webhook deliveries).

Served on ``BIFROST_REFRESHER_METRICS_HOST``:``BIFROST_REFRESHER_METRICS_PORT``
(127.0.0.1:6068; 0 turns it off; a port in use is logged and the refresher runs on).
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge

from bifrost.common.metrics_endpoint import MetricsEndpoint

log = logging.getLogger("bifrost.catalog")

REGISTRY = CollectorRegistry(auto_describe=True)

REFRESHES = Counter(
    "bifrost_catalog_refreshes_total",
    "Catalog refreshes by mode (full, quick, rollback) and outcome (published, unpublished, skipped).",
    ["mode", "outcome"],
    registry=REGISTRY,
)
PROVIDER_FETCHES = Counter(
    "bifrost_catalog_provider_fetches_total",
    "Provider list fetches by source and outcome (ok, failed, skipped).",
    ["source", "outcome"],
    registry=REGISTRY,
)
ENTRIES = Gauge(
    "bifrost_catalog_entries",
    "Entries of the current snapshot by source and state (available, unavailable, stale).",
    ["source", "state"],
    registry=REGISTRY,
)
CHANGES = Counter(
    "bifrost_catalog_changes_total",
    "Drift events published, by kind and whether they were significant.",
    ["kind", "significant"],
    registry=REGISTRY,
)
LAST_REFRESH = Gauge(
    "bifrost_catalog_last_refresh_timestamp_seconds",
    "When the last refresh of each mode was published (epoch seconds).",
    ["mode"],
    registry=REGISTRY,
)
SOURCE_FRESH = Gauge(
    "bifrost_catalog_source_fetched_timestamp_seconds",
    "When each source last answered (epoch seconds): its entries are this old.",
    ["source"],
    registry=REGISTRY,
)
WEBHOOK_DELIVERIES = Counter(
    "bifrost_webhook_deliveries_total",
    "Alerts handled per endpoint id and outcome (delivered, dead_lettered).",
    ["endpoint", "outcome"],
    registry=REGISTRY,
)
WEBHOOK_ATTEMPTS = Counter(
    "bifrost_webhook_attempts_total",
    "Delivery attempts per endpoint id and result (2xx, 4xx, 5xx, error).",
    ["endpoint", "result"],
    registry=REGISTRY,
)

ENDPOINT = MetricsEndpoint(REGISTRY, log, "refresher.metrics")
#: Start the ``/metrics`` endpoint once per process; False when off or the port is taken.
serve = ENDPOINT.serve
