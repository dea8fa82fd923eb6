"""The Kafka relay against a real broker and a real PostgreSQL: what is published, where, with which
headers and key; nothing uncommitted; checkpoints across a hand-over; the ``subscribe`` command."""

import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from events import Event, Metadata, NewEvent
from events.accounts import AccountCreated
from events.teams import TeamMemberAdded
from events.tokens import TokenIssued, TokenRevoked, TokenUsed
from services import database
from services.ports import StreamState, WrongExpectedVersion
from services.relay.lag import RelayLag, relay_lags
from services.relay.relay import CHECKPOINT_SQL, RelayState, load_checkpoint
from tests.integration.eventstore_helpers import TL_APPEND_SQL, new_id, open_store, tl_append_args
from tests.relay_helpers import (
    TEST_SOURCE,
    collecting,
    relay_config,
    relay_environment,
    running_relay,
    unique_topics,
)

REPO = Path(__file__).resolve().parents[2]


def new_event(event: Event) -> NewEvent:
    return NewEvent(event=event, metadata=Metadata(occurred_at=datetime.now(UTC), actor="system:tests"))


def issued(account: str, token: str) -> NewEvent:
    return new_event(
        TokenIssued(
            token_id=token,
            account_id=account,
            name=f"token-{token}",
            secret_hash="a-hash-that-stays-in-the-log",
            expires_at=datetime.now(UTC) + timedelta(days=30),
        )
    )


def revoked(account: str, token: str) -> NewEvent:
    return new_event(TokenRevoked(token_id=token, account_id=account, reason="compromised"))


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def test_a_revoked_token_reaches_the_tokens_topic_with_its_subject_and_key(
    empty_database: str, kafka_bootstrap: str, record_property: Callable[[str, object], None]
) -> None:
    topics = unique_topics()
    account, token = new_id(), new_id()
    async with (
        open_store(empty_database) as (_pool, store),
        collecting(kafka_bootstrap, topics) as collector,
        running_relay(empty_database, relay_config(kafka_bootstrap, topics)) as relay,
    ):
        issue = issued(account, token)
        await store.append(f"token-{token}", [issue], StreamState.NO_STREAM)
        used = new_event(TokenUsed(token_id=token, account_id=account, used_at=datetime.now(UTC)))
        await store.append(f"token-usage-{token}", [used], StreamState.ANY)
        [first] = await collector.wait_for_ids([str(issue.event_id)])

        revoke = revoked(account, token)
        result = await store.append(f"token-{token}", [revoke], 1)
        committed = time.perf_counter()
        [received] = await collector.wait_for_ids([str(revoke.event_id)])
        latency_ms = (received.received_at - committed) * 1000
        record_property("commit_to_consume_ms", round(latency_ms, 1))
        print(f"commit-to-consume latency of one revocation: {latency_ms:.1f} ms")
        assert await relay.wait_for(result.cursor, timeout=10)

    assert received.topic == topics.tokens
    assert received.event.type == "io.tokenledger.token.revoked"
    assert (received.event.subject, received.event.key, received.event.source) == (
        token,
        account,
        TEST_SOURCE,
    )
    assert received.event.data == {"token_id": token, "account_id": account, "reason": "compromised"}
    assert first.event.type == "io.tokenledger.token.issued"
    assert "secret_hash" not in first.event.data
    assert first.partition == received.partition and first.offset < received.offset
    # token.used is not published: it would sit between the two, on the same partition.
    assert str(used.event_id) not in collector.ids()


async def test_account_and_team_events_go_to_the_accounts_topic(
    empty_database: str, kafka_bootstrap: str
) -> None:
    topics = unique_topics()
    account, team = new_id(), new_id()
    created = new_event(AccountCreated(account_id=account, name=f"bot-{account}"))
    joined = new_event(TeamMemberAdded(team_id=team, account_id=account))
    async with (
        open_store(empty_database) as (_pool, store),
        collecting(kafka_bootstrap, topics) as collector,
        running_relay(empty_database, relay_config(kafka_bootstrap, topics)),
    ):
        await store.append(f"account-{account}", [created], StreamState.NO_STREAM)
        await store.append(f"team-{team}", [joined], StreamState.ANY)
        got_created, got_joined = await collector.wait_for_ids([str(created.event_id), str(joined.event_id)])
    assert (got_created.topic, got_created.event.key, got_created.event.subject) == (
        topics.accounts,
        account,
        account,
    )
    assert got_created.event.type == "io.tokenledger.account.created"
    assert (got_joined.topic, got_joined.event.key, got_joined.event.subject) == (topics.accounts, team, team)
    assert got_joined.event.data == {"team_id": team, "account_id": account}


async def test_nothing_that_did_not_commit_is_published(empty_database: str, kafka_bootstrap: str) -> None:
    """A transaction that rolls back and an append that fails leave no record, while what commits
    around them arrives."""
    topics = unique_topics()
    account, token = new_id(), new_id()
    stream = f"token-{token}"
    async with (
        open_store(empty_database) as (pool, store),
        collecting(kafka_bootstrap, topics) as collector,
        running_relay(empty_database, relay_config(kafka_bootstrap, topics)),
    ):
        issue = issued(account, token)
        await store.append(stream, [issue], StreamState.NO_STREAM)

        rolled_back = revoked(account, token)
        async with pool.acquire() as connection:
            transaction = connection.transaction()
            await transaction.start()
            await connection.fetch(TL_APPEND_SQL, *tl_append_args(stream, [rolled_back], 1))
            await asyncio.sleep(0.3)  # the relay runs meanwhile; the row is never visible to it
            await transaction.rollback()

        refused = revoked(account, token)
        with pytest.raises(WrongExpectedVersion):
            await store.append(stream, [refused], 5)

        marker = revoked(account, token)
        await store.append(stream, [marker], 1)
        await collector.wait_for_ids([str(issue.event_id), str(marker.event_id)])
    assert collector.ids().isdisjoint({str(rolled_back.event_id), str(refused.event_id)})


