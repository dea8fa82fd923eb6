"""Rebuilds: a rebuild of a long random history leaves byte-for-byte the rows the live runners made,
while the live runners keep serving and following the log; and the rows equal a from-scratch build
with statements only (no folds) even when writers append during the rebuild."""

import asyncio
from typing import Any

from bench.generated_log import LogGenerator, generate
from projections.build import Builder, BuildTarget
from projections.catalogue import ALL_PROJECTIONS
from projections.runner import RunnerState
from projections.tokens import TokensProjection
from services import database
from tests.integration.test_projection_support import (
    PRIMARY_KEYS,
    append_generated,
    running,
    table_text,
    views_text,
)


async def view_targets(connection: Any) -> dict[str, str]:
    rows = await connection.fetch(
        "SELECT viewname, definition FROM pg_views WHERE viewname = ANY($1::text[])",
        [f"rm_{t}" for t in PRIMARY_KEYS],
    )
    return {r["viewname"]: r["definition"] for r in rows}


async def test_rebuild_is_byte_for_byte_the_live_read_model(empty_database: str) -> None:
    async with running(empty_database) as world:
        await append_generated(world.store, generate(3000, seed=11))
        await world.current(60)
        async with world.pool.acquire() as c:
            live = await views_text(c)
            assert sum(len(rows) for rows in live.values()) > 500
        switched = await world.projections.rebuild()
        assert set(switched) == {p.name for p in ALL_PROJECTIONS}
        async with world.pool.acquire() as c:
            # The views now read the rebuilt tables, the old ones are gone, and the rows are the same.
            definitions = await view_targets(c)
            versions = {table: p.version for p in ALL_PROJECTIONS for table in p.tables}
            for table in PRIMARY_KEYS:
                rebuilt = f"rm_{table}_v{versions[table]}_r1"
                assert rebuilt in definitions[f"rm_{table}"]
                assert await table_text(c, rebuilt, table) == live[table]
            assert await views_text(c) == live
            leftovers = await c.fetch("SELECT tablename FROM pg_tables WHERE tablename ~ '^rm_.*_v[0-9]+$'")
            assert leftovers == []
            generations = await c.fetch("SELECT generation FROM projection_checkpoints")
            assert {r["generation"] for r in generations} == {1}
        # The runners carry on into the new tables.
        for runner in map(world.projections.runner, world.projections.names):
            assert runner.state is RunnerState.RUNNING
        await append_generated(world.store, list(LogGenerator(seed=12).events(300)))
        await world.current()


async def test_rebuild_while_writers_append_equals_a_build_with_statements(empty_database: str) -> None:
    async with running(empty_database) as world:
        await append_generated(world.store, generate(2000, seed=21))
        await world.current(60)
        writing = asyncio.create_task(append_generated(world.store, list(LogGenerator(seed=22).events(1500))))
        await asyncio.sleep(0.2)
        reads_during_rebuild = 0

        async def read_meanwhile() -> None:
            nonlocal reads_during_rebuild
            while not writing.done():
                assert await world.projections.wait_until_current(30)
                reads_during_rebuild += 1

        reader = asyncio.create_task(read_meanwhile())
        await world.projections.rebuild()
        await writing
        await reader
        assert reads_during_rebuild > 0
        await world.current(60)

        # A reference: every projection built from the whole log with statements only.
        connections = [await database.connect(empty_database) for _ in ALL_PROJECTIONS]
        try:
            targets = [
                BuildTarget(p, c, 99, use_fold=False)
                for p, c in zip(ALL_PROJECTIONS, connections, strict=True)
            ]
            await Builder(world.store, batch_size=500).build(targets)
            async with world.pool.acquire() as c:
                for target in targets:
                    for table, physical in target.tables.items():
                        assert await table_text(c, physical, table) == await table_text(
                            c, f"rm_{table}", table
                        )
        finally:
            for target in targets:
                await target.connection.execute("DROP TABLE IF EXISTS " + ", ".join(target.tables.values()))
            for connection in connections:
                await connection.close()


async def test_rebuild_of_one_projection_leaves_the_others_alone(empty_database: str) -> None:
    async with running(empty_database) as world:
        await append_generated(world.store, generate(500, seed=31))
        await world.current()
        await world.projections.rebuild("tokens")
        async with world.pool.acquire() as c:
            generations = {
                r["name"]: r["generation"]
                for r in await c.fetch("SELECT name, generation FROM projection_checkpoints")
            }
        assert generations == {
            "accounts": 0,
            "tokens": 1,
            "token_secrets": 0,
            "role_assignments": 0,
            "federated_credentials": 0,
            "teams": 0,
            "token_deadlines": 0,
        }
        await world.projections.rebuild("tokens")
        async with world.pool.acquire() as c:
            tables = await c.fetch("SELECT tablename FROM pg_tables WHERE tablename LIKE 'rm_tokens%'")
        assert [r["tablename"] for r in tables] == [f"rm_tokens_v{TokensProjection.version}_r2"]
