"""Single-event appends at concurrency 32: tokenledger's store next to pyeventsourcing's
``PostgresApplicationRecorder`` (its default mode and its ``enable_db_functions=True`` mode) and the
raw single-row INSERT of ``bench.append``, all on the same embedded PostgreSQL in one run.

    pip install -e '.[bench]'     # pyeventsourcing 9.x with psycopg, for this benchmark only
    python -m bench.against_eventsourcing [--seconds 5] [--warmup 1] [--repeat 1]

Every writer appends one event at a time to an aggregate (stream) of its own, at the next version.
pyeventsourcing's recorder is synchronous (psycopg 3): its 32 writers are 32 threads sharing a pool
of 32 connections, as an application served by 32 threads would be. Its default mode locks the
events table (``LOCK TABLE ... IN EXCLUSIVE MODE``) in each insert's transaction, which serialises
appends so that its notification ids commit in order; ``enable_db_functions=True`` calls a PL/pgSQL
function instead, without the table lock. Both NOTIFY in the inserting transaction.

What the two designs promise differs and the ratios should be read with that in mind: tokenledger
also checks expected versions under a per-stream lock, makes retries idempotent, takes uniqueness
claims and chains each event's hash; pyeventsourcing relies on the primary key
``(originator_id, originator_version)`` for optimistic concurrency and stores the event as bytes.
"""

import argparse
import asyncio
import sys
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg

from bench import harness
from bench.append import BASELINE_TABLE, Case, new_events, rows, run_baseline, run_store

try:
    from eventsourcing.persistence import StoredEvent
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
except ImportError:  # pragma: no cover - depends on the optional extra
    sys.exit("this benchmark needs pyeventsourcing: pip install -e '.[bench]'")

CASE = Case("1 event/append, c=32", 32, 1)
# Issue 15: the store's rate against each pyeventsourcing mode.
AIMS = {"eventsourcing default": 1.5, "eventsourcing db functions": 1.0}


@contextmanager
def recorder(dsn: str, schema: str, *, db_functions: bool) -> Iterator[PostgresApplicationRecorder]:
    """A recorder whose tables live in a schema of their own (each mode creates a function of the
    same name), with a pool as large as the number of writers."""
    url = urlsplit(dsn)
    socket_dir = parse_qs(url.query).get("host", [None])[0]  # the embedded server's socket folder
    datastore = PostgresDatastore(
        dbname=url.path.lstrip("/"),
        host=socket_dir or url.hostname or "localhost",
        port=url.port or 5432,
        user=unquote(url.username or "postgres"),
        password=unquote(url.password or ""),
        pool_size=CASE.concurrency,
        schema=schema,
        enable_db_functions=db_functions,
    )
    try:
        store = PostgresApplicationRecorder(datastore)
        store.create_table()
        yield store
    finally:
        datastore.close()


async def run_eventsourcing(
    dsn: str, args: argparse.Namespace, *, label: str, db_functions: bool
) -> harness.Measurement:
    schema = f"es_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f"CREATE SCHEMA {schema}")
    finally:
        await connection.close()
    loop = asyncio.get_running_loop()
    aggregates = [uuid.uuid4() for _ in range(CASE.concurrency)]
    versions = [0] * CASE.concurrency
    with (
        recorder(dsn, schema, db_functions=db_functions) as store,
        ThreadPoolExecutor(CASE.concurrency) as threads,
    ):

        def insert(worker: int) -> None:
            _, version, _, topic, data, metadata = rows(
                str(aggregates[worker]), versions[worker], new_events(1)
            )[0]
            event = StoredEvent(aggregates[worker], version, topic, (data + metadata).encode())
            store.insert_events([event])
            versions[worker] = version

        async def append(worker: int) -> int:
            await loop.run_in_executor(threads, insert, worker)
            return 1

        return await harness.measure(
            label, append, concurrency=CASE.concurrency, seconds=args.seconds, warmup=args.warmup
        )


def median_run(runs: list[harness.Measurement]) -> harness.Measurement:
    return sorted(runs, key=lambda m: m.events_per_second)[len(runs) // 2]


async def main(args: argparse.Namespace) -> None:
    runs: dict[str, list[harness.Measurement]] = {
        "tokenledger": [],
        "eventsourcing default": [],
        "eventsourcing db functions": [],
        "raw INSERT": [],
    }
    async with harness.server() as server_dsn, harness.fresh_database(server_dsn) as dsn:
        settings = await harness.server_settings(dsn)
        print(f"machine: {harness.machine()}; load average at start {harness.load_average()}")
        print("PostgreSQL " + ", ".join(f"{k}={v}" for k, v in settings.items()))
        print(
            f"{CASE.name}: {args.seconds:g} s per run after {args.warmup:g} s of warm-up;"
            f" median of {args.repeat} interleaved run(s)\n"
        )
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(BASELINE_TABLE)
        finally:
            await connection.close()
        for _ in range(args.repeat):
            runs["raw INSERT"].append(await run_baseline(dsn, CASE, args))
            runs["tokenledger"].append(await run_store(dsn, CASE, args, label="store", listen=True))
            runs["eventsourcing default"].append(
                await run_eventsourcing(dsn, args, label="eventsourcing default", db_functions=False)
            )
            runs["eventsourcing db functions"].append(
                await run_eventsourcing(dsn, args, label="eventsourcing db functions", db_functions=True)
            )
            line = ", ".join(f"{k} {m[-1].events_per_second:,.0f}" for k, m in runs.items())
            print(f"run: {line} events/s (load {harness.load_average()})", file=sys.stderr)

    medians = {k: median_run(m) for k, m in runs.items()}
    ours = medians["tokenledger"].events_per_second
    table = [
        [
            name,
            f"{m.events_per_second:,.0f}",
            f"{m.p50_ms:.2f} / {m.p99_ms:.2f}",
            f"{harness.ratio(ours, m.events_per_second):.2f}",
            f">= {AIMS[name]}" if name in AIMS else "",
        ]
        for name, m in medians.items()
    ]
    headers = ["writer", "events/s", "p50/p99 ms", "tokenledger / this", "aim"]
    print(harness.markdown_table(headers, table))
    print(f"\nload average at end {harness.load_average()}")
    for name, aim in AIMS.items():
        achieved = harness.ratio(ours, medians[name].events_per_second)
        print(
            f"aim: tokenledger >= {aim}x {name}: {achieved:.2f} ({'met' if achieved >= aim else 'NOT met'})"
        )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.against_eventsourcing", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per run (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="discarded seconds before each run")
    parser.add_argument("--repeat", type=int, default=1, help="runs per writer; the median is shown")
    args = parser.parse_args(argv)
    args.settings = {}
    return args


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
