"""Appending to and reading from the event log (asyncpg).

``append`` checks and encodes the request in Python (``services.append_request``, shared with the
in-memory store, so bad input never reaches the database), then makes one call to the ``tl_append``
SQL function, which locks the streams, checks expected versions, takes uniqueness claims and
inserts the events in one transaction; appends that arrive while another is in flight are merged
into one such call, each keeping its own outcome (``services.eventstore.group_commit``).
Once an append has committed, the store's ``CommitNotices`` wakes the log's readers
(``services.eventstore.commit_notices``).

Should the driver or the database still refuse an argument for its content (an encoding error, a
data exception), that is ``InvalidAppend`` too: nothing was written, and the same append would be
refused again.
"""

import sys
import time
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from events import LogCursor, NewEvent, RecordedEvent
from services import metrics
from services.append_request import append_request
from services.eventstore.commit_notices import CommitNotices
from services.eventstore.errors import translate
from services.eventstore.group_commit import GroupCommit
from services.eventstore.rows import EVENT_COLUMNS, recorded_event
from services.ports import (
    AppendedEvent,
    AppendResult,
    Claim,
    ExpectedVersion,
    InvalidAppend,
    StreamAppend,
)


class PostgresEventStore:
    """The log. Holds a pool; each method uses one connection for one statement. ``announce``:
    NOTIFY the log's readers after each append; ``group_commit``: merge the appends that wait for
    one in flight into one transaction (both off only to measure what they cost or save)."""

    def __init__(self, pool: asyncpg.Pool, *, announce: bool = True, group_commit: bool = True) -> None:
        self._pool = pool
        self._appends = GroupCommit(pool, in_flight=1 if group_commit else sys.maxsize)
        self.notices = CommitNotices(pool) if announce else None

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected: ExpectedVersion,
        *,
        claims: Sequence[Claim] = (),
        releases: Sequence[str] = (),
    ) -> AppendResult:
        return await self.append_many([StreamAppend(stream_id, tuple(events), expected)], claims, releases)

    async def append_many(
        self,
        appends: Sequence[StreamAppend],
        claims: Sequence[Claim] = (),
        releases: Sequence[str] = (),
    ) -> AppendResult:
        """Appends to several streams atomically (e.g. an account's deletion and its tokens'
        revocations). Each stream may appear once."""
        request = append_request(appends, claims, releases)
        started = time.perf_counter()
        result = "error"
        try:
            rows = await self._appends.append(request)
            result = "ok"
        except asyncpg.PostgresError as error:
            typed = translate(error)
            if typed is None:
                raise
            result = "refused"
            raise typed from None
        except ValueError as error:
            # The driver could not encode an argument (UnicodeEncodeError, its DataError): nothing
            # was sent, and the same append would fail the same way.
            result = "refused"
            raise InvalidAppend(f"the append cannot be stored: {error}") from None
        finally:
            metrics.APPEND_LATENCY.labels(result).observe(time.perf_counter() - started)
        order = {event_id: n for n, event_id in enumerate(request.event_ids)}
        appended = tuple(
            sorted(
                (
                    AppendedEvent(r["event_id"], r["global_position"], r["stream_version"], r["tx_id"])
                    for r in rows
                ),
                key=lambda e: order[e.event_id],
            )
        )
        answer = AppendResult(appended)
        if self.notices is not None and appended:
            self.notices.committed(answer.cursor)
        return answer

    async def read_stream(
        self, stream_id: str, from_version: int = 1, *, until: datetime | None = None
    ) -> list[RecordedEvent]:
        """A stream's events from ``from_version`` on, in version order; with ``until``, only those
        recorded at or before that instant."""
        rows = await self._pool.fetch(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND stream_version >= $2"  # noqa: S608
            " AND ($3::timestamptz IS NULL OR recorded_at <= $3) ORDER BY stream_version",
            stream_id,
            from_version,
            until,
        )
        return [recorded_event(r) for r in rows]

    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version; 0 when it does not exist."""
        version: int | None = await self._pool.fetchval(
            "SELECT version FROM streams WHERE stream_id = $1", stream_id
        )
        return version or 0

    async def read_all(self, after: LogCursor, limit: int = 1000) -> list[RecordedEvent]:
        """Committed events past ``after`` in commit-safe order; never returns an event while an
        older transaction that could still write a preceding one is running."""
        rows = await self._pool.fetch(SAFE_READ_SQL, after.tx_id, after.position, limit)
        return [recorded_event(r) for r in rows]

    async def claims_with_prefix(self, prefix: str) -> dict[str, str]:
        """Claims whose key starts with ``prefix``, mapped to the stream holding each."""
        rows = await self._pool.fetch(
            "SELECT claim, stream_id FROM uniqueness_claims WHERE claim LIKE $1 || '%'",
            prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_"),
        )
        return {row["claim"]: row["stream_id"] for row in rows}

    async def claim_owner(self, key: str) -> str | None:
        owner: str | None = await self._pool.fetchval(
            "SELECT stream_id FROM uniqueness_claims WHERE claim = $1", key
        )
        return owner


async def release_claims_below(pool: asyncpg.Pool, prefix: str, bound: str) -> int:
    """Deletes the claims whose key starts with ``prefix`` and sorts below ``bound`` (byte order,
    the prefix index's); how many. Only for claims no decision can depend on any more (an
    id-token's, once past its expiry): it runs outside an append, since no event changes with them."""
    if not bound.startswith(prefix):
        raise ValueError("the bound must start with the prefix")
    result: str = await pool.execute(
        "DELETE FROM uniqueness_claims WHERE claim ~>=~ $1 AND claim ~<~ $2", prefix, bound
    )
    return int(result.rsplit(" ", 1)[1])


SAFE_READ_SQL = (
    f"SELECT {EVENT_COLUMNS} FROM events"  # noqa: S608 (a constant column list)
    " WHERE (tx_id, global_position) > ($1::bigint::text::xid8, $2::bigint)"
    " AND tx_id < pg_snapshot_xmin(pg_current_snapshot())"
    " ORDER BY events.tx_id, events.global_position LIMIT $3"  # the column, not the bigint alias
)
