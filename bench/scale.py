"""A deployment at scale: ``python -m bench.scale [--accounts 100000] [--tokens 1000000]
[--events 5000000] [--expiring 10000] [--json FILE]``.

Set-up: a throw-away database (embedded PostgreSQL unless ``BENCH_DATABASE_URL``) filled through the
event store's append path (``bench.scale_log``: hash chain, expected versions, name and membership
claims, real secret hashes): ``--accounts`` accounts, ``--tokens`` tokens over them, then the
generated history (token uses, rotations, revocations, renames, roles, teams...) up to ``--events``.

Measured, each next to a baseline of the same run:

1. a new node (``tokenledger serve``, ``--processes``) until ``/readyz`` answers 200, and its
   resident memory: the first node on the filled log (it builds every read model), a second one
   joining it (read models current), against one on an empty database;
2. introspection (``POST /v3/tokens/introspect``) of ``--introspect`` live tokens on the joining
   node: cold (each token's first verification there, a database read) against warm (the same
   tokens again, from its cache);
3. the list and filter endpoints on that node (sequential requests, median): accounts' first page
   against their last page (page size 100), the filters by name (``eq`` and ``contains``) and an
   account's tokens;
4. the scheduler: a node with every worker and the relay to a local Kafka broker (``tokenledger
   kafka-local``; or ``BENCH_KAFKA_BOOTSTRAP_SERVERS``), the relay's checkpoint at the head of the
   log (a relay that had kept up); ``--expiring`` tokens issued (already warned at both leads) to
   expire in the same second; the time from that second until a consumer has received the last
   ``token.expired``, against the first;
5. ``Projections.rebuild()`` of every read model, against a raw streaming read of the log
   (``bench.rebuild``).
"""

import argparse
import asyncio
import contextlib
import json
import math
import random
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiokafka import AIOKafkaConsumer

from bench import harness
from bench.issue_tokens import PEPPER, _environment, bootstrap_admin
from bench.rebuild import raw_read, rebuild_all
from bench.relay import kafka
from bench.scale_log import ACTOR, Filled, fill, token_secret
from bench.scale_node import Node, node
from events import Metadata, NewEvent
from events.tokens import TokenExpiringSoon, TokenIssued
from services import database
from services.eventstore import PostgresEventStore
from services.ports import Claim, StreamAppend, StreamState
from services.relay.cloudevents import cloud_event_type
from services.relay.topics import ensure_topics
from services.tokens import model as tokens
from services.tokens.secrets import secret_hash

TOKENS_TOPIC = "tokenledger.tokens"
PARTITIONS = 6
PAGE = 100
LEADS = (timedelta(days=7), timedelta(days=1))
EXPIRED = cloud_event_type("token.expired")

Row = list[str]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


# -- 2. introspection ----------------------------------------------------------------------------------


async def introspection_pass(
    session: aiohttp.ClientSession, url: str, bodies: Sequence[bytes], concurrency: int
) -> tuple[float, list[float], int]:
    """Each body introspected once, ``concurrency`` at a time: (seconds, latencies, answers active)."""
    latencies: list[float] = []
    active = 0
    queue = iter(bodies)

    async def worker() -> None:
        nonlocal active
        for body in queue:
            began = time.perf_counter()
            async with session.post(url + "/v3/tokens/introspect", data=body) as response:
                payload = await response.read()
            latencies.append(time.perf_counter() - began)
            if response.status != 200:
                raise RuntimeError(f"introspection: HTTP {response.status}: {payload[:200]!r}")
            active += payload.startswith(b'{"active":true')

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - began, latencies, active


def live_token_bodies(filled: Filled, count: int, seed: int) -> list[bytes]:
    """``count`` tokens live at the end of the log (account not disabled), with their current secret."""
    generator = filled.generator
    live = [t for t in generator.tokens.items if generator.token_account[t] not in generator.disabled]
    chosen = random.Random(seed).sample(live, min(count, len(live)))
    pepper = PEPPER.encode()
    return [
        json.dumps({"token": token_secret(pepper, t, generator.token_secret_version[t])}).encode()
        for t in chosen
    ]


async def introspection(joined: Node, token: str, filled: Filled, args: argparse.Namespace) -> list[Row]:
    bodies = live_token_bodies(filled, args.introspect, args.seed)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        cold = await introspection_pass(session, joined.url, bodies, args.concurrency)
        warm = await introspection_pass(session, joined.url, bodies, args.concurrency)
    rows = []
    for label, (seconds, latencies, active) in (("cold (first time on the node)", cold), ("warm", warm)):
        rows.append(
            [
                label,
                f"{len(bodies) / seconds:,.0f}",
                _ms(harness.percentile(latencies, 0.5)),
                _ms(harness.percentile(latencies, 0.99)),
                f"{active:,} / {len(bodies):,}",
                f"{harness.ratio(len(bodies) / seconds, len(bodies) / warm[0]):.2f}",
            ]
        )
    return rows


