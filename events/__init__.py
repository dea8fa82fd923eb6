"""The contract of the event log and of everything that reads it (projections, Kafka consumers).

This package imports nothing else of ours. Every event is a frozen msgspec Struct with an explicit,
stable tag (``"token.revoked"``); the tag is what the log stores in its ``type`` column and what
CloudEvents consumers see as ``io.tokenledger.<tag>``. Evolution rule: a tag never changes meaning,
new fields only arrive with defaults, and a field is never removed or retyped, so every event ever
written still decodes with today's classes (no upcasters are needed while that rule holds).
"""

from events.base import Event, PrivateFields
from events.envelope import LogCursor, Metadata, NewEvent, RecordedEvent
from events.frozen import FrozenMap
from events.registry import (
    decode_event,
    encode_event,
    event_from_data,
    event_type,
    public_data,
    registered_tags,
)

__all__ = [
    "Event",
    "FrozenMap",
    "LogCursor",
    "Metadata",
    "NewEvent",
    "PrivateFields",
    "RecordedEvent",
    "decode_event",
    "encode_event",
    "event_from_data",
    "event_type",
    "public_data",
    "registered_tags",
]
