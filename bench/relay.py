"""The Kafka relay's throughput next to a raw aiokafka producer, and its commit-to-Kafka latency.

    python -m bench.relay [--events 50000] [--rounds 3] [--rate 500] [--seconds 10] [--json FILE]

Throughput: ``--events`` published events (``token.revoked``, keyed over 100 accounts) are in the log
before the relay starts; the figure is events from its start to its checkpoint covering the last one
(every record acknowledged by the broker), per second. The baseline is a raw aiokafka producer with
the relay's producer settings (``services.relay.producer``: acks=all, idempotent) sending the same
records (same keys, headers and values, built beforehand) to topics of the same partition count,
from its start to the last acknowledgement. Rounds alternate baseline and relay; medians are shown.

Latency: with the relay running and caught up, one event is appended every ``1 / --rate`` s for
``--seconds``; for each event, the time from its append returning (the commit) to the relay having
it acknowledged by Kafka and checkpointed, and to a consumer (fetch.max.wait 100 ms) receiving it.

PostgreSQL is a new embedded server (or ``BENCH_DATABASE_URL``'s); Kafka is a local KRaft broker
(or ``BENCH_KAFKA_BOOTSTRAP_SERVERS``).
"""

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from bench import harness
from events import LogCursor, Metadata, NewEvent
from events.envelope import LOG_START
from events.tokens import TokenRevoked
from services import database
from services.eventstore import PostgresEventStore
from services.eventstore.notifications import LogNotifications
from services.kafka_local import LocalKafka
from services.ports import StreamState
from services.relay.cloudevents import CloudEventRecord, Topics, to_record
from services.relay.producer import new_producer
from services.relay.relay import Relay, RelayConfig
from services.relay.topics import ensure_topics

THROUGHPUT_AIM = 0.6  # issue 5: the relay reaches 0.6 of the raw producer
P99_AIM_MS = 250.0
PARTITIONS = 6
ACCOUNTS = 100
APPEND_SIZE = 1000
SOURCE = "urn:tokenledger:bench"


def revocations(count: int, start: int = 0) -> list[NewEvent]:
    now = datetime.now(UTC)
    return [
        NewEvent(
            event=TokenRevoked(
                token_id=str(uuid.uuid4()), account_id=f"account-{n % ACCOUNTS:03d}", reason="bench"
            ),
            metadata=Metadata(occurred_at=now, actor="system:bench"),
        )
        for n in range(start, start + count)
    ]


def new_topics() -> Topics:
    run = uuid.uuid4().hex[:8]
    return Topics(tokens=f"bench-{run}.tokens", accounts=f"bench-{run}.accounts")


