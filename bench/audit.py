"""Audit figures: ``python -m bench.audit [--events N] [--append-seconds S] [--as-of-events M]``.

a. What the hash chain costs appends: ``EventStore.append`` against the current ``tl_append``
   and against 0001's (without the chain, recreated in a second database), interleaved in the same
   run (the cases of ``bench.append``), so machine load hits both alike.
b. ``audit export`` of the whole log: the in-process rate of ``export_pages``, and the CLI as a child
   process writing to /dev/null, with its peak RSS (VmHWM), at 100,000 events and at N (default
   1,000,000): the same RSS at both is what constant memory means.
c. Sealing checkpoints over N events and ``audit verify`` of them (rate).
d. As-of latency for one account with M (default 10,000) events of its own, 20 tokens and 3 teams,
   in the N-event log: ``account_as_of``, ``roles_as_of``, ``tokens_as_of`` (p50 / p99 of 20 runs).

The log is written with ``bench.rebuild.LogGenerator`` events through ``tl_append`` itself, 5,000
events per call (many streams per call, expected version ANY), so every hash is the one the append
path computes; writing through the append function is what makes the chains valid.
"""

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from bench import harness
from bench.append import CASES, Case, run_store
from bench.rebuild import Generated, LogGenerator
from events import Event, Metadata, encode_event
from events.accounts import AccountCreated, AccountRoleAssigned, AccountRoleUnassigned, AccountUpdated
from events.teams import TeamCreated, TeamMemberAdded, TeamRoleAssigned
from events.tokens import TokenIssued
from services import database
from services.audit.as_of import account_as_of, roles_as_of, tokens_as_of
from services.audit.checkpoints import seal
from services.audit.export import export_pages
from services.audit.verify import verify

CHUNK = 5000
FIRST_EXPORT = 100_000
_metadata_encoder = msgspec.json.Encoder()
_APPEND_SQL = "SELECT count(*) FROM tl_append($1, $2, $3, $4, $5, $6, $7, '{}', '{}', '{}')"


def _chain_free_tl_append() -> str:
    """0001's ``tl_append`` (no hash chain), as a CREATE OR REPLACE."""
    return (Path(__file__).parent / "tl_append_without_hash_chain.sql").read_text()


async def append_cost(server_dsn: str, args: argparse.Namespace) -> str:
    async with (
        harness.fresh_database(server_dsn, "bench_chain") as chained,
        harness.fresh_database(server_dsn, "bench_nochain") as plain,
    ):
        connection = await asyncpg.connect(plain)
        try:
            await connection.execute(_chain_free_tl_append())
        finally:
            await connection.close()
        store_args = argparse.Namespace(seconds=args.append_seconds, warmup=1.0, settings={})
        rows = []
        for case in CASES:
            runs: dict[str, list[harness.Measurement]] = {"chain": [], "plain": []}
            for _ in range(args.repeat):
                runs["plain"].append(await run_store(plain, case, store_args, label="plain", listen=False))
                runs["chain"].append(await run_store(chained, case, store_args, label="chain", listen=False))
            rows.append(_append_row(case, runs))
            print(f"append {case.name}: {rows[-1]}", file=sys.stderr)
    headers = ["case", "0001 tl_append events/s", "0004 (hash chain) events/s", "ratio", "p50 ms 0001 / 0004"]
    return harness.markdown_table(headers, rows)


