"""Role assignments of an account or a team (``rm_role_assignments``)."""

from typing import Literal

import asyncpg

from services.api.listing import ListQuery
from services.api.queries.paging import Rows, fetch_page

Holder = Literal["account", "team"]
_COLUMNS = {
    "role_name": "role_name",
    "entity_type_name": "entity_type_name",
    "entity_id": "entity_id::text",
}


async def list_assignments(
    pool: asyncpg.Pool, holder_type: Holder, holder_id: str, query: ListQuery
) -> tuple[Rows, int]:
    return await fetch_page(
        pool,
        "rm_role_assignments",
        _COLUMNS,
        query,
        scope="holder_type = $1 AND holder_id = $2::uuid",
        scope_args=(holder_type, holder_id),
        order="created_at, assignment_id",
    )


async def get_assignment(
    pool: asyncpg.Pool, holder_type: Holder, holder_id: str, assignment_id: str
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await pool.fetchrow(
        "SELECT * FROM rm_role_assignments"
        " WHERE assignment_id = $1::uuid AND holder_type = $2 AND holder_id = $3::uuid",
        assignment_id,
        holder_type,
        holder_id,
    )
    return row
