"""The SQL that ``listing.sql_conditions`` writes, run on real PostgreSQL: LIKE wildcards in values are
literal, booleans compare, label filters read a jsonb column."""

from typing import Any

import asyncpg
import pytest

from services.api.listing import Filter, sql_conditions

ROWS = """
(VALUES
    ('50% off', 'percent', true,  '{"env": "prod", "team": "ops_a"}'::jsonb),
    ('500 off', 'plain',   false, '{"env": "dev"}'::jsonb),
    ('a_b',     'under',   false, '{"team": "opsxa"}'::jsonb),
    ('a\\b',    'slash',   true,  '{}'::jsonb)
) AS t (name, description, managed, labels)
"""
COLUMNS = {"name": "t.name", "description": "t.description", "managed": "t.managed", "labels": "t.labels"}


async def _names(pool: asyncpg.Pool, filters: list[Filter], *, prefix_args: int = 0) -> list[str]:
    sql, args = sql_conditions(filters, COLUMNS, first_param=prefix_args + 1)
    padding: list[Any] = [0] * prefix_args
    guard = " AND ".join(f"${i + 1}::int = 0" for i in range(prefix_args)) or "TRUE"
    rows = await pool.fetch(
        f"SELECT t.name FROM {ROWS} WHERE {guard} AND {sql} ORDER BY t.name", *padding, *args
    )
    return [r["name"] for r in rows]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ([], ["50% off", "500 off", "a\\b", "a_b"]),
        ([Filter("name", "contains", "0%")], ["50% off"]),
        ([Filter("name", "contains", "_")], ["a_b"]),
        ([Filter("name", "contains", "\\")], ["a\\b"]),
        ([Filter("name", "eq", "a_b")], ["a_b"]),
        ([Filter("managed", "eq", True)], ["50% off", "a\\b"]),
        ([Filter("managed", "eq", False), Filter("description", "contains", "a")], ["500 off"]),
        ([Filter("labels", "eq", "prod", key="env")], ["50% off"]),
        ([Filter("labels", "contains", "s_a", key="team")], ["50% off"]),
        ([Filter("labels", "exists", True, key="env")], ["50% off", "500 off"]),
        ([Filter("labels", "exists", False, key="env")], ["a\\b", "a_b"]),
    ],
)
async def test_conditions_select_the_right_rows(
    pool: asyncpg.Pool, filters: list[Filter], expected: list[str]
) -> None:
    assert await _names(pool, filters) == expected


async def test_placeholders_start_where_asked(pool: asyncpg.Pool) -> None:
    assert await _names(pool, [Filter("name", "eq", "a_b")], prefix_args=2) == ["a_b"]
