"""The OIDC token exchange against real ``tokenledger serve`` processes on one database, trusting a
local issuer (tests/oidc_issuer.py) through ``SSL_CERT_FILE``: an id-token exchanged on one node is
refused when replayed on another (the ``(iss, jti)`` claim is the database's, not a process's), and
a federated token is expired by the scheduler and its events reach Kafka like any other token's."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.oidc_issuer import LocalIssuer, github_claims
from tests.relay_helpers import collecting, relay_environment, unique_topics
from tests.service_process import ServiceProcess, bootstrap_token

AUDIENCE = "urn:tokenledger:exchange-test"
GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
COMMAND_EVENTS = "SELECT count(*) FROM events WHERE type NOT IN ('token.used', 'token.extended')"


@pytest.fixture
async def issuer(tmp_path: Path) -> AsyncIterator[LocalIssuer]:
    local = LocalIssuer(tmp_path)
    await local.start()
    yield local
    await local.close()


async def _trusting(url: str, admin: str, issuer: LocalIssuer, **account: Any) -> str:
    """A new account holding Viewer, with a federated credential trusting ``issuer``'s GitHub-shaped
    id-tokens of acme/deploy."""
    headers = {"Authorization": f"Bearer {admin}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        body = {"name": f"federated-{uuid.uuid4().hex[:8]}", "description": "", **account}
        async with session.post(f"{url}/v3/system-accounts", json=body) as reply:
            assert reply.status == 201, await reply.text()
            account_id: str = (await reply.json())["id"]
        async with session.get(f"{url}/v3/organizations/me") as reply:
            organization = (await reply.json())["id"]
        grant = {
            "role_name": "Viewer",
            "entity_type_name": "Identity",
            "entity_region": "*",
            "entity_id": organization,
        }
        async with session.post(f"{url}/v3/system-accounts/{account_id}/assigned-roles", json=grant) as reply:
            assert reply.status == 201, await reply.text()
        credential = {
            "name": "ci",
            "issuer": issuer.url,
            "subject": "repo:acme/deploy:*",
            "audiences": [AUDIENCE],
        }
        path = f"{url}/v3/system-accounts/{account_id}/federated-credentials"
        async with session.post(path, json=credential) as reply:
            assert reply.status == 201, await reply.text()
    return account_id


async def _exchange(url: str, id_token: str, agent: str, **fields: str) -> tuple[int, dict[str, Any]]:
    form = {"grant_type": GRANT, "subject_token": id_token, "subject_token_type": JWT_TYPE, **fields}
    async with (
        aiohttp.ClientSession(headers={"User-Agent": agent}) as session,
        session.post(f"{url}/v3/oauth/token", data=form) as reply,
    ):
        return reply.status, await reply.json()


async def _usage_rows(dsn: str, agent: str, count: int) -> list[asyncpg.Record]:
    """The usage log's rows of ``agent`` once there are ``count`` (each process flushes its own)."""
    connection = await asyncpg.connect(dsn)
    try:
        async with asyncio.timeout(10):
            while True:
                rows = await connection.fetch(
                    "SELECT outcome, reason, operation, account_id::text, issuer FROM usage_log"
                    " WHERE user_agent = $1 ORDER BY position",
                    agent,
                )
                if len(rows) >= count:
                    return rows
                await asyncio.sleep(0.1)
    finally:
        await connection.close()


async def test_an_id_token_exchanged_on_one_node_is_refused_on_another(
    empty_database: str, tmp_path: Path, issuer: LocalIssuer
) -> None:
    admin = await bootstrap_token(empty_database, tmp_path)
    trust = {"SSL_CERT_FILE": str(issuer.certificate), "TOKENLEDGER_USAGE_FLUSH_SECONDS": "0.2"}
    first = ServiceProcess(empty_database, tmp_path, **trust)
    second = ServiceProcess(empty_database, tmp_path, TOKENLEDGER_WORKERS="none", **trust)
    await asyncio.gather(first.start(), second.start())
    try:
        account_id = await _trusting(first.url, admin, issuer)
        id_token = issuer.mint(github_claims(AUDIENCE))
        agent = f"replay across nodes {uuid.uuid4().hex}"
        status, body = await _exchange(first.url, id_token, agent)
        assert status == 200, body
        connection = await asyncpg.connect(empty_database)
        try:
            before = await connection.fetchval(COMMAND_EVENTS)
            assert await _exchange(second.url, id_token, agent) == (400, {"error": "invalid_grant"})
            assert await connection.fetchval(COMMAND_EVENTS) == before
        finally:
            await connection.close()
        [replayed] = await _usage_rows(empty_database, agent, 1)  # a granted exchange is no row
        assert (replayed["outcome"], replayed["reason"], replayed["operation"]) == (
            "rejected",
            "replayed_jti",
            "token_exchange",
        )
        assert (replayed["account_id"], replayed["issuer"]) == (account_id, issuer.url)
    finally:
        await asyncio.gather(first.stop(), second.stop())


async def test_a_federated_token_is_expired_by_the_scheduler_and_its_events_reach_kafka(
    empty_database: str, tmp_path: Path, issuer: LocalIssuer, kafka_bootstrap: str
) -> None:
    """The token's lifetime is bounded by its account's (a federated token lives at least a minute
    otherwise): the scheduler expires it at its own ``expires_at``, from its own deadline."""
    topics = unique_topics()
    admin = await bootstrap_token(empty_database, tmp_path)
    environment = {**relay_environment(kafka_bootstrap, topics), "SSL_CERT_FILE": str(issuer.certificate)}
    node = ServiceProcess(empty_database, tmp_path, TOKENLEDGER_WORKERS="all", **environment)
    await node.start()
    try:
        async with collecting(kafka_bootstrap, topics) as collector:
            ends = time.time() + 4
            account_ends = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ends)) + "Z"
            account_id = await _trusting(node.url, admin, issuer, expires_at=account_ends)
            status, body = await _exchange(node.url, issuer.mint(github_claims(AUDIENCE)), "kafka expiry")
            assert status == 200, body
            assert body["expires_in"] <= 4
            headers = {"Authorization": f"Bearer {body['access_token']}"}
            async with aiohttp.ClientSession(headers=headers) as session:
                async with session.get(f"{node.url}/v3/system-accounts/{account_id}") as reply:
                    assert reply.status == 200

                def published(kind: str) -> list[Any]:
                    return [
                        r.event
                        for r in collector.records
                        if r.event.type == f"io.tokenledger.token.{kind}" and r.event.key == account_id
                    ]

                await collector.wait_until(lambda: bool(published("expired")), timeout=20)
                async with session.get(f"{node.url}/v3/system-accounts/{account_id}") as reply:
                    assert reply.status == 401
        [issued], [expired] = published("issued"), published("expired")
        assert expired.subject == issued.subject == issued.data["token_id"]
        assert expired.data["token_id"] == issued.data["token_id"]
        provenance = issued.data["federated"]
        assert (provenance["issuer"], provenance["subject"]) == (
            issuer.url,
            "repo:acme/deploy:ref:refs/heads/main",
        )
        assert provenance["claims"]["run_id"] == "987654321"
        assert "secret_hash" not in issued.data
    finally:
        await node.stop()
