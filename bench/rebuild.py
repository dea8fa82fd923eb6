"""How fast the read models rebuild: ``python -m bench.rebuild [--events N]`` (default 1,000,000).

Generates a realistic log into a fresh database (``bench.generated_log``), then measures:

a. raw read: the events in log order through a server-side cursor, no decoding;
b. decoding only: turning those rows into ``RecordedEvent`` (``services.eventstore.rows``, what
   ``PostgresEventStore.read_all`` does); plus ``read_all`` itself in batches of 10,000 (read and
   decode, what a build consumes);
c. building all projections from the start of the log: the first build (``Projections.start``
   on an empty database until every view is live and current) and a ``rebuild()`` of all of them;
d. with ``--statements``: the same build without folds (every event through ``apply`` and SQL).

and prints events/s and the ratios to the raw read.
"""

import argparse
import asyncio
import json
import time
from typing import Any

import asyncpg

from bench.generated_log import generate, load_log
from bench.harness import fresh_database, machine, markdown_table, ratio, server, server_settings
from events import LogCursor
from events.envelope import LOG_START
from projections.base import Projection
from projections.build import Builder, BuildTarget
from projections.catalogue import ALL_PROJECTIONS
from projections.runtime import Projections
from projections.source import CombinedLogSource
from services import database
from services.eventstore import PostgresEventStore
from services.eventstore.notifications import LogNotifications
from services.eventstore.rows import recorded_event
from services.eventstore.tail import LogTail

READ_BATCH = 10_000


_RAW_SQL = (
    "SELECT global_position, tx_id::text::bigint AS tx_id, stream_id, stream_version, event_id, type,"
    " data::text AS data, metadata::text AS metadata, recorded_at FROM events"
    " ORDER BY tx_id, global_position"
)


async def raw_read(connection: asyncpg.Connection) -> tuple[float, float, int]:
    """(seconds reading, seconds decoding, rows): a server-side cursor read in batches; decoding
    is timed apart, on each fetched batch."""
    rows = 0
    decoding = 0.0
    began = time.perf_counter()
    async with connection.transaction():
        cursor = await connection.cursor(_RAW_SQL)
        while True:
            batch = await cursor.fetch(READ_BATCH)
            if not batch:
                break
            rows += len(batch)
            started = time.perf_counter()
            for row in batch:
                recorded_event(row)
            decoding += time.perf_counter() - started
    return time.perf_counter() - began - decoding, decoding, rows


async def read_all_loop(store: PostgresEventStore) -> tuple[float, int]:
    began = time.perf_counter()
    cursor = LOG_START
    count = 0
    while True:
        batch = await store.read_all(cursor, READ_BATCH)
        if not batch:
            break
        count += len(batch)
        cursor = batch[-1].cursor
    return time.perf_counter() - began, count


async def first_build(dsn: str, pool: asyncpg.Pool, store: PostgresEventStore) -> float:
    """Seconds from ``Projections.start`` on a database without read models until all are current."""
    notifications = LogNotifications(lambda: database.connect(dsn))
    await notifications.start()
    source = CombinedLogSource(LogTail(store, notifications.waiter()), store)
    projections = Projections(pool, source, ALL_PROJECTIONS, connect=lambda: database.connect(dsn))
    began = time.perf_counter()
    await projections.start()
    try:
        if not await projections.wait_until_current(timeout=3600):
            raise RuntimeError(f"the build did not finish: {await projections.status()}")
        return time.perf_counter() - began
    finally:
        await projections.stop()
        await notifications.stop()


async def rebuild_all(dsn: str, pool: asyncpg.Pool, store: PostgresEventStore) -> float:
    """Seconds for ``Projections.rebuild()`` of every projection (runners stopped: the log is still)."""
    source = CombinedLogSource(_NoTail(), store)
    projections = Projections(pool, source, ALL_PROJECTIONS, connect=lambda: database.connect(dsn))
    began = time.perf_counter()
    await projections.rebuild()
    return time.perf_counter() - began


