"""The usage timeline of one token: a page of ``usage_log`` rows after a position (keyset pagination).

Positions are drawn in commit order (see migration 0005), so the rows a reader sees are a prefix of
the log and ``position > after`` never skips a row that commits later. A row is there once the
recording process has flushed it (``TOKENLEDGER_USAGE_FLUSH_SECONDS``, default 1 s).
"""

from datetime import datetime

import asyncpg
import msgspec

_PAGE_SQL = """
SELECT position, occurred_at, outcome, reason, operation, client_address, user_agent
FROM usage_log
WHERE token_id = $1::uuid AND position > $2
  AND ($3::timestamptz IS NULL OR occurred_at >= $3)
  AND ($4::timestamptz IS NULL OR occurred_at < $4)
  AND ($5::text IS NULL OR outcome = $5)
ORDER BY position
LIMIT $6
"""

_EXISTS_SQL = """
SELECT EXISTS (SELECT 1 FROM rm_tokens WHERE token_id = $1::uuid AND account_id = $2::uuid)
"""


class UsageSelection(msgspec.Struct, frozen=True, kw_only=True):
    """Which rows: after ``after`` (a position, 0 for the start), at most ``limit``."""

    limit: int
    after: int = 0
    occurred_from: datetime | None = None
    """Inclusive."""
    occurred_before: datetime | None = None
    """Exclusive."""
    outcome: str | None = None


async def token_exists(pool: asyncpg.Pool, account_id: str, token_id: str) -> bool:
    """Whether the account has, or had, this token: a deleted token's history stays readable."""
    exists: bool = await pool.fetchval(_EXISTS_SQL, token_id, account_id)
    return exists


async def usage_page(pool: asyncpg.Pool, token_id: str, selection: UsageSelection) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(
        _PAGE_SQL,
        token_id,
        selection.after,
        selection.occurred_from,
        selection.occurred_before,
        selection.outcome,
        selection.limit,
    )
    return rows
