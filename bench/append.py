"""Events appended per second through ``EventStore.append``, next to raw asyncpg INSERTs of the same
rows into a plain table (same columns, a primary key and nothing else) at the same concurrency.

    python -m bench.append [--seconds 10] [--warmup 1] [--skip-no-notify] [--json FILE]

Cases: single-event appends at concurrency 1, 8 and 32, and 100-event appends at concurrency 8.
Each writer appends to a stream of its own with an exact expected version, as a command handler
does. The baseline makes one INSERT per event, or one multi-row INSERT (unnest) per 100 events.

A third column measures the same store calls without the NOTIFY that announces commits
(``PostgresEventStore(announce=False)``), to show what it costs: the store sends one NOTIFY, after
the commit, for all the appends that committed while the previous one was being sent
(``services.eventstore.commit_notices``). While the store runs with NOTIFY, one connection LISTENs,
as a tailing process would, and must hear the last append's cursor.

A fourth column measures the store without group commit (``PostgresEventStore(group_commit=False)``:
every append its own ``tl_append`` transaction, as before ``services.eventstore.group_commit``).
"""

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import msgspec

from bench import harness
from events import LogCursor, Metadata, NewEvent, encode_event
from events.accounts import AccountUpdated
from services import database
from services.eventstore import PostgresEventStore
from services.eventstore.notifications import CHANNEL

AIM = 0.5  # issue 2: single-event appends at concurrency 32 reach half the raw insert rate

BASELINE_TABLE = """
CREATE TABLE baseline_events (
    global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tx_id           xid8        NOT NULL DEFAULT pg_current_xact_id(),
    stream_id       text        NOT NULL,
    stream_version  bigint      NOT NULL,
    event_id        uuid        NOT NULL,
    type            text        NOT NULL,
    data            jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now()
)
"""
_COLUMNS = "stream_id, stream_version, event_id, type, data, metadata"
INSERT_ONE = f"INSERT INTO baseline_events ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
INSERT_MANY = (
    f"INSERT INTO baseline_events ({_COLUMNS})"
    " SELECT * FROM unnest($1::text[], $2::bigint[], $3::uuid[], $4::text[], $5::jsonb[], $6::jsonb[])"
)

_metadata_encoder = msgspec.json.Encoder()


@dataclass(frozen=True)
class Case:
    name: str
    concurrency: int
    batch: int


CASES = (
    Case("1 event/append, c=1", 1, 1),
    Case("1 event/append, c=8", 8, 1),
    Case("1 event/append, c=32", 32, 1),
    Case("100 events/append, c=8", 8, 100),
)


def new_events(count: int) -> list[NewEvent]:
    """Events of a realistic size (about 150 bytes of data and 150 of metadata)."""
    now = datetime.now(UTC)
    return [
        NewEvent(
            event=AccountUpdated(
                account_id=str(uuid.uuid4()), name=f"ci-bot-{n}", description="deploys the staging cluster"
            ),
            metadata=Metadata(
                occurred_at=now,
                actor=str(uuid.uuid4()),
                correlation_id=str(uuid.uuid4()),
                causation_id=str(uuid.uuid4()),
            ),
        )
        for n in range(count)
    ]


def rows(
    stream: str, version: int, batch: Sequence[NewEvent]
) -> list[tuple[str, int, uuid.UUID, str, str, str]]:
    """The columns tl_append would store for ``batch``, encoded the same way."""
    return [
        (
            stream,
            version + n,
            e.event_id,
            e.event.tag(),
            encode_event(e.event).decode(),
            _metadata_encoder.encode(e.metadata).decode(),
        )
        for n, e in enumerate(batch, start=1)
    ]


async def _pool(dsn: str, concurrency: int, settings: dict[str, str]) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=concurrency,
        max_size=concurrency,
        server_settings={**database.SERVER_SETTINGS, **settings},
    )
    assert pool is not None
    return pool


