"""Access tokens of an account (``rm_tokens``); deleted tokens are hidden."""

import asyncpg

from services.api.listing import ListQuery
from services.api.queries.paging import Rows, fetch_page

_COLUMNS = {"name": "name", "federated": "(federated_credential_id IS NOT NULL)"}


async def list_tokens(pool: asyncpg.Pool, account_id: str, query: ListQuery) -> tuple[Rows, int]:
    return await fetch_page(
        pool,
        "rm_tokens",
        _COLUMNS,
        query,
        scope="account_id = $1::uuid AND NOT deleted",
        scope_args=(account_id,),
        order="created_at, token_id",
    )


async def get_token(pool: asyncpg.Pool, account_id: str, token_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await pool.fetchrow(
        "SELECT * FROM rm_tokens WHERE token_id = $1::uuid AND account_id = $2::uuid AND NOT deleted",
        token_id,
        account_id,
    )
    return row


async def list_federated_tokens(
    pool: asyncpg.Pool, account_id: str, credential_id: str, query: ListQuery
) -> tuple[Rows, int]:
    """The account's tokens obtained through one federated credential (even one deleted since)."""
    return await fetch_page(
        pool,
        "rm_tokens",
        _COLUMNS,
        query,
        scope="account_id = $1::uuid AND federated_credential_id = $2::uuid AND NOT deleted",
        scope_args=(account_id, credential_id),
        order="created_at, token_id",
    )
