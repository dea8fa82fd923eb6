"""One stored event row -> ``RecordedEvent``: the one decoder every reader of the ``events`` table uses
(the store's reads, the as-of replay, the audit API, the benchmarks).

``EVENT_COLUMNS`` selects the row the decoder expects from ``events`` (``tx_id`` as a bigint, ``data``
and ``metadata`` as JSON text); ``recorded_event`` decodes it. No driver is imported: a row is anything
indexable by column name (an asyncpg ``Record``, a dict).
"""

from typing import Any, Protocol

import msgspec

from events import Metadata, RecordedEvent, decode_event

EVENT_COLUMNS = (
    "global_position, tx_id::text::bigint AS tx_id, stream_id, stream_version, event_id, type,"
    " data::text AS data, metadata::text AS metadata, recorded_at"
)

_metadata_decoder = msgspec.json.Decoder(Metadata)


class EventRow(Protocol):
    def __getitem__(self, column: str, /) -> Any: ...


def recorded_event(row: EventRow) -> RecordedEvent:
    return RecordedEvent(
        global_position=row["global_position"],
        tx_id=row["tx_id"],
        stream_id=row["stream_id"],
        stream_version=row["stream_version"],
        event_id=row["event_id"],
        event=decode_event(row["type"], row["data"]),
        metadata=_metadata_decoder.decode(row["metadata"]),
        recorded_at=row["recorded_at"],
    )