async def statement_build(dsn: str, store: PostgresEventStore, projections: list[Projection]) -> float:
    """Seconds to build every projection into scratch tables with statements only (no folds)."""
    builder = Builder(store)
    connections = [await database.connect(dsn) for _ in projections]
    try:
        targets = [
            BuildTarget(p, c, 999, use_fold=False) for p, c in zip(projections, connections, strict=True)
        ]
        began = time.perf_counter()
        await builder.build(targets)
        elapsed = time.perf_counter() - began
        for target in targets:
            for table in target.tables.values():
                await target.connection.execute(f"DROP TABLE IF EXISTS {table}")
        return elapsed
    finally:
        for connection in connections:
            await connection.close()


class _NoTail:
    def batches(self, after: LogCursor) -> Any:
        raise RuntimeError("a rebuild does not tail the log")


async def run(count: int, seed: int, statements: bool) -> dict[str, Any]:
    async with server() as server_dsn, fresh_database(server_dsn, "rebuild") as dsn:
        began = time.perf_counter()
        log = generate(count, seed)
        generated = time.perf_counter() - began
        connection = await database.connect(dsn)
        try:
            began = time.perf_counter()
            await load_log(connection, log)
            loaded = time.perf_counter() - began
            del log
            reading, decoding, rows = await raw_read(connection)
        finally:
            await connection.close()
        pool = await database.create_pool(dsn, min_size=2, max_size=10)
        try:
            store = PostgresEventStore(pool)
            read_all_seconds, read_all_rows = await read_all_loop(store)
            build_seconds = await first_build(dsn, pool, store)
            rebuild_seconds = await rebuild_all(dsn, pool, store)
            statement_seconds = await statement_build(dsn, store, ALL_PROJECTIONS) if statements else None
            async with pool.acquire() as c:
                sizes = {
                    name: await c.fetchval(f"SELECT count(*) FROM rm_{name}")
                    for name in (
                        "accounts",
                        "tokens",
                        "token_secrets",
                        "role_assignments",
                        "teams",
                        "team_members",
                    )
                }
            settings = await server_settings(dsn)
        finally:
            await pool.close()
    raw = rows / reading
    results: dict[str, Any] = {
        "events": rows,
        "generate_s": round(generated, 2),
        "copy_in_s": round(loaded, 2),
        "raw_read_eps": round(raw),
        "decode_only_eps": round(rows / decoding),
        "read_all_eps": round(read_all_rows / read_all_seconds),
        "first_build_eps": round(rows / build_seconds),
        "first_build_s": round(build_seconds, 2),
        "rebuild_all_eps": round(rows / rebuild_seconds),
        "rebuild_all_s": round(rebuild_seconds, 2),
        "statement_build_eps": round(rows / statement_seconds) if statement_seconds else None,
        "rows": sizes,
        "machine": machine(),
        "server": settings,
    }
    print(
        markdown_table(
            ["measure", "events/s", "vs raw read"],
            [
                ["a. raw read (server-side cursor, no decoding)", f"{raw:,.0f}", "1.00"],
                ["b. decoding only", f"{rows / decoding:,.0f}", f"{ratio(rows / decoding, raw):.2f}"],
                [
                    "b. read_all (read + decode, batches of 10k)",
                    f"{results['read_all_eps']:,}",
                    f"{ratio(results['read_all_eps'], raw):.2f}",
                ],
                [
                    "c. first build, all projections (start -> current)",
                    f"{results['first_build_eps']:,}",
                    f"{ratio(results['first_build_eps'], raw):.2f}",
                ],
                [
                    "c. rebuild(), all projections",
                    f"{results['rebuild_all_eps']:,}",
                    f"{ratio(results['rebuild_all_eps'], raw):.2f}",
                ],
                *(
                    [
                        [
                            "d. build with statements only (no folds)",
                            f"{results['statement_build_eps']:,}",
                            f"{ratio(results['statement_build_eps'], raw):.2f}",
                        ]
                    ]
                    if statement_seconds
                    else []
                ),
            ],
        )
    )
    print(json.dumps(results, indent=2, default=str))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rebuild", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--statements", action="store_true", help="also build with statements only")
    args = parser.parse_args()
    asyncio.run(run(args.events, args.seed, args.statements))


if __name__ == "__main__":
    main()
