"""The Kafka relay: follows the log from its own checkpoint and publishes the events downstream
services need as CloudEvents (``services.relay.cloudevents``), at least once and in log order per key.

How it stays lossless:

* One active relay across processes: a session advisory lock on a dedicated connection (the others
  stand by and retry). The checkpoint (table ``relay_checkpoints``) is written on that connection, so
  a relay that lost its lock cannot move it.
* The log is read gap-safely (``LogTail``), so nothing is published for an event that did not
  commit, and nothing committed is skipped.
* A batch's records are handed to the idempotent ``acks=all`` producer in log order; the checkpoint
  moves to the batch's last event only after the broker acknowledged every record of the batch and
  of the batches before it. Reading and sending the next batches overlaps with waiting for those
  acknowledgements (at most ``IN_FLIGHT_BATCHES`` batches in flight).
* Kafka down: the producer keeps retrying what it holds, ``send`` calls that time out are retried
  with back-off, and the relay stops reading the log while its in-flight batches are full; anything
  else (PostgreSQL, a refused record) ends the session, which starts again from the checkpoint after
  a back-off. Commands never wait for the relay: events simply wait in the log.

A restart re-sends what followed the checkpoint (duplicates with the same ``ce_id``). Per partition,
each producer delivers a prefix of what it was given, in order, and a session starts at a checkpoint
that everything before it reached; so the first copy of each event on a partition is in log order,
and a consumer that skips ids it has seen applies every event once, in order.

The relay is not a projection: rebuilding projections never touches its checkpoint, so a rebuild
never re-sends anything.
"""

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError

from events import LogCursor
from events.envelope import LOG_START
from follower.waiters import CursorWaiters
from follower.worker import BackgroundTask, Backoff, keep_running, take_session_lock
from projections.naming import lock_key
from services import metrics
from services.eventstore.notifications import LogNotifications, Waiter
from services.eventstore.tail import LogTail
from services.ports import EventStore
from services.relay.cloudevents import CloudEventRecord, Topics, to_record
from services.relay.producer import new_producer
from services.relay.topics import ensure_topics

_log = logging.getLogger(__name__)

Connect = Callable[[], Awaitable[asyncpg.Connection]]

LOCK_CLASS_RELAY = 0x746C726C  # "tlrl": one active relay per relay name
IN_FLIGHT_BATCHES = 4
PRODUCER_CLOSE_SECONDS = 10.0
LOCK_RETRY_SECONDS = 1.0
_FIRST_BACKOFF = 0.2
_LAST_BACKOFF = 10.0


class RelayConfig(msgspec.Struct, frozen=True, kw_only=True):
    bootstrap_servers: str
    topics: Topics
    source: str
    """The ``ce_source`` of every record: the deployment's URI."""
    partitions: int = 6
    replication_factor: int | None = None
    """For topics the relay creates; None: 3, or the number of brokers when there are fewer."""
    name: str = "kafka"
    """The checkpoint row and the lock: two relays of different names run independently."""
    batch_size: int = 1000


