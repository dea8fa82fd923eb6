"""``tokenledger audit export``: the log as JSON lines, one event per line, for a SIEM.

Each line holds ``event_id, type, stream_id, stream_version, position, occurred_at, recorded_at,
actor, metadata`` and ``data``: ``actor`` is ``{"account_id", "token_id"}`` as in ``GET
/v3/audit/events``, every timestamp is RFC 3339 UTC with ``Z``, and a line is compact JSON (no
space between tokens); ``data`` is the event's public data, i.e. its stored data without the fields
its class declares private (``Event.private_fields``, what ``events.registry.public_data`` drops),
so ``secret_hash`` never leaves. The database writes the lines (PostgreSQL's JSON of the stored
values), a page of them as one text value, and Python only compacts each line (``msgspec.json.format``,
no object per event): that is what makes the export fast and its memory flat. Unlike
``public_data`` of a decoded event, a field added to an event class after an event was stored is
absent from that event's line rather than present with its default. A type this code does not
know stops the export (its private fields are unknown).

Events come in log order ((tx_id, position), as tailers read) by keyset pagination over
``events_commit_order``: one short statement per page, no long transaction, memory bounded by one
page whatever the size of the log. The export stops at the committed prefix that existed when it
started (transactions older than every one then running), so it neither waits for nor races with
writers, and it ends.

Filters. ``--from`` / ``--to`` select on ``recorded_at``, the database's clock in the append
transaction (covered by the hash chain), not on ``occurred_at``, which the command supplies: a SIEM
window should not miss an event whose command claimed another time. ``from`` is inclusive, ``to``
exclusive. ``--account ID`` keeps the events whose ``data.account_id`` is ID (the account's own
stream, its tokens' events, its team memberships) and any other event of ``account-<ID>``. Filters do
not use an index: a filtered export reads the whole log, still in constant memory.
"""

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from events import Metadata, event_type, registered_tags
from events.registry import UnknownEventType

PAGE_SIZE = 5000
RFC3339_UTC = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'
"""``to_char`` format of a timestamptz in a UTC session: RFC 3339 with ``Z``."""

_PAGE_SQL = """
WITH page AS MATERIALIZED (
    SELECT e.tx_id, e.global_position, e.type, e.type = ANY ($8::text[]) AS known,
           concat('{"event_id":"', e.event_id, '","type":', to_json(e.type),
                  ',"stream_id":', to_json(e.stream_id), ',"stream_version":', e.stream_version,
                  ',"position":', e.global_position, ',"occurred_at":', e.metadata -> 'occurred_at',
                  ',"recorded_at":', to_json(to_char(e.recorded_at, $10)),
                  ',"actor":', json_build_object('account_id', e.metadata -> 'actor',
                                                 'token_id', e.metadata -> 'actor_token_id'),
                  ',"metadata":', e.metadata,
                  ',"data":', e.data - $9::text[], '}') AS line
    FROM events e
    WHERE (e.tx_id, e.global_position) > ($1::bigint::text::xid8, $2::bigint)
      AND e.tx_id < $3::bigint::text::xid8
      AND ($4::timestamptz IS NULL OR e.recorded_at >= $4)
      AND ($5::timestamptz IS NULL OR e.recorded_at < $5)
      AND ($6::text IS NULL OR e.data ->> 'account_id' = $6 OR e.stream_id = 'account-' || $6)
    ORDER BY e.tx_id, e.global_position
    LIMIT $7
), last AS (
    SELECT p.tx_id, p.global_position FROM page p ORDER BY p.tx_id DESC, p.global_position DESC LIMIT 1
)
SELECT (SELECT count(*) FROM page) AS events,
       (SELECT l.tx_id::text::bigint FROM last l) AS tx_id,
       (SELECT l.global_position FROM last l) AS global_position,
       (SELECT min(p.type) FROM page p WHERE NOT p.known) AS unknown_type,
       (SELECT string_agg(p.line || E'\\n', '' ORDER BY p.tx_id, p.global_position) FROM page p) AS lines
"""
_CEILING_SQL = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"


class ExportFilter(msgspec.Struct, frozen=True, kw_only=True):
    recorded_from: datetime | None = None
    recorded_to: datetime | None = None
    account_id: str | None = None


EVERYTHING = ExportFilter()


class ExportedActor(msgspec.Struct, frozen=True, kw_only=True):
    account_id: str | None
    token_id: str | None


class ExportedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One line of an export, as ``audit import`` reads it."""

    event_id: uuid.UUID
    type: str
    stream_id: str
    stream_version: int
    position: int
    occurred_at: datetime
    recorded_at: datetime
    actor: ExportedActor | str | None
    """``{"account_id", "token_id"}``; a bare string in exports of earlier releases."""
    metadata: Metadata
    data: dict[str, Any]


def compact_lines(lines: str) -> bytes:
    """Newline-terminated JSON lines without the spaces PostgreSQL's jsonb text puts after ``:``
    and ``,`` (inside strings nothing changes)."""
    return b"".join(
        [msgspec.json.format(line, indent=-1) + b"\n" for line in lines.encode().split(b"\n") if line]
    )


def private_field_names() -> list[str]:
    """Every field name any event class declares private."""
    return sorted({name for tag in registered_tags() for name in event_type(tag).private_fields})


async def export_pages(pool: asyncpg.Pool, selection: ExportFilter = EVERYTHING) -> AsyncIterator[bytes]:
    """The export as chunks of newline-terminated JSON lines, one chunk per page. Each page comes
    from the server as one text value: no Python object per event, so memory stays flat."""
    known, private = registered_tags(), private_field_names()
    async with pool.acquire() as connection:
        await connection.execute("SET TimeZone = 'UTC'")  # to_json(recorded_at); RESET on release
        ceiling: int = await connection.fetchval(_CEILING_SQL)
        statement = await connection.prepare(_PAGE_SQL)
        after: tuple[int, int] = (0, 0)
        while True:
            page = await statement.fetchrow(
                *after,
                ceiling,
                selection.recorded_from,
                selection.recorded_to,
                selection.account_id,
                PAGE_SIZE,
                known,
                private,
                RFC3339_UTC,
            )
            if page["unknown_type"] is not None:
                raise UnknownEventType(f"unknown event type {page['unknown_type']!r}: not exported")
            if page["events"]:
                yield compact_lines(page["lines"])
            if page["events"] < PAGE_SIZE:
                return
            after = (page["tx_id"], page["global_position"])
