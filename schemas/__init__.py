"""The wire contract of bifrost-optimizer: event types, validation, codec, topic names.

No Kafka and no I/O here; every other package imports this one.
"""

from bifrost.schemas.codec import EventDecoder, InvalidEvent, Limits, encode
from bifrost.schemas.dlq import DeadLetter, RejectReason
from bifrost.schemas.events import SCHEMA_VERSION, Bucket, FeedbackEvent, Outcome, RoutingEvent
from bifrost.schemas.jsonschema import json_schema
from bifrost.schemas.topics import Topics

__all__ = [
    "SCHEMA_VERSION",
    "Bucket",
    "DeadLetter",
    "EventDecoder",
    "FeedbackEvent",
    "InvalidEvent",
    "Limits",
    "Outcome",
    "RejectReason",
    "RoutingEvent",
    "Topics",
    "encode",
    "json_schema",
]