class RelayState(enum.StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"  # connecting to PostgreSQL or Kafka, or backing off after a failure
    STANDBY = "standby"  # another relay (here or in another process) holds the lock
    RUNNING = "running"


class _SentBatch(msgspec.Struct, frozen=True):
    cursor: LogCursor
    acknowledgements: list["asyncio.Future[Any]"]
    events: int
    """Log events the batch covers (published or not needed downstream)."""


CHECKPOINT_SQL = (
    "INSERT INTO relay_checkpoints AS c (relay, tx_id, position) VALUES ($1, $2, $3)"
    " ON CONFLICT (relay) DO UPDATE SET tx_id = excluded.tx_id, position = excluded.position,"
    " updated_at = now() WHERE (c.tx_id, c.position) < (excluded.tx_id, excluded.position)"
)


async def load_checkpoint(connection: asyncpg.Connection, relay: str) -> LogCursor:
    """The relay's checkpoint; the start of the log when it has none."""
    row = await connection.fetchrow("SELECT tx_id, position FROM relay_checkpoints WHERE relay = $1", relay)
    return LOG_START if row is None else LogCursor(row["tx_id"], row["position"])


class Relay:
    """The relay worker (``start``/``stop``); see the module docstring."""

    def __init__(
        self,
        config: RelayConfig,
        store: EventStore,
        notifications: LogNotifications,
        connect: Connect,
        *,
        lock_retry_seconds: float = LOCK_RETRY_SECONDS,
    ) -> None:
        self.config = config
        self._store = store
        self._notifications = notifications
        self._connect = connect
        self._lock_retry = lock_retry_seconds
        self._key = lock_key(config.name)
        self._waiter: Waiter | None = None
        self._state = RelayState.STOPPED
        self._published = CursorWaiters()
        self._backoff = Backoff(_FIRST_BACKOFF, _LAST_BACKOFF)
        self._task = BackgroundTask(f"relay-{config.name}", self._main)

    @property
    def state(self) -> RelayState:
        """What the relay is doing (a seam: the tests of its lock watch it stand by and take over)."""
        return self._state

    async def wait_for(self, cursor: LogCursor, timeout: float) -> bool:  # noqa: ASYNC109
        """Waits until this relay has published everything up to ``cursor``; False on timeout or when
        it stops (a seam for the tests and ``bench.relay``: commands never wait for the relay)."""
        return await self._published.wait_for(cursor, timeout)

    async def start(self) -> None:
        """Returns at once; the relay connects, takes its lock and catches up in the background."""
        if self._task.running:
            return
        self._waiter = self._notifications.waiter()
        self._state = RelayState.STARTING
        self._published.open()
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()
        self._published.close()
        if self._waiter is not None:
            self._notifications.forget(self._waiter)
            self._waiter = None
        self._state = RelayState.STOPPED

    # -- sessions --------------------------------------------------------------------------------

    async def _main(self) -> None:
        await keep_running(
            self._connected_session, what=f"kafka relay {self.config.name}", backoff=self._backoff
        )

    async def _connected_session(self) -> bool:
        connection: asyncpg.Connection | None = None
        try:
            connection = await self._connect()
            await self._session(connection)
            return False
        except Exception:
            metrics.RELAY_ERRORS.labels("session_failed").inc()
            raise
        finally:
            self._state = RelayState.STARTING
            if connection is not None:
                await _close(connection)

    async def _session(self, connection: asyncpg.Connection) -> None:
        """One connection's life: take the lock, make sure the topics exist, follow the log."""
        self._state = RelayState.STANDBY
        await take_session_lock(
            connection,
            LOCK_CLASS_RELAY,
            self._key,
            what=f"relay {self.config.name}",
            retry_seconds=self._lock_retry,
        )
        self._state = RelayState.STARTING
        config = self.config
        await ensure_topics(
            config.bootstrap_servers,
            config.topics.all(),
            partitions=config.partitions,
            replication_factor=config.replication_factor,
        )
        producer = new_producer(config.bootstrap_servers, client_id=f"tokenledger-relay-{config.name}")
        try:
            await producer.start()
            self._published.advance(await load_checkpoint(connection, config.name))
            self._state = RelayState.RUNNING
            self._backoff.reset()
            _log.info("kafka relay %s: publishing from %s", config.name, self._published.reached)
            sent: asyncio.Queue[_SentBatch] = asyncio.Queue(maxsize=IN_FLIGHT_BATCHES)
            async with asyncio.TaskGroup() as group:
                group.create_task(self._publish(producer, sent))
                group.create_task(self._acknowledge(connection, sent))
        finally:
            await _close_producer(producer)

    async def _publish(self, producer: AIOKafkaProducer, sent: "asyncio.Queue[_SentBatch]") -> None:
        assert self._waiter is not None
        tail = LogTail(self._store, self._waiter, batch_size=self.config.batch_size)
        batches = tail.batches(self._published.reached)
        try:
            async for batch in batches:
                acknowledgements = []
                for event in batch:
                    record = to_record(event, self.config.topics, self.config.source)
                    if record is not None:
                        acknowledgements.append(await self._send(producer, record))
                await sent.put(_SentBatch(batch[-1].cursor, acknowledgements, len(batch)))
        finally:
            close = getattr(batches, "aclose", None)
            if close is not None:
                await close()

    async def _send(self, producer: AIOKafkaProducer, record: CloudEventRecord) -> "asyncio.Future[Any]":
        """Hands one record to the producer, retrying while the producer cannot take it (no metadata,
        or its buffer for the partition is full because the broker is unreachable). A ``send`` that
        fails has queued nothing, so the retry keeps the order."""
        backoff: Backoff | None = None  # made on the first refusal only: this runs once per record
        while True:
            try:
                acknowledgement: asyncio.Future[Any] = await producer.send(
                    record.topic, record.value, key=record.key, headers=record.headers
                )
                return acknowledgement
            except KafkaTimeoutError:
                metrics.RELAY_ERRORS.labels("send_timeout").inc()
                backoff = backoff or Backoff(_FIRST_BACKOFF, _LAST_BACKOFF)
                _log.warning(
                    "kafka relay %s: Kafka takes no records; retrying in %.1fs",
                    self.config.name,
                    backoff.delay,
                )
                await backoff.sleep()

    async def _acknowledge(self, connection: asyncpg.Connection, sent: "asyncio.Queue[_SentBatch]") -> None:
        while True:
            batch = await sent.get()
            if batch.acknowledgements:
                await asyncio.gather(*batch.acknowledgements)
            await connection.execute(
                CHECKPOINT_SQL, self.config.name, batch.cursor.tx_id, batch.cursor.position
            )
            self._published.advance(batch.cursor)
            metrics.RELAY_PUBLISHED.inc(batch.events)


async def _close(connection: asyncpg.Connection) -> None:
    try:
        await asyncio.wait_for(connection.close(), 5)
    except (Exception, asyncio.CancelledError):
        connection.terminate()


async def _close_producer(producer: AIOKafkaProducer) -> None:
    """Flushes what the producer holds, for a while (records it could not deliver are re-sent by the
    next session, from the checkpoint)."""
    try:
        await asyncio.wait_for(producer.stop(), PRODUCER_CLOSE_SECONDS)
    except TimeoutError:
        _log.warning("kafka relay: the producer did not flush within %.0fs", PRODUCER_CLOSE_SECONDS)
    except Exception as error:
        _log.warning("kafka relay: closing the producer failed: %r", error)
