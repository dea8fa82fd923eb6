"""What a scheduler tick costs as the number of tokens grows: ``python -m bench.scheduler [--tokens N]
[--due D]`` (defaults 1,000,000 and 1,000).

The due index (``rm_token_deadlines``, ``projections.deadlines``) is populated directly with COPY,
not through the log: one expiry row and one rotation row per token (2 rows a token), expiries spread
over a year, 2% of tokens inside the 7-day warning window and already warned, rotation anchors in the
last 80 days under a 90-day deployment period (none due), and D tokens whose expiry has just passed.

A tick's due-index work is measured: pages of due deadlines (``DueIndex.due``, 500 at a time, each
page's rows then deleted as the projection would after the events are appended) until none is left,
then the next wake-up (``DueIndex.next_due``), in a transaction rolled back after each run. Emitting
the events (one fold and one append per due token) is the same whatever the total, and is left out.

Compared in the same run with:
a. the same tick on a due index holding only the D due tokens (the floor);
b. a sequential scan for the due rows of the big index (what a tick that scans every token costs).
"""

import argparse
import asyncio
import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from statistics import median
from typing import Any

import asyncpg

from bench.harness import fresh_database, machine, markdown_table, ratio, server, server_settings
from projections.deadlines import EXPIRY, ROTATION, UNWARNED, DeadlinesProjection
from projections.naming import renderer
from services.scheduler.due_index import DueIndex

LEADS = (timedelta(days=7), timedelta(days=1))
ROTATION_PERIOD = timedelta(days=90)
PAGE = 500
COLUMNS = ("token_id", "kind", "ref", "account_id", "due_at", "anchor_at", "warned_lead")


def rows(tokens: int, due: int, now: datetime, seed: int) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(seed)
    account = uuid.uuid4()
    for n in range(tokens):
        token = uuid.UUID(int=rng.getrandbits(128))
        if n < due:
            expires = now - timedelta(seconds=rng.uniform(1, 3600))
            warned = 86400
        elif rng.random() < 0.02:
            expires = now + timedelta(seconds=rng.uniform(3600, 7 * 86400))
            warned = 86400 if expires - now < timedelta(days=1) else 7 * 86400
        else:
            expires = now + timedelta(seconds=rng.uniform(7 * 86400 + 60, 365 * 86400))
            warned = UNWARNED
        yield (token, EXPIRY, 0, account, expires, None, warned)
        anchor = now - timedelta(seconds=rng.uniform(0, 80 * 86400))
        yield (token, ROTATION, 0, account, None, anchor, UNWARNED)


async def create_index(
    connection: asyncpg.Connection, suffix: str, tokens: int, due: int, now: datetime
) -> str:
    """A due index of ``tokens`` tokens in its own table and view; returns the view's name."""
    table, view = f"rm_token_deadlines_{suffix}", f"rm_token_deadlines_{suffix}_view"
    statements = [renderer({"token_deadlines": table})(sql) for sql in DeadlinesProjection().ddl()]
    create_table, indexes = statements[0], [s for s in statements[1:] if s.startswith("CREATE INDEX")]
    await connection.execute(create_table)
    await connection.copy_records_to_table(table, records=rows(tokens, due, now, seed=7), columns=COLUMNS)
    for sql in indexes:
        await connection.execute(sql)
    await connection.execute(f"ANALYZE {table}")
    await connection.execute(f"CREATE VIEW {view} AS SELECT * FROM {table}")
    return view


async def tick(connection: asyncpg.Connection, view: str, now: datetime) -> tuple[float, int]:
    """One tick's due-index work on ``view``, rolled back; (seconds, deadlines found)."""
    index = DueIndex(LEADS, ROTATION_PERIOD)
    transaction = connection.transaction()
    await transaction.start()
    try:
        await connection.execute(f"CREATE TEMPORARY VIEW rm_token_deadlines AS SELECT * FROM {view}")
        started = time.perf_counter()
        found = 0
        while True:
            page = await index.due(connection, now, PAGE)
            found += len(page.deadlines)
            tokens = [d.subject_id for d in page.deadlines]
            await connection.execute(
                f"DELETE FROM {view} WHERE token_id = ANY($1::uuid[]) AND kind = 'expiry'", tokens
            )
            if not page.more:
                break
        await index.next_due(connection, now)
        return time.perf_counter() - started, found
    finally:
        await transaction.rollback()


async def full_scan(connection: asyncpg.Connection, view: str, now: datetime) -> tuple[float, int]:
    """The due rows found by reading every row (index scans disabled)."""
    transaction = connection.transaction()
    await transaction.start()
    try:
        await connection.execute("SET LOCAL enable_indexscan = off")
        await connection.execute("SET LOCAL enable_bitmapscan = off")
        await connection.execute("SET LOCAL enable_indexonlyscan = off")
        started = time.perf_counter()
        found = await connection.fetchval(
            f"SELECT count(*) FROM (SELECT token_id FROM {view} WHERE due_at <= $1 ORDER BY due_at) AS due",
            now,
        )
        return time.perf_counter() - started, int(found)
    finally:
        await transaction.rollback()


async def timed(runs: int, measure: Any) -> tuple[float, int]:
    results = [await measure() for _ in range(runs)]
    return median(seconds for seconds, _ in results), results[-1][1]


async def main(args: argparse.Namespace) -> None:
    now = datetime.now(UTC)
    async with server() as server_dsn, fresh_database(server_dsn, "bench_scheduler") as dsn:
        connection = await asyncpg.connect(dsn)
        try:
            started = time.perf_counter()
            big = await create_index(connection, "big", args.tokens, args.due, now)
            populated = time.perf_counter() - started
            small = await create_index(connection, "small", args.due, args.due, now)
            size = await connection.fetchval(
                "SELECT pg_size_pretty(pg_total_relation_size('rm_token_deadlines_big'))"
            )
            big_tick, big_found = await timed(args.runs, lambda: tick(connection, big, now))
            small_tick, small_found = await timed(args.runs, lambda: tick(connection, small, now))
            scan, scan_found = await timed(args.runs, lambda: full_scan(connection, big, now))
            settings = await server_settings(dsn)
        finally:
            await connection.close()
    assert big_found == small_found == scan_found == args.due, (big_found, small_found, scan_found)
    print(f"# Scheduler tick cost ({machine()}, PostgreSQL {settings['version']})\n")
    print(
        f"Due index populated directly with COPY (not through the log): {args.tokens:,} tokens"
        f" ({2 * args.tokens:,} rows, {size}, {populated:.1f} s), {args.due:,} of them due."
        f" Median of {args.runs} runs; emission (fold + append per due token) not included.\n"
    )
    table = [
        ("tick, due index of all tokens", big_tick, big_found, ratio(big_tick, small_tick)),
        (f"tick, due index of the {args.due:,} due tokens only (baseline)", small_tick, small_found, 1.0),
        ("sequential scan of all tokens for the due ones", scan, scan_found, ratio(scan, small_tick)),
    ]
    print(
        markdown_table(
            ["case", "ms", "due found", "ratio to baseline"],
            [(name, f"{seconds * 1000:.2f}", f"{found:,}", f"{r:.2f}") for name, seconds, found, r in table],
        )
    )
    print(f"\nfull scan / indexed tick on the same {args.tokens:,} tokens: {ratio(scan, big_tick):.1f}x")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scheduler", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=5)
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