@contextlib.asynccontextmanager
async def kafka() -> AsyncIterator[str]:
    external = os.environ.get("BENCH_KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    broker = LocalKafka()
    await asyncio.to_thread(broker.start)
    try:
        yield broker.bootstrap_servers
    finally:
        await asyncio.to_thread(broker.stop)


@contextlib.asynccontextmanager
async def relay_on(dsn: str, bootstrap: str, topics: Topics, name: str) -> AsyncIterator[Relay]:
    pool = await database.create_pool(dsn, min_size=2, max_size=4)
    notifications = LogNotifications(lambda: database.connect(dsn))
    await notifications.start()
    config = RelayConfig(
        bootstrap_servers=bootstrap, topics=topics, source=SOURCE, partitions=PARTITIONS, name=name
    )
    relay = Relay(config, PostgresEventStore(pool), notifications, lambda: database.connect(dsn))
    try:
        yield relay
    finally:
        await relay.stop()
        await notifications.stop()
        await pool.close()


async def fill_log(
    store: PostgresEventStore, events: int
) -> tuple[LogCursor, list[CloudEventRecord], Topics]:
    """Appends ``events`` revocations; returns the last cursor and the records they map to."""
    stream = f"bench-{uuid.uuid4().hex[:8]}"
    cursor = LOG_START
    for start in range(0, events, APPEND_SIZE):
        batch = revocations(min(APPEND_SIZE, events - start), start)
        cursor = (await store.append(stream, batch, StreamState.ANY)).cursor
    topics = new_topics()
    records = []
    after = LOG_START
    while page := await store.read_all(after, 5000):
        records += [r for e in page if (r := to_record(e, topics, SOURCE)) is not None]
        after = page[-1].cursor
    return cursor, records, topics


async def raw_producer_seconds(bootstrap: str, records: Sequence[CloudEventRecord]) -> float:
    topics = new_topics()
    await ensure_topics(bootstrap, topics.all(), partitions=PARTITIONS)
    producer = new_producer(bootstrap, client_id="bench-raw")
    began = time.perf_counter()
    await producer.start()
    try:
        acknowledgements = [
            await producer.send(topics.tokens, r.value, key=r.key, headers=r.headers) for r in records
        ]
        await asyncio.gather(*acknowledgements)
        return time.perf_counter() - began
    finally:
        await producer.stop()


async def relay_seconds(dsn: str, bootstrap: str, last: LogCursor) -> float:
    topics = new_topics()
    await ensure_topics(bootstrap, topics.all(), partitions=PARTITIONS)
    async with relay_on(dsn, bootstrap, topics, name=f"bench-{uuid.uuid4().hex[:8]}") as relay:
        began = time.perf_counter()
        await relay.start()
        if not await relay.wait_for(last, timeout=600):
            raise RuntimeError("the relay did not finish within 10 minutes")
        return time.perf_counter() - began


async def throughput(dsn: str, bootstrap: str, args: argparse.Namespace) -> dict[str, float]:
    pool = await database.create_pool(dsn, min_size=1, max_size=2)
    try:
        last, records, _ = await fill_log(PostgresEventStore(pool), args.events)
    finally:
        await pool.close()
    sizes = [len(r.value) + len(r.key) + sum(len(k) + len(v) for k, v in r.headers) for r in records]
    raw_runs, relay_runs = [], []
    for round_number in range(1, args.rounds + 1):
        raw_runs.append(len(records) / await raw_producer_seconds(bootstrap, records))
        relay_runs.append(len(records) / await relay_seconds(dsn, bootstrap, last))
        print(
            f"round {round_number}: raw producer {raw_runs[-1]:,.0f}/s, relay {relay_runs[-1]:,.0f}/s",
            file=sys.stderr,
        )
    return {
        "events": len(records),
        "record_bytes": statistics.mean(sizes),
        "raw_per_second": statistics.median(raw_runs),
        "relay_per_second": statistics.median(relay_runs),
    }


class Arrivals:
    """When each ``ce_id`` first reached the consumer."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self.ready = asyncio.Event()
        self.changed = asyncio.Event()

    async def wait_for(self, ids: set[str]) -> None:
        while not self.times.keys() >= ids:
            await self.changed.wait()
            self.changed.clear()


async def receive_times(bootstrap: str, topic: str, arrivals: Arrivals) -> None:
    """Consumes ``topic`` from its end, noting arrivals, until cancelled."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="latest", fetch_max_wait_ms=100
    )
    await consumer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            arrivals.ready.set()
            for records in batches.values():
                for record in records:
                    arrivals.times.setdefault(dict(record.headers)["ce_id"].decode(), now)
            if batches:
                arrivals.changed.set()
    finally:
        await consumer.stop()


