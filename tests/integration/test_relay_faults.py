"""The relay loses nothing and reorders nothing when it crashes or when Kafka goes away.

Each test appends a load of events (several concurrent writers, so transactions commit out of
position order; events of unpublished types; appends that fail; transactions that roll back), breaks
something in the middle, and then checks what a consumer ends with: the first copy of every record,
grouped by topic and key, must be exactly the log's published events in log order, and nothing that
did not commit may appear.
"""

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from events import LogCursor, Metadata, NewEvent
from events.accounts import AccountUpdated
from events.envelope import LOG_START
from events.tokens import TokenExtended, TokenRevoked, TokenUsed
from services.eventstore import PostgresEventStore
from services.kafka_local import LocalKafka
from services.ports import StreamAppend, StreamState, WrongExpectedVersion
from services.relay.cloudevents import Topics, to_record
from services.relay.relay import load_checkpoint
from tests.integration.eventstore_helpers import TL_APPEND_SQL, open_store, tl_append_args
from tests.relay_helpers import (
    TEST_SOURCE,
    RecordCollector,
    collecting,
    relay_config,
    relay_environment,
    running_relay,
    unique_topics,
)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ACCOUNTS = 16
WRITERS = 4
PUBLISHED_PER_APPEND = 10

Order = dict[tuple[str, str], list[str]]


def _new(event: AccountUpdated | TokenExtended | TokenUsed | TokenRevoked) -> NewEvent:
    return NewEvent(event=event, metadata=Metadata(occurred_at=datetime.now(UTC), actor="system:tests"))


class Load:
    """Appends batches of published events (10 per append) for a few accounts, with unpublished
    ``token.used`` events alongside; every 25th append also makes a failing append and a transaction
    that rolls back, whose event ids are kept in ``never``."""

    def __init__(self, store: PostgresEventStore, pool: asyncpg.Pool) -> None:
        self._store = store
        self._pool = pool
        self._run = os.urandom(3).hex()
        self.appends = 0
        self.last_cursor = LOG_START
        self.never: set[str] = set()

    def _account(self, n: int) -> str:
        return f"acc-{self._run}-{n % ACCOUNTS}"

    async def append(self, n: int) -> None:
        account = self._account(n)
        if n % 2 == 0:
            updates = [
                _new(AccountUpdated(account_id=account, name=f"{account}-{n}-{k}", description=""))
                for k in range(PUBLISHED_PER_APPEND)
            ]
            result = await self._store.append(f"account-{account}", updates, StreamState.ANY)
        else:
            token = f"tok-{account}-{n % 3}"
            expiry = datetime.now(UTC) + timedelta(days=1)
            extensions = [
                _new(
                    TokenExtended(
                        token_id=token, account_id=account, expires_at=expiry + timedelta(seconds=k)
                    )
                )
                for k in range(PUBLISHED_PER_APPEND)
            ]
            used = [_new(TokenUsed(token_id=token, account_id=account, used_at=datetime.now(UTC)))]
            result = await self._store.append_many(
                [
                    StreamAppend(f"token-{token}", extensions, StreamState.ANY),
                    StreamAppend(f"token-usage-{token}", used, StreamState.ANY),
                ]
            )
        self.appends += 1
        self.last_cursor = max(self.last_cursor, result.cursor)
        if n % 25 == 0:
            await self._append_what_never_commits(account, n)

    async def _append_what_never_commits(self, account: str, n: int) -> None:
        refused = _new(TokenRevoked(token_id=f"tok-{account}-x", account_id=account, reason="refused"))
        with contextlib.suppress(WrongExpectedVersion):
            await self._store.append(f"account-{account}", [refused], 10**9)
        rolled_back = _new(
            TokenRevoked(token_id=f"tok-{account}-y", account_id=account, reason="rolled back")
        )
        async with self._pool.acquire() as connection:
            transaction = connection.transaction()
            await transaction.start()
            await connection.fetch(TL_APPEND_SQL, *tl_append_args(f"token-{account}-{n}", [rolled_back]))
            await transaction.rollback()
        self.never |= {str(refused.event_id), str(rolled_back.event_id)}

    async def run(self, appends: int, first: int = 0, until: asyncio.Event | None = None) -> None:
        """``appends`` appends (numbered from ``first``) over ``WRITERS`` concurrent writers; fewer
        when ``until`` is set before they are done (each writer then ends its append and stops)."""
        numbers = iter(range(first, first + appends))

        async def writer() -> None:
            for n in numbers:
                if until is not None and until.is_set():
                    return
                await self.append(n)

        await asyncio.gather(*(writer() for _ in range(WRITERS)))

    async def run_steadily(self, per_second: float, stop: asyncio.Event) -> None:
        """One append every ``1 / per_second`` seconds until ``stop`` is set."""
        n = 0
        while not stop.is_set():
            began = time.perf_counter()
            await self.append(n)
            n += 1
            await asyncio.sleep(max(0.0, 1 / per_second - (time.perf_counter() - began)))


async def logged_order(store: PostgresEventStore, topics: Topics) -> Order:
    """The published events of the whole log, by (topic, key), in log order."""
    order: Order = defaultdict(list)
    cursor = LOG_START
    while batch := await store.read_all(cursor, 5000):
        for event in batch:
            record = to_record(event, topics, TEST_SOURCE)
            if record is not None:
                order[(record.topic, record.key.decode())].append(str(event.event_id))
        cursor = batch[-1].cursor
    return order


def delivered_order(collector: RecordCollector) -> Order:
    order: Order = defaultdict(list)
    for received in collector.first_copies():
        order[(received.topic, received.event.key)].append(received.event.id)
    return order