async def run_baseline(dsn: str, case: Case, args: argparse.Namespace) -> harness.Measurement:
    pool = await _pool(dsn, case.concurrency, args.settings)
    versions = [0] * case.concurrency
    streams = [f"baseline-{uuid.uuid4().hex[:8]}-{n}" for n in range(case.concurrency)]

    async def insert(worker: int) -> int:
        batch = rows(streams[worker], versions[worker], new_events(case.batch))
        if case.batch == 1:
            await pool.execute(INSERT_ONE, *batch[0])
        else:
            await pool.execute(INSERT_MANY, *(list(column) for column in zip(*batch, strict=True)))
        versions[worker] += case.batch
        return case.batch

    try:
        return await harness.measure(
            "baseline", insert, concurrency=case.concurrency, seconds=args.seconds, warmup=args.warmup
        )
    finally:
        await pool.close()


async def run_store(
    dsn: str, case: Case, args: argparse.Namespace, *, label: str, listen: bool, group_commit: bool = True
) -> harness.Measurement:
    pool = await _pool(dsn, case.concurrency, args.settings)
    store = PostgresEventStore(pool, announce=listen, group_commit=group_commit)
    versions = [0] * case.concurrency
    streams = [f"{label}-{uuid.uuid4().hex[:8]}-{n}" for n in range(case.concurrency)]
    heard: list[str] = []

    def on_notify(*arguments: object) -> None:
        heard.append(str(arguments[-1]))

    listener = await database.connect(dsn) if listen else None
    if listener is not None:
        await listener.add_listener(CHANNEL, on_notify)

    newest = LogCursor(0, 0)

    async def append(worker: int) -> int:
        nonlocal newest
        result = await store.append(streams[worker], new_events(case.batch), versions[worker])
        versions[worker] = result.events[-1].stream_version
        newest = max(newest, result.cursor)
        return case.batch

    try:
        measured = await harness.measure(
            label, append, concurrency=case.concurrency, seconds=args.seconds, warmup=args.warmup
        )
        if store.notices is not None:
            await store.notices.flush()
    finally:
        await pool.close()
        if listener is not None:
            await asyncio.sleep(0.2)
            await listener.close()
    if listen and f"{newest.tx_id}:{newest.position}" not in heard:
        raise RuntimeError(f"the listener did not hear the last append {newest}: {heard[-3:]}")
    if store.notices is not None:
        print(f"{label}: {store.notices.sent} NOTIFYs for {measured.operations} appends", file=sys.stderr)
    return measured


def _rate(m: harness.Measurement) -> str:
    return f"{m.events_per_second:,.0f}"


def _latency(m: harness.Measurement) -> str:
    return f"{m.p50_ms:.2f} / {m.p99_ms:.2f}"


def report(results: list[tuple[Case, dict[str, harness.Measurement]]], quiet: bool, ungrouped: bool) -> str:
    headers = [
        "case",
        "store events/s",
        "baseline events/s",
        "ratio",
        "store p50/p99 ms",
        "baseline p50/p99 ms",
    ]
    if quiet:
        headers += ["store without NOTIFY events/s", "with / without NOTIFY"]
    if ungrouped:
        headers += ["store without group commit events/s", "with / without group commit"]
    table = []
    for case, m in results:
        row = [
            case.name,
            _rate(m["store"]),
            _rate(m["baseline"]),
            f"{harness.ratio(m['store'].events_per_second, m['baseline'].events_per_second):.2f}",
            _latency(m["store"]),
            _latency(m["baseline"]),
        ]
        if quiet:
            with_notify = harness.ratio(m["store"].events_per_second, m["quiet"].events_per_second)
            row += [_rate(m["quiet"]), f"{with_notify:.2f}"]
        if ungrouped:
            grouped = harness.ratio(m["store"].events_per_second, m["ungrouped"].events_per_second)
            row += [_rate(m["ungrouped"]), f"{grouped:.2f}"]
        table.append(row)
    return harness.markdown_table(headers, table)


