"""Pieces of the projection runtime that need no database: names, placeholder rendering, grouping of
statements into ``executemany``, and which failures count as poison."""

from typing import Any

import asyncpg
import pytest

from projections.base import Statement
from projections.executor import execute, is_poison
from projections.naming import lock_key, physical_name, physical_pattern, renderer, view_name


def test_physical_and_view_names() -> None:
    assert physical_name("accounts", 3, 0) == "rm_accounts_v3"
    assert physical_name("accounts", 3, 2) == "rm_accounts_v3_r2"
    assert view_name("team_members") == "rm_team_members"
    with pytest.raises(ValueError):
        physical_name("Accounts; DROP TABLE events", 1, 0)


def test_physical_pattern_does_not_match_other_tables() -> None:
    import re

    pattern = re.compile(physical_pattern("tokens"))
    assert pattern.match("rm_tokens_v1") and pattern.match("rm_tokens_v12_r3")
    assert not pattern.match("rm_token_secrets_v1")
    assert not pattern.match("rm_tokens")


def test_lock_keys_are_stable_signed_32_bit_numbers() -> None:
    assert lock_key("accounts") == lock_key("accounts")
    assert lock_key("accounts") != lock_key("tokens")
    for name in ("accounts", "tokens", "teams", "x" * 40):
        assert -(2**31) <= lock_key(name) < 2**31


def test_renderer_replaces_only_known_placeholders() -> None:
    render = renderer({"tokens": "rm_tokens_v2"})
    sql = "UPDATE {tokens} SET scopes = '{a,b}', labels = '{}' WHERE x = '{other}'"
    assert render(sql) == "UPDATE rm_tokens_v2 SET scopes = '{a,b}', labels = '{}' WHERE x = '{other}'"
    assert render(sql) is render(sql)  # cached


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []

    async def execute(self, sql: str, *args: Any) -> None:
        self.calls.append(("execute", sql, args))

    async def executemany(self, sql: str, args: list[tuple[Any, ...]]) -> None:
        self.calls.append(("executemany", sql, args))


async def test_equal_consecutive_statements_are_sent_together_and_order_is_kept() -> None:
    a, b = "INSERT INTO {t} VALUES ($1)", "DELETE FROM {t} WHERE x = $1"
    statements = [Statement(a, (1,)), Statement(a, (2,)), Statement(b, (3,)), Statement(a, (4,))]
    connection = Recorder()
    await execute(connection, statements, renderer({"t": "rm_t_v1"}))
    assert connection.calls == [
        ("executemany", "INSERT INTO rm_t_v1 VALUES ($1)", [(1,), (2,)]),
        ("execute", "DELETE FROM rm_t_v1 WHERE x = $1", (3,)),
        ("execute", "INSERT INTO rm_t_v1 VALUES ($1)", (4,)),
    ]


def test_poison_is_what_a_retry_cannot_fix() -> None:
    assert is_poison(asyncpg.exceptions.NotNullViolationError("null"))
    assert is_poison(asyncpg.exceptions.InvalidTextRepresentationError("bad uuid"))
    assert is_poison(asyncpg.exceptions.UndefinedTableError("no table"))
    assert is_poison(asyncpg.exceptions._base.DataError("cannot encode argument"))
    assert not is_poison(asyncpg.exceptions.DeadlockDetectedError("deadlock"))
    assert not is_poison(asyncpg.exceptions.AdminShutdownError("shutdown"))
    assert not is_poison(asyncpg.exceptions.ConnectionDoesNotExistError("gone"))
    assert not is_poison(ConnectionResetError())
    assert not is_poison(TimeoutError())
