"""Consumer-lag monitor: lag per group and partition, in records and seconds, with Burrow-like statuses.

- :mod:`.rules` — the pure part: samples, sliding windows, the status rules, reports.
- :mod:`.probe` — reads lag from Kafka (committed offsets, read_committed log ends, the
  timestamp of the next unconsumed record) without joining any group.
- :mod:`.monitor` — the worker's background sampler: Prometheus gauges, alerts.
"""

from bifrost.streams.lag.rules import GroupReport, GroupSnapshot, LagStatus, LagWindows, PartitionLag, PartitionReport

__all__ = ["GroupReport", "GroupSnapshot", "LagStatus", "LagWindows", "PartitionLag", "PartitionReport"]
