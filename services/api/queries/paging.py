"""One page of a filtered, ordered view, and the total of rows matching the filters."""

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from services.api.listing import ListQuery, sql_conditions

Rows = list[asyncpg.Record]


async def fetch_page(
    pool: asyncpg.Pool,
    source: str,
    columns: Mapping[str, str],
    query: ListQuery,
    *,
    scope: str = "TRUE",
    scope_args: Sequence[Any] = (),
    order: str,
    select: str = "*",
) -> tuple[Rows, int]:
    """``source`` is a trusted FROM clause; ``scope`` a trusted condition over ``scope_args``
    ($1...); the filters follow as further parameters. The page and the total are read in one
    repeatable-read transaction, so they agree."""
    condition, filter_args = sql_conditions(query.filters, columns, first_param=len(scope_args) + 1)
    args = [*scope_args, *filter_args]
    where = f"WHERE ({scope}) AND {condition}"
    page = f" LIMIT {query.limit} OFFSET {query.offset}" if query.limit is not None else ""
    async with (
        pool.acquire() as connection,
        connection.transaction(isolation="repeatable_read", readonly=True),
    ):
        rows = await connection.fetch(f"SELECT {select} FROM {source} {where} ORDER BY {order}{page}", *args)  # noqa: S608
        total = await connection.fetchval(f"SELECT count(*) FROM {source} {where}", *args)  # noqa: S608
    return rows, int(total)
