"""Helpers for tests of the Kafka relay: topics of one's own, a relay on a test database, and a
consumer that collects what reaches Kafka.

    topics = unique_topics()
    async with collecting(kafka_bootstrap, topics) as collector, running_relay(
        dsn, relay_config(kafka_bootstrap, topics)
    ):
        result = await store.append(...)
        [revoked] = await collector.wait_for_ids({str(event_id)})
        assert revoked.event.type == "io.tokenledger.token.revoked"

A process started with ``KAFKA_BOOTSTRAP_SERVERS``, ``TOKENLEDGER_KAFKA_TOKENS_TOPIC`` and
``TOKENLEDGER_KAFKA_ACCOUNTS_TOPIC`` set to the same values publishes where ``collecting`` listens.
"""

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import NamedTuple

from aiokafka import AIOKafkaConsumer

from services import database
from services.eventstore import PostgresEventStore
from services.eventstore.notifications import LogNotifications
from services.relay.cloudevents import CloudEvent, Topics, from_record
from services.relay.relay import Relay, RelayConfig
from services.relay.topics import ensure_topics

TEST_SOURCE = "urn:tokenledger:test"
TEST_PARTITIONS = 3


def unique_topics() -> Topics:
    """Topic names no other test uses."""
    run = uuid.uuid4().hex[:10]
    return Topics(tokens=f"test-{run}.tokens", accounts=f"test-{run}.accounts")


def relay_config(
    bootstrap: str, topics: Topics, *, name: str = "kafka", batch_size: int = 1000
) -> RelayConfig:
    return RelayConfig(
        bootstrap_servers=bootstrap,
        topics=topics,
        source=TEST_SOURCE,
        partitions=TEST_PARTITIONS,
        replication_factor=1,
        name=name,
        batch_size=batch_size,
    )


def relay_environment(bootstrap: str, topics: Topics) -> dict[str, str]:
    """Environment variables that make a ``tokenledger`` process relay to ``topics``."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "TOKENLEDGER_KAFKA_TOKENS_TOPIC": topics.tokens,
        "TOKENLEDGER_KAFKA_ACCOUNTS_TOPIC": topics.accounts,
        "TOKENLEDGER_KAFKA_TOPIC_PARTITIONS": str(TEST_PARTITIONS),
        "TOKENLEDGER_KAFKA_REPLICATION_FACTOR": "1",
        "TOKENLEDGER_DEPLOYMENT_URI": TEST_SOURCE,
    }


@contextlib.asynccontextmanager
async def running_relay(dsn: str, config: RelayConfig) -> AsyncIterator[Relay]:
    """A started relay (with its own pool and LISTEN connection) on the database of ``dsn``."""
    pool = await database.create_pool(dsn, min_size=1, max_size=4)
    notifications = LogNotifications(lambda: database.connect(dsn))
    await notifications.start()
    relay = Relay(
        config, PostgresEventStore(pool), notifications, lambda: database.connect(dsn), lock_retry_seconds=0.1
    )
    try:
        await relay.start()
        yield relay
    finally:
        await relay.stop()
        await notifications.stop()
        await pool.close()


class Received(NamedTuple):
    event: CloudEvent
    topic: str
    partition: int
    offset: int
    received_at: float
    """``time.perf_counter()`` when the consumer got the record."""


class RecordCollector:
    """Consumes the topics from their beginning and keeps every record, in per-partition order."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self._consumer = consumer
        self.records: list[Received] = []
        self._arrived = asyncio.Event()

    async def run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for records in batches.values():
                for record in records:
                    event = from_record(record.key, record.value, record.headers)
                    self.records.append(Received(event, record.topic, record.partition, record.offset, now))
            if batches:
                self._arrived.set()
                self._arrived = asyncio.Event()

    def ids(self) -> set[str]:
        return {received.event.id for received in self.records}

    def first_copies(self) -> list[Received]:
        """Each event once (its first copy), in the order the records arrived."""
        seen: set[str] = set()
        firsts = []
        for received in self.records:
            if received.event.id not in seen:
                seen.add(received.event.id)
                firsts.append(received)
        return firsts

    async def wait_until(self, done: Callable[[], bool], timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while not done():
                await self._arrived.wait()

    async def wait_for_ids(self, ids: Iterable[str], timeout: float = 30.0) -> list[Received]:
        """Waits until every id of ``ids`` arrived; returns the first copy of each, in ``ids`` order."""
        wanted = list(ids)
        await self.wait_until(lambda: self.ids() >= set(wanted), timeout)
        firsts = {received.event.id: received for received in reversed(self.records)}
        return [firsts[event_id] for event_id in wanted]


@contextlib.asynccontextmanager
async def collecting(
    bootstrap: str, topics: Topics | Sequence[str], *, partitions: int = TEST_PARTITIONS
) -> AsyncIterator[RecordCollector]:
    """A collector on ``topics`` (created first when missing, so the consumer sees every partition)."""
    names = topics.all() if isinstance(topics, Topics) else list(topics)
    await ensure_topics(bootstrap, names, partitions=partitions, replication_factor=1)
    consumer = AIOKafkaConsumer(
        *names,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        client_id="tokenledger-test-collector",
    )
    await consumer.start()
    collector = RecordCollector(consumer)
    task = asyncio.create_task(collector.run(), name="test-record-collector")
    try:
        yield collector
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await consumer.stop()
