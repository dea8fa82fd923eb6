"""``tokenledger audit export-usage``: the usage log (every token verification) as JSON lines.

The usage log is the event log's high-volume companion (migration 0005): exported apart from the
events, in its own order, with its own cursor. Each line holds ``position, occurred_at,
recorded_at, outcome, reason, token_id, account_id, presented_hash`` (hex, for a presented value
that named no token; never the value), ``operation, client_address, user_agent``, and
``federated_credential_id, issuer`` (a refused token exchange's, migration 0009; null on every other
row); timestamps are RFC 3339 UTC with ``Z``, lines compact JSON. The database writes each line;
Python compacts and joins them (as ``services.audit.export`` does).

Rows come in position order by keyset pagination over the primary key: one short statement per
page, memory bounded by one page. Positions are drawn in commit order, so the log a reader sees is
a prefix; the export stops at the last position that existed when it started, so it ends and never
races with writers. ``--after POSITION`` resumes after a previous export (a SIEM shipping the log
incrementally keeps the last position it received).

Filters: ``--from`` / ``--to`` select on ``recorded_at`` (the database's clock when the row was
stored; inclusive, exclusive), like the event export; ``--account ID`` keeps that account's rows.
Filters do not use an index: a filtered export reads the whole log, still in constant memory.
"""

from collections.abc import AsyncIterator
from datetime import datetime

import asyncpg
import msgspec

from services.audit.export import RFC3339_UTC, compact_lines

PAGE_SIZE = 5000

_PAGE_SQL = """
SELECT u.position,
       json_build_object(
           'position', u.position, 'occurred_at', to_char(u.occurred_at, $7),
           'recorded_at', to_char(u.recorded_at, $7),
           'outcome', u.outcome, 'reason', u.reason, 'token_id', u.token_id,
           'account_id', u.account_id, 'presented_hash', encode(u.presented_hash, 'hex'),
           'operation', u.operation, 'client_address', u.client_address,
           'user_agent', u.user_agent, 'federated_credential_id', u.federated_credential_id,
           'issuer', u.issuer)::text AS line
FROM usage_log u
WHERE u.position > $1 AND u.position <= $2
  AND ($3::timestamptz IS NULL OR u.recorded_at >= $3)
  AND ($4::timestamptz IS NULL OR u.recorded_at < $4)
  AND ($5::uuid IS NULL OR u.account_id = $5)
ORDER BY u.position
LIMIT $6
"""
_CEILING_SQL = "SELECT coalesce(max(position), 0) FROM usage_log"


class UsageExportFilter(msgspec.Struct, frozen=True, kw_only=True):
    after: int = 0
    recorded_from: datetime | None = None
    recorded_to: datetime | None = None
    account_id: str | None = None


EVERYTHING = UsageExportFilter()


async def export_usage_pages(
    pool: asyncpg.Pool, selection: UsageExportFilter = EVERYTHING, *, page_size: int = PAGE_SIZE
) -> AsyncIterator[bytes]:
    """The export as chunks of newline-terminated JSON lines, one chunk per non-empty page."""
    async with pool.acquire() as connection:
        await connection.execute("SET TimeZone = 'UTC'")  # timestamps in the lines; RESET on release
        ceiling: int = await connection.fetchval(_CEILING_SQL)
        statement = await connection.prepare(_PAGE_SQL)
        after = selection.after
        while after < ceiling:
            page: list[asyncpg.Record] = await statement.fetch(
                after,
                ceiling,
                selection.recorded_from,
                selection.recorded_to,
                selection.account_id,
                page_size,
                RFC3339_UTC,
            )
            if page:
                yield compact_lines("\n".join([row["line"] for row in page]))
            if len(page) < page_size:
                return
            after = page[-1]["position"]
