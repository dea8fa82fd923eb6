"""The whole chain with every worker in one ``tokenledger serve``: a command over HTTP, or the
passage of time, ends as a CloudEvent on Kafka that a downstream consumer receives."""

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from tests.relay_helpers import collecting, relay_environment, unique_topics
from tests.service_process import ServiceProcess, bootstrap_token


@pytest.fixture
async def service(
    empty_database: str, tmp_path: Path, kafka_bootstrap: str
) -> AsyncIterator[tuple[ServiceProcess, str, dict[str, str]]]:
    topics = unique_topics()
    environment = relay_environment(kafka_bootstrap, topics)
    token = await bootstrap_token(empty_database, tmp_path)
    node = ServiceProcess(empty_database, tmp_path, TOKENLEDGER_WORKERS="all", **environment)
    await node.start()
    yield node, token, {"tokens": topics.tokens, "accounts": topics.accounts}
    await node.stop()


async def _issue(session: aiohttp.ClientSession, url: str, expires_in: timedelta) -> tuple[str, str]:
    async with session.post(f"{url}/v3/system-accounts", json={"name": "downstream", "description": ""}) as r:
        account = (await r.json())["id"]
    expires_at = (datetime.now(UTC) + expires_in).isoformat()
    body = {"name": "watched", "expires_at": expires_at}
    async with session.post(f"{url}/v3/system-accounts/{account}/access-tokens", json=body) as r:
        assert r.status == 201
        return account, (await r.json())["id"]


async def test_a_revocation_reaches_a_kafka_consumer_with_its_reason(
    service: tuple[ServiceProcess, str, dict[str, str]], kafka_bootstrap: str
) -> None:
    node, token, topics = service
    async with (
        collecting(kafka_bootstrap, [topics["tokens"]]) as collector,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session,
    ):
        account, token_id = await _issue(session, node.url, timedelta(days=1))
        async with session.patch(
            f"{node.url}/v3/system-accounts/{account}/access-tokens/{token_id}/revoke",
            json={"reason": "compromised"},
        ) as r:
            assert r.status == 200
            committed = time.perf_counter()

        def revoked() -> bool:
            return any(
                rec.event.type == "io.tokenledger.token.revoked" and rec.event.subject == token_id
                for rec in collector.records
            )

        await collector.wait_until(revoked, timeout=15)
        received = next(r for r in collector.records if r.event.type == "io.tokenledger.token.revoked")
        print(f"commit-to-consume latency: {(received.received_at - committed) * 1000:.1f} ms")
        assert received.event.key == account
        assert received.event.subject == token_id
        assert received.event.data == {"token_id": token_id, "account_id": account, "reason": "compromised"}


async def test_an_expiry_reaches_kafka_within_3_seconds(
    service: tuple[ServiceProcess, str, dict[str, str]], kafka_bootstrap: str
) -> None:
    node, token, topics = service
    async with (
        collecting(kafka_bootstrap, [topics["tokens"]]) as collector,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session,
    ):
        _, token_id = await _issue(session, node.url, timedelta(seconds=2))
        issued = time.perf_counter()

        def expired() -> bool:
            return any(
                rec.event.type == "io.tokenledger.token.expired" and rec.event.subject == token_id
                for rec in collector.records
            )

        await collector.wait_until(expired, timeout=10)
        arrived = next(r for r in collector.records if r.event.type == "io.tokenledger.token.expired")
        print(f"token.expired on Kafka {arrived.received_at - issued:.2f} s after issue (expiry at 2 s)")
        assert arrived.received_at - issued <= 3.0


async def test_an_account_lifetime_ends_as_account_expired_on_the_accounts_topic(
    service: tuple[ServiceProcess, str, dict[str, str]], kafka_bootstrap: str
) -> None:
    node, token, topics = service
    async with (
        collecting(kafka_bootstrap, [topics["accounts"]]) as collector,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session,
    ):
        expires_at = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
        body = {"name": "short-lived", "description": "", "expires_at": expires_at}
        async with session.post(f"{node.url}/v3/system-accounts", json=body) as r:
            assert r.status == 201
            account = await r.json()

        def expired() -> bool:
            return any(rec.event.type == "io.tokenledger.account.expired" for rec in collector.records)

        await collector.wait_until(expired, timeout=10)
        async with session.get(f"{node.url}/v3/system-accounts/{account['id']}") as r:
            shown = await r.json()
    received = next(r for r in collector.records if r.event.type == "io.tokenledger.account.expired")
    assert (received.topic, received.event.key, received.event.subject) == (
        topics["accounts"],
        account["id"],
        account["id"],
    )
    assert received.event.data == {"account_id": account["id"], "expires_at": account["expires_at"]}
    created = next(
        r
        for r in collector.records
        if r.event.type == "io.tokenledger.account.created" and r.event.subject == account["id"]
    )
    assert created.event.data["expires_at"] == account["expires_at"]
    assert shown["enabled"] is False
