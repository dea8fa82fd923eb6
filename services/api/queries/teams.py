"""Teams (``rm_teams``) and the teams of an account (``rm_team_members``)."""

import asyncpg

from services.api.listing import ListQuery
from services.api.queries.paging import Rows, fetch_page

_COLUMNS = {"name": "t.name", "labels": "t.labels"}
_ORDER = "t.created_at, t.team_id"


async def list_teams(pool: asyncpg.Pool, query: ListQuery) -> tuple[Rows, int]:
    return await fetch_page(pool, "rm_teams t", _COLUMNS, query, order=_ORDER)


async def get_team(pool: asyncpg.Pool, team_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await pool.fetchrow(
        "SELECT * FROM rm_teams WHERE team_id = $1::uuid", team_id
    )
    return row


async def list_account_teams(pool: asyncpg.Pool, account_id: str, query: ListQuery) -> tuple[Rows, int]:
    return await fetch_page(
        pool,
        "rm_teams t JOIN rm_team_members m ON m.team_id = t.team_id",
        _COLUMNS,
        query,
        scope="m.account_id = $1::uuid",
        scope_args=(account_id,),
        order=_ORDER,
        select="t.*",
    )
