"""The delivery in flight at one endpoint, kept in a file so a restart resumes it.

The consumer commits an alert's offset only once the alert was delivered or
dead-lettered, so Kafka already says which alert is next after a restart. This file adds
what Kafka cannot hold: how many attempts the alert in flight has had, since when, and
when the next is due — so a restarted deliverer neither restarts the retry budget (a
receiver down for good still ends in the DLQ) nor retries sooner than the backoff
allows. Written atomically with the project's helper; one file per endpoint group.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from bifrost.common.files import write_atomic


class InFlight(msgspec.Struct, frozen=True, kw_only=True):
    """One alert being delivered to one endpoint."""

    topic: str
    partition: int
    offset: int
    msg_id: str
    attempts: int = 0
    first_attempt_at: float = 0.0
    next_attempt_at: float = 0.0
    last_error: str = ""

    def same_record(self, topic: str, partition: int, offset: int) -> bool:
        return (self.topic, self.partition, self.offset) == (topic, partition, offset)


class DeliveryState:
    """``<dir>/<group>.json``: the in-flight delivery of one endpoint's consumer group, or nothing."""

    def __init__(self, folder: str | Path, group: str) -> None:
        self.path = Path(folder) / f"{group}.json"

    def load(self) -> InFlight | None:
        try:
            return msgspec.json.decode(self.path.read_bytes(), type=InFlight)
        except (FileNotFoundError, msgspec.DecodeError):
            return None  # none, or damaged: the committed offset still says which alert is next

    def save(self, state: InFlight) -> None:
        write_atomic(self.path, msgspec.json.encode(state))

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