async def measure_case(
    case: Case, dsn: str, args: argparse.Namespace
) -> dict[str, list[harness.Measurement]]:
    """Every variant of one case, ``--repeat`` times, interleaved so that drift hits them alike."""
    runs: dict[str, list[harness.Measurement]] = {"baseline": [], "store": []}
    if not args.skip_no_notify:
        runs["quiet"] = []
    if not args.skip_ungrouped:
        runs["ungrouped"] = []
    for _ in range(args.repeat):
        runs["baseline"].append(await run_baseline(dsn, case, args))
        runs["store"].append(await run_store(dsn, case, args, label="store", listen=True))
        if not args.skip_no_notify:
            runs["quiet"].append(await run_store(dsn, case, args, label="quiet", listen=False))
        if not args.skip_ungrouped:
            runs["ungrouped"].append(
                await run_store(dsn, case, args, label="ungrouped", listen=True, group_commit=False)
            )
        line = ", ".join(
            f"{k} {_rate(m[-1])} events/s (p50/p99 {_latency(m[-1])} ms)" for k, m in runs.items()
        )
        print(f"{case.name}: {line}", file=sys.stderr)
    return runs


def median_run(runs: list[harness.Measurement]) -> harness.Measurement:
    return sorted(runs, key=lambda m: m.events_per_second)[len(runs) // 2]


async def main(args: argparse.Namespace) -> None:
    cases = [case for case in CASES if args.only is None or args.only in case.name]
    all_runs: list[tuple[Case, dict[str, list[harness.Measurement]]]] = []
    async with (
        harness.server() as server_dsn,
        harness.fresh_database(server_dsn) as dsn,
    ):
        settings = await harness.server_settings(dsn)
        settings.update(args.settings)
        print(f"machine: {harness.machine()}; load average at start {harness.load_average()}")
        print("PostgreSQL " + ", ".join(f"{k}={v}" for k, v in settings.items()))
        print(
            f"{args.seconds:g} s per run after {args.warmup:g} s of warm-up;"
            f" median of {args.repeat} interleaved run(s) per cell\n"
        )
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(BASELINE_TABLE)
        finally:
            await connection.close()
        for case in cases:
            all_runs.append((case, await measure_case(case, dsn, args)))

    results = [(case, {k: median_run(m) for k, m in runs.items()}) for case, runs in all_runs]
    print(report(results, not args.skip_no_notify, not args.skip_ungrouped))
    print(f"\nload average at end {harness.load_average()}")
    headline = next((m for case, m in results if case.concurrency == 32 and case.batch == 1), None)
    if headline is not None:
        achieved = harness.ratio(headline["store"].events_per_second, headline["baseline"].events_per_second)
        verdict = "met" if achieved >= AIM else "NOT met"
        print(
            f"aim: 1-event appends at c=32 reach >= {AIM} of the raw insert rate: {achieved:.2f} ({verdict})"
        )
    if args.json:
        document = {
            "machine": harness.machine(),
            "settings": settings,
            "seconds": args.seconds,
            "repeat": args.repeat,
            "cases": [
                {"case": case.name, **{k: [m.summary() for m in ms] for k, ms in runs.items()}}
                for case, runs in all_runs
            ],
        }
        await asyncio.to_thread(Path(args.json).write_text, json.dumps(document, indent=2) + "\n")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.append", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run (default 10)")
    parser.add_argument("--warmup", type=float, default=1.0, help="discarded seconds before each run")
    parser.add_argument(
        "--skip-no-notify", action="store_true", help="do not measure tl_append without NOTIFY"
    )
    parser.add_argument(
        "--skip-ungrouped", action="store_true", help="do not measure the store without group commit"
    )
    parser.add_argument(
        "--synchronous-commit",
        choices=["on", "off"],
        default="on",
        help="session setting for every writer (default on; 'off' is a labelled variant, not a headline)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per cell; the median is shown")
    parser.add_argument("--only", help="run only the cases whose name contains this text (e.g. c=32)")
    parser.add_argument("--json", help="also write the raw figures to this file")
    args = parser.parse_args(argv)
    args.settings = {} if args.synchronous_commit == "on" else {"synchronous_commit": "off"}
    return args


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
