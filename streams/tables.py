"""Faust table variants our state needs."""

from __future__ import annotations

from typing import Any, Optional

import faust

from bifrost.streams.aggregates.partial import partition_of_key


class PartitionKeyedTable(faust.Table):
    """A table whose keys name the input partition they belong to.

    Faust writes a changelog record to the partition of the event being processed.
    The ingest agent folds a whole batch (records of many partitions) before writing,
    so the partition comes from the key instead; the result is the same co-partitioning
    (each input partition's state lives in the same changelog partition) without
    funnelling writes through one event.
    """

    def partition_for_key(self, key: Any) -> Optional[int]:
        return partition_of_key(key)
