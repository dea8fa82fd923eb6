"""Federated credentials of an account (``rm_federated_credentials``)."""

import asyncpg

from services.api.listing import ListQuery
from services.api.queries.paging import Rows, fetch_page

_COLUMNS = {"name": "name", "issuer": "issuer"}


async def list_credentials(pool: asyncpg.Pool, account_id: str, query: ListQuery) -> tuple[Rows, int]:
    return await fetch_page(
        pool,
        "rm_federated_credentials",
        _COLUMNS,
        query,
        scope="account_id = $1::uuid",
        scope_args=(account_id,),
        order="created_at, credential_id",
    )


async def get_credential(pool: asyncpg.Pool, account_id: str, credential_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await pool.fetchrow(
        "SELECT * FROM rm_federated_credentials WHERE credential_id = $1::uuid AND account_id = $2::uuid",
        credential_id,
        account_id,
    )
    return row