def _append_row(case: Case, runs: dict[str, list[harness.Measurement]]) -> list[str]:
    plain, chain = (
        sorted(runs[k], key=lambda m: m.events_per_second)[len(runs[k]) // 2] for k in ("plain", "chain")
    )
    return [
        case.name,
        f"{plain.events_per_second:,.0f}",
        f"{chain.events_per_second:,.0f}",
        f"{harness.ratio(chain.events_per_second, plain.events_per_second):.2f}",
        f"{plain.p50_ms:.2f} / {chain.p50_ms:.2f}",
    ]


def _arguments(batch: Sequence[tuple[str, Event, datetime]]) -> list[Any]:
    streams: dict[str, int] = {}
    stream_index, ids, types, data, metadata = [], [], [], [], []
    for stream_id, event, occurred_at in batch:
        stream_index.append(streams.setdefault(stream_id, len(streams) + 1))
        ids.append(uuid.uuid4())
        types.append(event.tag())
        data.append(encode_event(event).decode())
        meta = Metadata(occurred_at=occurred_at, actor="system:bench")
        metadata.append(_metadata_encoder.encode(meta).decode())
    return [list(streams), [-1] * len(streams), stream_index, ids, types, data, metadata]


async def append_events(
    pool: asyncpg.Pool, items: Iterator[tuple[str, Event, datetime]], count: int
) -> float:
    """Appends ``count`` items through tl_append, encoding the next chunk while one is written;
    returns the seconds it took."""
    started = time.perf_counter()
    pending: asyncio.Task[Any] | None = None
    written = 0
    while written < count:
        batch = [item for _, item in zip(range(min(CHUNK, count - written)), items, strict=False)]
        if not batch:
            break
        arguments = _arguments(batch)
        if pending is not None:
            await pending
        pending = asyncio.create_task(pool.fetchval(_APPEND_SQL, *arguments))
        written += len(batch)
    if pending is not None:
        await pending
    return time.perf_counter() - started


def generated(seed: int) -> Iterator[tuple[str, Event, datetime]]:
    item: Generated
    for item in LogGenerator(seed).events(10**12):
        yield item.stream_id, item.event, item.occurred_at


async def export_in_process(pool: asyncpg.Pool) -> tuple[int, float]:
    started = time.perf_counter()
    size = 0
    async for chunk in export_pages(pool):
        size += len(chunk)
    return size, time.perf_counter() - started


def _peak_rss_kib(pid: int) -> int | None:
    """VmHWM: the peak RSS of the process's own address space (``ru_maxrss`` would include the
    parent's, which a child inherits across fork and exec)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        return None
    return None


def export_child(dsn: str) -> tuple[float, int]:
    """Seconds and peak RSS (KiB) of ``tokenledger audit export > /dev/null``."""
    environment = {**os.environ, "DATABASE_URL": dsn}
    started = time.perf_counter()
    peak = 0
    with open(os.devnull, "wb") as sink:
        child = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "audit", "export"], stdout=sink, env=environment
        )
        while child.poll() is None:
            peak = max(peak, _peak_rss_kib(child.pid) or 0)
            time.sleep(0.05)
    if child.returncode != 0:
        raise RuntimeError(f"audit export exited {child.returncode}")
    return time.perf_counter() - started, peak


async def measure_export(pool: asyncpg.Pool, dsn: str, events: int) -> list[str]:
    size, seconds = await export_in_process(pool)
    child_seconds, rss = await asyncio.to_thread(export_child, dsn)
    return [
        f"{events:,}",
        f"{events / seconds:,.0f}",
        f"{size / events:.0f}",
        f"{events / child_seconds:,.0f}",
        f"{rss / 1024:.1f}",
    ]


def busy_account(account_id: str, events: int, start: datetime) -> Iterator[tuple[str, Event, datetime]]:
    """An account with ``events`` events of its own (role changes and updates), 20 tokens and 3
    teams with a role each, one second apart."""
    at = start
    stream = f"account-{account_id}"
    yield stream, AccountCreated(account_id=account_id, name=f"busy-{account_id[:8]}"), at
    for n in range(1, events):
        at += timedelta(seconds=1)
        assignment = f"{account_id[:8]}-{n // 3}"
        match n % 3:
            case 0:
                yield (
                    stream,
                    AccountUpdated(account_id=account_id, name=f"busy-{account_id[:8]}", description=str(n)),
                    at,
                )
            case 1:
                yield (
                    stream,
                    AccountRoleAssigned(
                        account_id=account_id,
                        assignment_id=assignment,
                        role_name="Viewer",
                        entity_id=str(n),
                        entity_type_name="Control Planes",
                        entity_region="eu",
                    ),
                    at,
                )
            case _:
                yield stream, AccountRoleUnassigned(account_id=account_id, assignment_id=assignment), at
    for n in range(20):
        token_id = str(uuid.uuid4())
        yield (
            f"token-{token_id}",
            TokenIssued(
                token_id=token_id,
                account_id=account_id,
                name=f"t{n}",
                secret_hash=uuid.uuid4().hex,
                expires_at=None,
            ),
            at,
        )
    for n in range(3):
        team_id = str(uuid.uuid4())
        stream = f"team-{team_id}"
        yield stream, TeamCreated(team_id=team_id, name=f"team-{n}-{team_id[:6]}"), at
        yield stream, TeamMemberAdded(team_id=team_id, account_id=account_id), at
        yield (
            stream,
            TeamRoleAssigned(
                team_id=team_id,
                assignment_id=str(uuid.uuid4()),
                role_name="Admin",
                entity_id="*",
                entity_type_name="Services",
                entity_region="us",
            ),
            at,
        )


async def as_of_latency(pool: asyncpg.Pool, events: int) -> list[list[str]]:
    account_id = str(uuid.uuid4())
    start = datetime(2024, 1, 1, tzinfo=UTC)
    await append_events(pool, busy_account(account_id, events, start), events + 20 + 9)
    middle, end = start + timedelta(seconds=events // 2), start + timedelta(seconds=events + 1)
    rows = []
    for name, read in (
        ("account_as_of", account_as_of),
        ("roles_as_of", roles_as_of),
        ("tokens_as_of", tokens_as_of),
    ):
        for label, at in (("middle of its history", middle), ("after all of it", end)):
            latencies = []
            for _ in range(20):
                started = time.perf_counter()
                await read(pool, account_id, at)
                latencies.append(time.perf_counter() - started)
            rows.append(
                [
                    name,
                    label,
                    f"{harness.percentile(latencies, 0.5) * 1000:.1f}",
                    f"{harness.percentile(latencies, 0.99) * 1000:.1f}",
                ]
            )
            print(f"as-of {rows[-1]}", file=sys.stderr)
    return rows


async def main(args: argparse.Namespace) -> None:
    print(f"machine: {harness.machine()}; load average at start {harness.load_average()}")
    async with harness.server() as server_dsn:
        if args.append_seconds > 0:
            print("\na. appends with and without the hash chain (median of interleaved runs)\n")
            print(await append_cost(server_dsn, args))
        async with harness.fresh_database(server_dsn, "bench_audit") as dsn:
            pool = await database.create_pool(dsn, min_size=2, max_size=4)
            try:
                await log_figures(pool, dsn, args)
            finally:
                await pool.close()
    print(f"\nload average at end {harness.load_average()}")


async def log_figures(pool: asyncpg.Pool, dsn: str, args: argparse.Namespace) -> None:
    items = generated(seed=3)
    first = min(FIRST_EXPORT, args.events)
    seconds = await append_events(pool, items, first)
    exports = [await measure_export(pool, dsn, first)]
    print(f"exported {exports[-1]}", file=sys.stderr)
    if args.events > first:
        seconds += await append_events(pool, items, args.events - first)
        exports.append(await measure_export(pool, dsn, args.events))
        print(f"exported {exports[-1]}", file=sys.stderr)
    print(
        f"\nlog written through tl_append: {args.events:,} events in {seconds:.1f} s"
        f" ({args.events / seconds:,.0f} events/s)"
    )
    print("\nb. export (whole log, JSON lines)\n")
    headers = [
        "events",
        "in-process events/s",
        "bytes/line",
        "CLI events/s (incl. start-up)",
        "CLI peak RSS MiB",
    ]
    print(harness.markdown_table(headers, exports))

    started = time.perf_counter()
    sealed = await seal(pool)
    sealing = time.perf_counter() - started
    started = time.perf_counter()
    report = await verify(pool)
    verifying = time.perf_counter() - started
    if not report.intact:
        raise RuntimeError(f"the benchmark log does not verify: {report.first}")
    print("\nc. checkpoints and verification\n")
    print(
        harness.markdown_table(
            ["step", "events", "seconds", "events/s"],
            [
                [
                    f"seal ({len(sealed)} checkpoints)",
                    f"{args.events:,}",
                    f"{sealing:.1f}",
                    f"{args.events / sealing:,.0f}",
                ],
                [
                    "audit verify",
                    f"{report.events:,}",
                    f"{verifying:.1f}",
                    f"{report.events / verifying:,.0f}",
                ],
            ],
        )
    )
    print(f"\nd. as-of latency, account with {args.as_of_events:,} events (ms, 20 runs)\n")
    rows = await as_of_latency(pool, args.as_of_events)
    print(harness.markdown_table(["read", "as of", "p50 ms", "p99 ms"], rows))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.audit", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="log size (default 1,000,000)")
    parser.add_argument("--as-of-events", type=int, default=10_000, help="events of the as-of account")
    parser.add_argument(
        "--append-seconds", type=float, default=4.0, help="seconds per append run; 0 skips part a"
    )
    parser.add_argument("--repeat", type=int, default=3, help="append runs per cell (median shown)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