async def assert_everything_delivered_in_order(
    collector: RecordCollector, store: PostgresEventStore, topics: Topics, load: Load
) -> None:
    expected = await logged_order(store, topics)
    everything = {event_id for ids in expected.values() for event_id in ids}
    await collector.wait_until(lambda: collector.ids() >= everything, timeout=90)
    assert collector.ids() == everything, "a record for an event that is not in the log"
    assert delivered_order(collector) == expected
    assert load.never and collector.ids().isdisjoint(load.never)


async def _start_relay_process(
    dsn: str, bootstrap: str, topics: Topics, folder: Path
) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        **relay_environment(bootstrap, topics),
        "DATABASE_URL": dsn,
        "TOKENLEDGER_PEPPER": "a-pepper-for-the-relay-crash-test-only-0123456789",
        "TOKENLEDGER_DATA_DIR": str(folder),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    with (folder / "relay.log").open("ab") as log:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.cli",
            "relay",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
            env=env,
            cwd=REPO,
        )


async def test_a_relay_killed_in_the_middle_of_10000_events_delivers_all_of_them_after_a_restart(
    empty_database: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    topics = unique_topics()
    appends = 10_000 // PUBLISHED_PER_APPEND
    backlog = appends // 2  # in the log before the relay starts: it reads full batches
    while_frozen = appends // 10  # at least these commit while the relay is stopped, before its death
    async with open_store(empty_database) as (pool, store), collecting(kafka_bootstrap, topics) as collector:
        load = Load(store, pool)
        await load.run(backlog)
        relay = await _start_relay_process(empty_database, kafka_bootstrap, topics, tmp_path)
        frozen = asyncio.Event()
        writing = asyncio.create_task(load.run(appends - backlog - while_frozen, backlog, until=frozen))
        try:
            async with asyncio.timeout(60):
                while await events_covered(pool, await checkpoint_of(pool)) < 3000:
                    await asyncio.sleep(0.02)
            relay.send_signal(signal.SIGSTOP)
            frozen.set()
            await writing
            await load.run(appends - load.appends, first=load.appends)
        finally:
            relay.send_signal(signal.SIGKILL)
            await relay.wait()
        assert relay.returncode == -signal.SIGKILL
        killed_at = len(collector.records)
        restarting_from = await checkpoint_of(pool)
        assert LOG_START < restarting_from < load.last_cursor, "killed with part of the log acknowledged"

        restarted = await _start_relay_process(empty_database, kafka_bootstrap, topics, tmp_path)
        try:
            await assert_everything_delivered_in_order(collector, store, topics, load)
        finally:
            restarted.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                await restarted.wait()
        assert restarted.returncode == 0, (tmp_path / "relay.log").read_text()[-3000:]
    print(f"killed after {killed_at} records; {len(collector.records)} records in all")


async def test_a_broker_stopped_for_10_seconds_under_load_gets_every_event_afterwards(
    empty_database: str, kafka_faults: LocalKafka
) -> None:
    bootstrap = kafka_faults.bootstrap_servers
    topics = unique_topics()
    async with (
        open_store(empty_database) as (pool, store),
        collecting(bootstrap, topics) as collector,
        running_relay(empty_database, relay_config(bootstrap, topics)),
    ):
        load = Load(store, pool)
        stop_writing = asyncio.Event()
        writing = asyncio.create_task(load.run_steadily(per_second=25, stop=stop_writing))
        await collector.wait_until(lambda: len(collector.records) >= 200, timeout=30)

        await asyncio.to_thread(kafka_faults.stop_broker)
        appends_before = load.appends
        await asyncio.sleep(10)
        assert load.appends > appends_before + 100, "commands must go on while Kafka is down"
        await asyncio.to_thread(kafka_faults.start_broker)

        await asyncio.sleep(1)
        stop_writing.set()
        await writing
        await assert_everything_delivered_in_order(collector, store, topics, load)


async def test_a_relay_killed_while_kafka_is_down_has_not_checkpointed_what_kafka_never_acknowledged(
    empty_database: str, kafka_faults: LocalKafka, tmp_path: Path
) -> None:
    bootstrap = kafka_faults.bootstrap_servers
    topics = unique_topics()
    async with open_store(empty_database) as (pool, store), collecting(bootstrap, topics) as collector:
        load = Load(store, pool)
        relay = await _start_relay_process(empty_database, bootstrap, topics, tmp_path)
        try:
            await load.run(50)
            async with asyncio.timeout(30):
                while await checkpoint_of(pool) < load.last_cursor:
                    await asyncio.sleep(0.05)
            acknowledged = await checkpoint_of(pool)

            await asyncio.to_thread(kafka_faults.stop_broker)
            await load.run(200, first=50)
            await asyncio.sleep(2)  # the relay reads and hands these to its producer meanwhile
            assert await checkpoint_of(pool) == acknowledged, "checkpointed records Kafka never acknowledged"
        finally:
            relay.send_signal(signal.SIGKILL)
            await relay.wait()
        await asyncio.to_thread(kafka_faults.start_broker)
        restarted = await _start_relay_process(empty_database, bootstrap, topics, tmp_path)
        try:
            await assert_everything_delivered_in_order(collector, store, topics, load)
        finally:
            restarted.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                await restarted.wait()


async def checkpoint_of(pool: asyncpg.Pool) -> LogCursor:
    async with pool.acquire() as connection:
        return await load_checkpoint(connection, "kafka")


async def events_covered(pool: asyncpg.Pool, cursor: LogCursor) -> int:
    """How many events of the log are at or before ``cursor``."""
    count: int = await pool.fetchval(
        "SELECT count(*) FROM events WHERE (tx_id, global_position) <= ($1::bigint::text::xid8, $2::bigint)",
        *cursor,
    )
    return count