# -- 3. lists and filters ------------------------------------------------------------------------------


async def median_get(session: aiohttp.ClientSession, url: str, requests: int) -> tuple[float, Any]:
    """The median seconds of ``requests`` sequential GETs of ``url`` (after one discarded), and the
    last answer."""
    times = []
    answer: Any = None
    for n in range(requests + 1):
        began = time.perf_counter()
        async with session.get(url) as response:
            answer = await response.json()
            if response.status != 200:
                raise RuntimeError(f"GET {url}: HTTP {response.status}: {answer}")
        if n:
            times.append(time.perf_counter() - began)
    return statistics.median(times), answer


async def lists(joined: Node, token: str, args: argparse.Namespace) -> list[Row]:
    base = f"{joined.url}/v3/system-accounts"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
        _, page = await median_get(session, f"{base}?page[size]={PAGE}", 1)
        total = page["meta"]["page"]["total"]
        last_page = max(1, math.ceil(total / PAGE))
        account = next(a for a in page["data"] if not a["name"].startswith("bench-admin"))
        cases = [
            (f"accounts, page 1 of {last_page:,} (baseline)", f"{base}?page[size]={PAGE}"),
            (f"accounts, page {last_page:,} (last)", f"{base}?page[size]={PAGE}&page[number]={last_page}"),
            ("accounts, filter[name][eq]", f"{base}?filter[name][eq]={account['name']}"),
            (
                "accounts, filter[name][contains] (6 characters)",
                f"{base}?filter[name][contains]={account['name'][4:10]}",
            ),
            ("one account's tokens, page 1", f"{base}/{account['id']}/access-tokens?page[size]={PAGE}"),
        ]
        measured = [(label, *await median_get(session, url, args.requests)) for label, url in cases]
    first = measured[0][1]
    return [
        [label, _ms(seconds), f"{answer['meta']['page']['total']:,}", f"{harness.ratio(seconds, first):.2f}"]
        for label, seconds, answer in measured
    ]


# -- 4. the scheduler ----------------------------------------------------------------------------------


async def set_relay_checkpoint_to_head(pool: asyncpg.Pool) -> None:
    await pool.execute(
        "INSERT INTO relay_checkpoints (relay, tx_id, position)"
        " SELECT 'kafka', tx_id::text::bigint, global_position FROM events"
        " ORDER BY tx_id DESC, global_position DESC LIMIT 1"
        " ON CONFLICT (relay) DO UPDATE SET tx_id = excluded.tx_id, position = excluded.position"
    )


async def issue_expiring(
    store: PostgresEventStore, accounts: Sequence[str], count: int, at: datetime
) -> set[str]:
    """``count`` tokens over ``accounts`` expiring at ``at``, already warned at both leads; their ids."""
    now = datetime.now(UTC)
    pepper = PEPPER.encode()
    issued: set[str] = set()
    for start in range(0, count, 500):
        appends, claims = [], []
        for n in range(start, min(count, start + 500)):
            token_id, account_id = str(uuid.uuid4()), accounts[n % len(accounts)]
            name = f"expiring-{n}"
            stream = tokens.stream_of(token_id)
            secret = secret_hash(token_secret(pepper, token_id, 1), pepper)
            events = [
                TokenIssued(
                    token_id=token_id, account_id=account_id, name=name, secret_hash=secret, expires_at=at
                ),
                *(
                    TokenExpiringSoon(
                        token_id=token_id,
                        account_id=account_id,
                        expires_at=at,
                        lead_seconds=int(lead.total_seconds()),
                    )
                    for lead in LEADS
                ),
            ]
            metadata = Metadata(occurred_at=now, actor=ACTOR)
            new = tuple(NewEvent(event=e, metadata=metadata) for e in events)
            appends.append(StreamAppend(stream, new, StreamState.NO_STREAM))
            claims.append(Claim(tokens.name_claim(account_id, name), stream))
            issued.add(token_id)
        await store.append_many(appends, claims)
    return issued