async def latency(dsn: str, bootstrap: str, args: argparse.Namespace) -> dict[str, float]:
    topics = new_topics()
    await ensure_topics(bootstrap, topics.all(), partitions=PARTITIONS)
    pool = await database.create_pool(dsn, min_size=1, max_size=8)
    store = PostgresEventStore(pool)
    acknowledged: list[float] = []
    arrivals = Arrivals()
    committed_at: dict[str, float] = {}
    consumer = asyncio.create_task(receive_times(bootstrap, topics.tokens, arrivals))
    try:
        async with relay_on(dsn, bootstrap, topics, name=f"bench-{uuid.uuid4().hex[:8]}") as relay:
            await relay.start()
            caught_up = await store.append("bench-latency-0", revocations(1), StreamState.ANY)
            await relay.wait_for(caught_up.cursor, timeout=600)
            await arrivals.ready.wait()

            async def append_one(n: int) -> None:
                [event] = revocations(1, n)
                result = await store.append(f"bench-latency-{n % ACCOUNTS}", [event], StreamState.ANY)
                committed = time.perf_counter()
                committed_at[str(event.event_id)] = committed
                await relay.wait_for(result.cursor, timeout=60)
                acknowledged.append(time.perf_counter() - committed)

            total = int(args.rate * args.seconds)
            began = time.perf_counter()
            appends: list[asyncio.Task[None]] = []
            for n in range(total):  # open loop: an append starts on time even if others are slow
                await asyncio.sleep(max(0.0, began + n / args.rate - time.perf_counter()))
                appends.append(asyncio.create_task(append_one(n)))
            await asyncio.gather(*appends)
            achieved = total / (max(committed_at.values()) - began)
            async with asyncio.timeout(60):
                await arrivals.wait_for(set(committed_at))
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        await pool.close()
    consumed = [arrivals.times[event_id] - committed for event_id, committed in committed_at.items()]
    return {
        "rate": achieved,
        "events": len(consumed),
        "ack_p50_ms": harness.percentile(acknowledged, 0.5) * 1000,
        "ack_p99_ms": harness.percentile(acknowledged, 0.99) * 1000,
        "consume_p50_ms": harness.percentile(consumed, 0.5) * 1000,
        "consume_p99_ms": harness.percentile(consumed, 0.99) * 1000,
    }


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


async def main(args: argparse.Namespace) -> None:
    async with (
        harness.server() as server_dsn,
        harness.fresh_database(server_dsn, "bench_relay") as dsn,
        kafka() as bootstrap,
    ):
        print(f"machine: {harness.machine()}; load average at start {harness.load_average()}")
        rates = await throughput(dsn, bootstrap, args)
        delays = await latency(dsn, bootstrap, args)
    ratio = harness.ratio(rates["relay_per_second"], rates["raw_per_second"])
    print(
        f"\nThroughput: {rates['events']:,.0f} records of {rates['record_bytes']:.0f} bytes,"
        f" {PARTITIONS} partitions, median of {args.rounds} rounds\n"
    )
    print(
        harness.markdown_table(
            ["", "events/s", "ratio"],
            [
                ["raw aiokafka producer", f"{rates['raw_per_second']:,.0f}", "1.00"],
                ["relay (log -> acknowledged records)", f"{rates['relay_per_second']:,.0f}", f"{ratio:.2f}"],
            ],
        )
    )
    print(f"\nLatency at {delays['rate']:.0f} events/s ({delays['events']:.0f} events)\n")
    print(
        harness.markdown_table(
            ["commit to", "p50 ms", "p99 ms"],
            [
                [
                    "acknowledged by Kafka (relay checkpoint)",
                    f"{delays['ack_p50_ms']:.1f}",
                    f"{delays['ack_p99_ms']:.1f}",
                ],
                [
                    "received by a consumer",
                    f"{delays['consume_p50_ms']:.1f}",
                    f"{delays['consume_p99_ms']:.1f}",
                ],
            ],
        )
    )
    print(f"\nload average at end {harness.load_average()}")
    p99 = delays["ack_p99_ms"]
    verdicts = [
        f"throughput ratio {ratio:.2f} (aim >= {THROUGHPUT_AIM}): {_verdict(ratio >= THROUGHPUT_AIM)}",
        f"p99 commit-to-Kafka {p99:.1f} ms (aim < {P99_AIM_MS:.0f}): {_verdict(p99 < P99_AIM_MS)}",
    ]
    print("\n".join(verdicts))
    if args.json:
        document = {"machine": harness.machine(), "throughput": rates, "latency": delays, "ratio": ratio}
        await asyncio.to_thread(Path(args.json).write_text, json.dumps(document, indent=2) + "\n")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.relay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000, help="events for the throughput figure")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds; medians are shown")
    parser.add_argument("--rate", type=float, default=500.0, help="events/s for the latency figure")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of the latency run")
    parser.add_argument("--json", help="also write the raw figures to this file")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
