"""The console's reads of the read models and the logs that the API has no listing for: the accounts
list with its summary columns and filters, an account's roles with where they come from, team
members, the usage chart, and the hash chain's sealing status. Every value is a bound parameter;
only trusted constant fragments are joined into the SQL text.
"""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from services.eventstore.rows import EVENT_COLUMNS

PAGE_SIZE = 20
EXPIRING_WITHIN = timedelta(days=7)
UNUSED_FOR = timedelta(days=90)
CHART_DAYS = 7


class AccountFilter(msgspec.Struct, frozen=True, kw_only=True):
    search: str = ""
    enabled: bool | None = None
    managed: bool | None = None
    team_id: str | None = None
    expiring: bool = False
    """Has an active token expiring within ``EXPIRING_WITHIN``."""
    unused: bool = False
    """No token of it used within ``UNUSED_FOR`` (never used included)."""
    page: int = 1


_ACCOUNTS_FROM = """
FROM rm_accounts a
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE k.state = 'ACTIVE' AND (k.expires_at IS NULL OR k.expires_at > $1))
               AS active_tokens,
           min(k.expires_at) FILTER (WHERE k.state = 'ACTIVE' AND k.expires_at > $1) AS soonest_expiry,
           max(k.last_used_at) AS last_used_at
    FROM rm_tokens k WHERE k.account_id = a.account_id AND NOT k.deleted
) t
WHERE {conditions}
"""
_ACCOUNTS_PAGE = """
SELECT a.account_id::text AS id, a.name, a.description, a.enabled, a.konnect_managed, a.created_at,
       t.active_tokens, t.soonest_expiry, t.last_used_at,
       (SELECT count(*) FROM rm_role_assignments r
         WHERE r.holder_type = 'account' AND r.holder_id = a.account_id) AS direct_roles,
       (SELECT count(*) FROM rm_team_members m
          JOIN rm_role_assignments r ON r.holder_type = 'team' AND r.holder_id = m.team_id
         WHERE m.account_id = a.account_id) AS team_roles
{source}
ORDER BY lower(a.name), a.account_id
LIMIT {limit} OFFSET {offset}
"""


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def list_accounts(
    pool: asyncpg.Pool, selection: AccountFilter, now: datetime
) -> tuple[list[asyncpg.Record], int]:
    """One page of accounts matching ``selection`` (by name), and how many match in all."""
    args: list[Any] = [now]
    conditions = ["TRUE"]

    def bind(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if selection.search:
        pattern = bind(_like(selection.search))
        conditions.append(f"(a.name ILIKE {pattern} OR a.description ILIKE {pattern})")
    if selection.enabled is not None:
        conditions.append(f"a.enabled = {bind(selection.enabled)}")
    if selection.managed is not None:
        conditions.append(f"a.konnect_managed = {bind(selection.managed)}")
    if selection.team_id is not None:
        team = bind(selection.team_id)
        conditions.append(
            "EXISTS (SELECT 1 FROM rm_team_members m WHERE m.account_id = a.account_id"  # noqa: S608
            f" AND m.team_id = {team}::uuid)"
        )
    if selection.expiring:
        until = bind(now + EXPIRING_WITHIN)
        conditions.append(
            "EXISTS (SELECT 1 FROM rm_tokens k WHERE k.account_id = a.account_id AND NOT k.deleted"  # noqa: S608
            f" AND k.state = 'ACTIVE' AND k.expires_at > $1 AND k.expires_at <= {until})"
        )
    if selection.unused:
        conditions.append(f"(t.last_used_at IS NULL OR t.last_used_at < {bind(now - UNUSED_FOR)})")
    source = _ACCOUNTS_FROM.format(conditions=" AND ".join(conditions))
    page = _ACCOUNTS_PAGE.format(source=source, limit=PAGE_SIZE, offset=(selection.page - 1) * PAGE_SIZE)
    async with (
        pool.acquire() as connection,
        connection.transaction(isolation="repeatable_read", readonly=True),
    ):
        rows: list[asyncpg.Record] = await connection.fetch(page, *args)
        total = await connection.fetchval(f"SELECT count(*) {source}", *args)
    return rows, int(total)


_ROLES_SQL = """
SELECT r.assignment_id::text AS id, r.role_name, r.entity_id::text AS entity_id, r.entity_type_name,
       r.entity_region, NULL::text AS team_id, NULL::text AS team_name
FROM rm_role_assignments r WHERE r.holder_type = 'account' AND r.holder_id = $1::uuid
UNION ALL
SELECT r.assignment_id::text, r.role_name, r.entity_id::text, r.entity_type_name, r.entity_region,
       t.team_id::text, t.name
FROM rm_team_members m
JOIN rm_teams t ON t.team_id = m.team_id
JOIN rm_role_assignments r ON r.holder_type = 'team' AND r.holder_id = m.team_id
WHERE m.account_id = $1::uuid
ORDER BY team_name NULLS FIRST, entity_type_name, role_name
"""


async def account_roles(pool: asyncpg.Pool, account_id: str) -> list[asyncpg.Record]:
    """The account's roles: direct ones (``team_id`` null), then those of each of its teams."""
    rows: list[asyncpg.Record] = await pool.fetch(_ROLES_SQL, account_id)
    return rows


async def holder_roles(pool: asyncpg.Pool, holder_type: str, holder_id: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(
        "SELECT assignment_id::text AS id, role_name, entity_id::text AS entity_id, entity_type_name,"
        " entity_region FROM rm_role_assignments WHERE holder_type = $1 AND holder_id = $2::uuid"
        " ORDER BY entity_type_name, role_name",
        holder_type,
        holder_id,
    )
    return rows


async def account_teams(pool: asyncpg.Pool, account_id: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(
        "SELECT t.team_id::text AS id, t.name, t.description, m.added_at FROM rm_team_members m"
        " JOIN rm_teams t ON t.team_id = m.team_id WHERE m.account_id = $1::uuid ORDER BY lower(t.name)",
        account_id,
    )
    return rows


async def all_teams(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    """Every team with its member and role counts, by name (the teams page and the pickers)."""
    rows: list[asyncpg.Record] = await pool.fetch(
        "SELECT t.team_id::text AS id, t.name, t.description, t.labels, t.system_team,"
        " (SELECT count(*) FROM rm_team_members m WHERE m.team_id = t.team_id) AS members,"
        " (SELECT count(*) FROM rm_role_assignments r WHERE r.holder_type = 'team'"
        "  AND r.holder_id = t.team_id) AS roles"
        " FROM rm_teams t ORDER BY lower(t.name), t.team_id"
    )
    return rows


async def team_members(pool: asyncpg.Pool, team_id: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(
        "SELECT a.account_id::text AS id, a.name, a.enabled, m.added_at FROM rm_team_members m"
        " JOIN rm_accounts a ON a.account_id = m.account_id WHERE m.team_id = $1::uuid"
        " ORDER BY lower(a.name)",
        team_id,
    )
    return rows


CHOICES = 500


async def account_choices(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    """Accounts that may join a team (not konnect-managed) for the member picker: the
    ``CHOICES`` most recently created (the one just made is the one most often added), by name.
    An older account beyond them is added by the API or the CLI."""
    rows: list[asyncpg.Record] = await pool.fetch(
        "SELECT id, name FROM (SELECT account_id::text AS id, name FROM rm_accounts"
        " WHERE NOT konnect_managed ORDER BY created_at DESC, account_id LIMIT $1) AS newest"
        " ORDER BY lower(name)",
        CHOICES,
    )
    return rows


_USAGE_HOURS_SQL = """
SELECT date_trunc('hour', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour, outcome,
       count(*) AS uses
FROM usage_log WHERE token_id = $1::uuid AND occurred_at >= $2 AND occurred_at < $3
GROUP BY 1, 2
"""


async def usage_per_hour(pool: asyncpg.Pool, token_id: str, now: datetime) -> list[tuple[datetime, str, int]]:
    """Verifications of the token per hour and outcome over the last ``CHART_DAYS`` days."""
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(days=CHART_DAYS) + timedelta(hours=1)
    rows = await pool.fetch(_USAGE_HOURS_SQL, token_id, start, now + timedelta(seconds=1))
    return [(row["hour"], row["outcome"], int(row["uses"])) for row in rows]


_ACCOUNT_EVENTS_SQL = f"""
WITH linked AS (
    SELECT DISTINCT stream_id FROM events
    WHERE data ->> 'account_id' = $1 AND type IN ('token.issued', 'team.member_added')
)
SELECT * FROM (
    SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = 'account-' || $1
    UNION ALL
    SELECT {EVENT_COLUMNS} FROM events
    WHERE stream_id IN (SELECT stream_id FROM linked WHERE stream_id LIKE 'token-%')
    UNION ALL
    SELECT {EVENT_COLUMNS} FROM events
    WHERE stream_id IN (SELECT stream_id FROM linked WHERE stream_id LIKE 'team-%')
      AND data ->> 'account_id' = $1
) about
ORDER BY tx_id DESC, global_position DESC
LIMIT $2
"""  # noqa: S608 (a constant column list)


async def account_events(pool: asyncpg.Pool, account_id: str, limit: int) -> list[asyncpg.Record]:
    """The latest ``limit`` events about the account, newest first: its own stream (fields, roles),
    its tokens' streams, and its memberships in its teams' streams. The related streams are found
    through the ``events_account_links`` index (migration 0004), so the log is never scanned whole."""
    rows: list[asyncpg.Record] = await pool.fetch(_ACCOUNT_EVENTS_SQL, account_id, limit)
    return rows


async def token_events(pool: asyncpg.Pool, token_id: str, limit: int) -> list[asyncpg.Record]:
    return await _events(pool, "e.stream_id = 'token-' || $1", (token_id,), limit)


async def _events(
    pool: asyncpg.Pool, condition: str, args: Sequence[Any], limit: int
) -> list[asyncpg.Record]:
    sql = (
        f"SELECT {EVENT_COLUMNS} FROM events e WHERE {condition}"  # noqa: S608 (trusted fragments)
        f" ORDER BY e.tx_id DESC, e.global_position DESC LIMIT {int(limit)}"
    )
    rows: list[asyncpg.Record] = await pool.fetch(sql, *args)
    return rows


async def token_usage(pool: asyncpg.Pool, token_id: str, limit: int) -> list[asyncpg.Record]:
    """The latest ``limit`` verifications of the token, newest first."""
    rows: list[asyncpg.Record] = await pool.fetch(
        "SELECT position, occurred_at, outcome, reason, operation, client_address, user_agent"  # noqa: S608
        f" FROM usage_log WHERE token_id = $1::uuid ORDER BY position DESC LIMIT {int(limit)}",
        token_id,
    )
    return rows


async def account_names(pool: asyncpg.Pool, ids: Sequence[str]) -> dict[str, str]:
    """Names of the accounts (actors) among ``ids`` that exist."""
    rows = await pool.fetch(
        "SELECT account_id::text AS id, name FROM rm_accounts WHERE account_id::text = ANY($1::text[])",
        list(ids),
    )
    return {row["id"]: row["name"] for row in rows}


async def token_names(pool: asyncpg.Pool, ids: Sequence[str]) -> dict[str, str]:
    """Names of the tokens (credentials of actors) among ``ids``, deleted ones included."""
    rows = await pool.fetch(
        "SELECT token_id::text AS id, name FROM rm_tokens WHERE token_id::text = ANY($1::text[])", list(ids)
    )
    return {row["id"]: row["name"] for row in rows}


class SealStatus(msgspec.Struct, frozen=True, kw_only=True):
    checkpoints: int
    last_checkpoint: int | None
    last_sealed_at: datetime | None
    sealed_events: int
    events: int


async def seal_status(pool: asyncpg.Pool) -> SealStatus:
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM log_checkpoints) AS checkpoints,"
        " (SELECT max(checkpoint) FROM log_checkpoints) AS last_checkpoint,"
        " (SELECT max(sealed_at) FROM log_checkpoints) AS last_sealed_at,"
        " (SELECT coalesce(sum(event_count), 0) FROM log_checkpoints) AS sealed_events,"
        " (SELECT count(*) FROM events) AS events"
    )
    assert row is not None
    return SealStatus(
        checkpoints=int(row["checkpoints"]),
        last_checkpoint=row["last_checkpoint"],
        last_sealed_at=row["last_sealed_at"],
        sealed_events=int(row["sealed_events"]),
        events=int(row["events"]),
    )