async def test_one_relay_runs_the_other_stands_by_and_takes_over_from_the_checkpoint(
    empty_database: str, kafka_bootstrap: str
) -> None:
    topics = unique_topics()
    account = new_id()
    config = relay_config(kafka_bootstrap, topics)
    created = new_event(AccountCreated(account_id=account, name=f"bot-{account}"))
    revoke = revoked(account, new_id())
    async with (
        open_store(empty_database) as (pool, store),
        collecting(kafka_bootstrap, topics) as collector,
        contextlib.AsyncExitStack() as first_only,
    ):
        first = await first_only.enter_async_context(running_relay(empty_database, config))
        await wait_until(lambda: first.state is RelayState.RUNNING)
        async with running_relay(empty_database, config) as second:
            await wait_until(lambda: second.state is RelayState.STANDBY)
            result = await store.append(f"account-{account}", [created], StreamState.NO_STREAM)
            assert await first.wait_for(result.cursor, timeout=30)
            assert second.state is RelayState.STANDBY
            async with pool.acquire() as connection:
                assert await load_checkpoint(connection, config.name) >= result.cursor

            await first_only.aclose()  # stops the first relay: the second takes over
            await wait_until(lambda: second.state is RelayState.RUNNING)
            later = await store.append(f"token-{new_id()}", [revoke], StreamState.ANY)
            assert await second.wait_for(later.cursor, timeout=30)
        await collector.wait_for_ids([str(revoke.event_id)])
    copies = [r for r in collector.records if r.event.id == str(created.event_id)]
    assert len(copies) == 1, "a clean hand-over re-sends nothing the checkpoint covers"


async def test_subscribe_prints_the_chosen_types_as_json_lines(
    empty_database: str, kafka_bootstrap: str
) -> None:
    topics = unique_topics()
    account, token = new_id(), new_id()
    async with (
        open_store(empty_database) as (_pool, store),
        running_relay(empty_database, relay_config(kafka_bootstrap, topics)) as relay,
    ):
        await store.append(
            f"account-{account}",
            [new_event(AccountCreated(account_id=account, name="b"))],
            StreamState.NO_STREAM,
        )
        await store.append(f"token-{token}", [issued(account, token)], StreamState.NO_STREAM)
        revoke = revoked(account, token)
        result = await store.append(f"token-{token}", [revoke], 1)
        assert await relay.wait_for(result.cursor, timeout=30)

    env = {
        **os.environ,
        **relay_environment(kafka_bootstrap, topics),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        "subscribe",
        "--type",
        "token.revoked",
        "--from-beginning",
        "--limit",
        "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=REPO,
    )
    async with asyncio.timeout(60):
        stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    [line] = stdout.decode().splitlines()
    printed = json.loads(line)
    assert printed["id"] == str(revoke.event_id)
    assert printed["type"] == "io.tokenledger.token.revoked"
    assert (printed["subject"], printed["key"], printed["topic"]) == (token, account, topics.tokens)
    assert printed["data"]["reason"] == "compromised"


async def test_the_checkpoint_only_moves_forward(empty_database: str) -> None:
    """``relay_checkpoints`` refuses to go back (a late writer cannot undo a newer checkpoint)."""
    connection = await database.connect(empty_database)
    try:
        relay = f"r-{uuid.uuid4().hex[:6]}"
        await connection.execute(CHECKPOINT_SQL, relay, 10, 100)
        await connection.execute(CHECKPOINT_SQL, relay, 9, 200)
        assert tuple(await load_checkpoint(connection, relay)) == (10, 100)
        await connection.execute(CHECKPOINT_SQL, relay, 10, 101)
        assert tuple(await load_checkpoint(connection, relay)) == (10, 101)
    finally:
        await connection.close()


async def test_the_relay_lag_counts_the_events_after_its_checkpoint(empty_database: str) -> None:
    """What ``/metrics`` shows as relay lag: no series before a first checkpoint, then the events
    after it and the age of the oldest, none once it holds the whole log."""
    async with open_store(empty_database) as (pool, store):
        assert await relay_lags(pool) == []
        account = new_id()
        created = new_event(AccountCreated(account_id=account, name=f"bot-{account[:8]}"))
        first = (await store.append(f"account-{account}", [created], StreamState.NO_STREAM)).events[0]
        tokens = [new_id() for _ in range(3)]
        last = first
        for token in tokens:
            last = (
                await store.append(f"token-{token}", [issued(account, token)], StreamState.NO_STREAM)
            ).events[0]
        await pool.execute(CHECKPOINT_SQL, "kafka", first.tx_id, first.global_position)
        [lag] = await relay_lags(pool)
        assert (lag.relay, lag.events) == ("kafka", 3) and 0 <= lag.seconds < 60
        await pool.execute(CHECKPOINT_SQL, "kafka", last.tx_id, last.global_position)
        assert await relay_lags(pool) == [RelayLag("kafka", 0, 0.0)]