class Expiries:
    """When each ``token.expired`` reached the consumer; ``done`` once every ``expected`` one has."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.expected: set[str] = set()
        self.others = 0
        self.done = asyncio.Event()

    def received(self, headers: dict[str, str], at: float) -> None:
        if headers["ce_type"] != EXPIRED:
            self.others += 1
            return
        self.arrivals.setdefault(headers["ce_subject"], at)
        if self.expected and self.arrivals.keys() >= self.expected:
            self.done.set()


async def consume(bootstrap: str, expiries: Expiries) -> None:
    """Consumes the tokens topic from its start until cancelled."""
    consumer = AIOKafkaConsumer(
        TOKENS_TOPIC, bootstrap_servers=bootstrap, auto_offset_reset="earliest", fetch_max_wait_ms=100
    )
    await consumer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for records in batches.values():
                for record in records:
                    expiries.received({name: value.decode() for name, value in record.headers}, now)
    finally:
        await consumer.stop()


async def scheduler(
    dsn: str, pool: asyncpg.Pool, data_dir: Path, filled: Filled, args: argparse.Namespace
) -> tuple[list[Row], dict[str, float]]:
    async with kafka() as bootstrap:
        await ensure_topics(bootstrap, [TOKENS_TOPIC], partitions=PARTITIONS)
        await set_relay_checkpoint_to_head(pool)
        extra = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "TOKENLEDGER_KAFKA_TOPIC_PARTITIONS": str(PARTITIONS)}
        async with node(dsn, data_dir, workers="all", extra=extra, processes=args.processes) as running:
            expiries = Expiries()
            consumer = asyncio.create_task(consume(bootstrap, expiries))
            try:
                wall = datetime.now(UTC)
                expires_at = wall.replace(microsecond=0) + timedelta(seconds=args.expiry_lead)
                due = time.perf_counter() + (expires_at - wall).total_seconds()
                store = PostgresEventStore(pool)
                live = set(filled.generator.accounts.items) - set(filled.generator.disabled.items)
                expiries.expected = await issue_expiring(store, sorted(live), args.expiring, expires_at)
                appended_ahead = due - time.perf_counter()
                await asyncio.wait_for(expiries.done.wait(), args.expiry_lead + 1800)
                if store.notices is not None:
                    await store.notices.flush()
            finally:
                consumer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await consumer
            scheduler_rss = running.rss_mib()
    times = sorted(expiries.arrivals[t] - due for t in expiries.expected)
    first, median, last = times[0], times[len(times) // 2], times[-1]
    figures = {
        "appended_ahead_s": appended_ahead,
        "first_s": first,
        "median_s": median,
        "last_s": last,
        "expired_per_s": len(times) / max(last - first, 1e-9),
        "other_records": expiries.others,
        "node_ready_s": running.ready_seconds,
        "node_rss_mib": scheduler_rss,
    }
    rows = [
        [label, f"{value:,.2f}", f"{harness.ratio(value, first):.1f}"]
        for label, value in (
            ("first token.expired received (baseline)", first),
            ("median token.expired received", median),
            (f"last of {len(times):,} token.expired received", last),
        )
    ]
    return rows, figures


# -- the run -------------------------------------------------------------------------------------------


def show(figures: dict[str, Any], key: str, title: str, headers: list[str], rows: list[Row]) -> None:
    """Prints a section's table as soon as it is measured, with the load average then."""
    figures[key] = {"rows": rows, "load": harness.load_average()}
    print(f"\n{title} (load {harness.load_average()})\n\n{harness.markdown_table(headers, rows)}", flush=True)


def _progress(written: int, seconds: float) -> None:
    print(
        f"  {written:,} events appended, {written / seconds:,.0f}/s, load {harness.load_average()}",
        flush=True,
    )


def _node_row(label: str, started: Node, baseline: float) -> Row:
    ratio = harness.ratio(started.ready_seconds, baseline)
    return [label, f"{started.ready_seconds:,.1f}", f"{ratio:.1f}", f"{started.rss_mib():,.0f}"]


async def nodes_and_reads(
    dsn: str,
    empty_dsn: str,
    data_dir: Path,
    filled: Filled,
    figures: dict[str, Any],
    args: argparse.Namespace,
) -> float:
    """Sections 1 to 3; returns the seconds the first node took to build the read models (its time
    to ready less the empty database's)."""
    token = await bootstrap_admin(_environment(dsn, data_dir))
    processes = args.processes
    async with node(empty_dsn, data_dir, workers="projector", processes=processes) as empty:
        rows = [_node_row("empty database (baseline)", empty, empty.ready_seconds)]
    async with node(dsn, data_dir, workers="projector", processes=processes) as first:
        rows.append(_node_row("first node: builds every read model", first, empty.ready_seconds))
        async with node(dsn, data_dir, workers="projector", processes=processes) as joined:
            rows.append(_node_row("second node joining: read models current", joined, empty.ready_seconds))
            listed = await lists(joined, token, args)  # first: the introspections' usage is then written
            introspected = await introspection(joined, token, filled, args)
            rows.append(["second node after the introspections", "", "", f"{joined.rss_mib():,.0f}"])
    show(
        figures,
        "nodes",
        "1. A new node until /readyz answers 200",
        ["node", "s", "vs empty", "RSS MiB"],
        rows,
    )
    show(
        figures,
        "introspection",
        f"2. Introspection of live tokens, concurrency {args.concurrency}",
        ["pass", "tokens/s", "p50 ms", "p99 ms", "active", "rate vs warm"],
        introspected,
    )
    show(
        figures,
        "lists",
        f"3. Lists and filters, median of {args.requests} sequential requests",
        ["request", "ms", "total matched", "vs page 1"],
        listed,
    )
    return first.ready_seconds - empty.ready_seconds


