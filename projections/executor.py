"""Running a projection's statements, and telling a poison event from a passing failure.

Consecutive statements with the same SQL text go to the server as one ``executemany`` (one prepared
statement, all argument rows pipelined in one round trip), so a batch of events costs a round trip per
run of equal statements rather than one per event.

A failure is *poison* when trying again cannot help: the reducer raised, the arguments could not be
encoded, or PostgreSQL refused the statement for what it says (bad data, constraint, undefined
object). Anything else (a lost connection, a deadlock, a server shutting down) is passing: the runner
reconnects and tries the same batch again.
"""

from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from projections.base import Statement

# SQLSTATE classes that say "this statement, with these arguments, will always fail".
_POISON_CLASSES = frozenset({"0A", "21", "22", "23", "2F", "42", "44", "54", "P0"})


async def execute(connection: Any, statements: Sequence[Statement], render: Callable[[str], str]) -> None:
    """Runs ``statements`` in order; equal consecutive SQL is sent as one ``executemany``."""
    count = len(statements)
    start = 0
    while start < count:
        sql = statements[start].sql
        end = start + 1
        while end < count and (statements[end].sql is sql or statements[end].sql == sql):
            end += 1
        if end - start == 1:
            await connection.execute(render(sql), *statements[start].args)
        else:
            await connection.executemany(render(sql), [s.args for s in statements[start:end]])
        start = end


def is_poison(error: BaseException) -> bool:
    """True for errors that will recur on every retry of the same event (see the module docstring)."""
    if isinstance(error, asyncpg.PostgresError):
        sqlstate = getattr(error, "sqlstate", None) or ""
        return sqlstate[:2] in _POISON_CLASSES
    # asyncpg's client-side DataError (an argument that cannot be encoded) is both of these.
    return isinstance(error, asyncpg.InterfaceError) and isinstance(error, ValueError)


def describe(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= 2000 else text[:2000] + "..."
