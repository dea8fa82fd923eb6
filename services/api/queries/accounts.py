"""System accounts (``rm_accounts``) and the accounts of a team (``rm_team_members``)."""

import asyncpg

from services.api.listing import ListQuery
from services.api.queries.paging import Rows, fetch_page

_COLUMNS = {"name": "a.name", "description": "a.description", "konnect_managed": "a.konnect_managed"}
_ORDER = "a.created_at, a.account_id"


async def list_accounts(pool: asyncpg.Pool, query: ListQuery) -> tuple[Rows, int]:
    return await fetch_page(pool, "rm_accounts a", _COLUMNS, query, order=_ORDER)


async def get_account(pool: asyncpg.Pool, account_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await pool.fetchrow(
        "SELECT * FROM rm_accounts WHERE account_id = $1::uuid", account_id
    )
    return row


async def list_team_members(pool: asyncpg.Pool, team_id: str, query: ListQuery) -> tuple[Rows, int]:
    return await fetch_page(
        pool,
        "rm_accounts a JOIN rm_team_members m ON m.account_id = a.account_id",
        _COLUMNS,
        query,
        scope="m.team_id = $1::uuid",
        scope_args=(team_id,),
        order=_ORDER,
        select="a.*",
    )