def rebuild_rows(events: int, reading: float, first_build: float, rebuild: float) -> list[Row]:
    raw = events / reading
    return [
        [label, f"{seconds:,.1f}", f"{events / seconds:,.0f}", f"{harness.ratio(events / seconds, raw):.2f}"]
        for label, seconds in (
            ("raw streaming read of the log (baseline)", reading),
            ("first build (first node's time to ready less the empty one's)", first_build),
            ("Projections.rebuild(), every read model", rebuild),
        )
    ]


async def main(args: argparse.Namespace) -> None:
    print(f"machine: {harness.machine()}; load average at start {harness.load_average()}", flush=True)
    figures: dict[str, Any] = {"args": vars(args), "machine": harness.machine()}
    data_dir = Path(tempfile.mkdtemp(prefix="tokenledger-bench-scale-"))  # the nodes' logs
    async with (
        contextlib.AsyncExitStack() as cleanup,
        harness.server() as server_dsn,
        harness.fresh_database(server_dsn, "bench_scale") as dsn,
        harness.fresh_database(server_dsn, "bench_scale_empty") as empty_dsn,
    ):
        cleanup.callback(shutil.rmtree, data_dir, ignore_errors=True)
        pool = await database.create_pool(dsn, min_size=2, max_size=10)
        try:
            sizes = {"accounts": args.accounts, "tokens": args.tokens, "events": args.events}
            filled = await fill(pool, **sizes, pepper=PEPPER.encode(), seed=args.seed, progress=_progress)
            size = await pool.fetchval("SELECT pg_size_pretty(pg_database_size(current_database()))")
            figures["fill"] = {"events": filled.events, "seconds": filled.seconds, "database": size}
            print(
                f"\nfilled: {filled.events:,} events in {filled.seconds:,.0f} s"
                f" ({filled.events / filled.seconds:,.0f} events/s through append_many); database {size};"
                f" load {harness.load_average()}",
                flush=True,
            )
            async with pool.acquire() as connection:
                reading, _, events = await raw_read(connection)
            first_build = await nodes_and_reads(dsn, empty_dsn, data_dir, filled, figures, args)
            scheduled, figures["scheduler"] = await scheduler(dsn, pool, data_dir, filled, args)
            show(
                figures,
                "scheduler_rows",
                f"4. Scheduler: {args.expiring:,} tokens expiring in one second, to a Kafka consumer"
                f" (issued {figures['scheduler']['appended_ahead_s']:.1f} s ahead;"
                f" {figures['scheduler']['expired_per_s']:,.0f} token.expired/s;"
                f" {figures['scheduler']['other_records']:,} other records on the topic)",
                ["received", "s after the expiry second", "vs first"],
                scheduled,
            )
            rebuild = await rebuild_all(dsn, pool, PostgresEventStore(pool))
            show(
                figures,
                "rebuild",
                f"5. Rebuild of {events:,} events",
                ["measure", "s", "events/s", "vs raw read"],
                rebuild_rows(events, reading, first_build, rebuild),
            )
            figures["rows"] = {
                name: await pool.fetchval(f"SELECT count(*) FROM rm_{name}")
                for name in ("accounts", "tokens", "role_assignments", "teams", "team_members")
            }
            figures["server"] = await harness.server_settings(dsn)
        finally:
            await pool.close()
    print(f"\nread model rows: {figures['rows']}; PostgreSQL {figures['server']['version']}")
    print(f"load average at end {harness.load_average()}")
    if args.json:
        await asyncio.to_thread(Path(args.json).write_text, json.dumps(figures, indent=2, default=str) + "\n")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--tokens", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=5_000_000, help="events in all, population included")
    parser.add_argument("--expiring", type=int, default=10_000, help="tokens expiring in the same second")
    parser.add_argument("--expiry-lead", type=int, default=20, help="seconds from their issue to that second")
    parser.add_argument(
        "--introspect", type=int, default=5_000, help="live tokens introspected cold then warm"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="introspection requests in flight")
    parser.add_argument("--requests", type=int, default=20, help="sequential requests per list case")
    parser.add_argument("--processes", type=int, default=1, help="HTTP processes per node")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="also write the figures to this file")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
