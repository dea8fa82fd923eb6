"""SIGKILL of ``tokenledger serve`` in the middle of a burst of idempotent token issues and rotations,
then a restart and a retry of every request that got no answer, with its key: each retry answers with
the original secret, which works, or with a clear refusal (409), never a 5xx; and afterwards no token
is left active with a secret nobody was given."""

import asyncio
import contextlib
import signal
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from services.tokens.secrets import secret_hash
from tests.api.helpers import in_days
from tests.api_fixture import TEST_PEPPER
from tests.service_process import ServiceProcess, bootstrap_token

pytestmark = pytest.mark.slow

WRITERS = 6
ROTATED_TOKENS = 3
ANSWERED_BEFORE_THE_KILL = 40


@dataclass
class Sent:
    path: str
    body: dict[str, Any]
    key: str
    answer: tuple[int, dict[str, Any]] | None = None


async def _post(session: aiohttp.ClientSession, url: str, sent: Sent) -> tuple[int, dict[str, Any]]:
    async with session.post(url + sent.path, json=sent.body, headers={"Idempotency-Key": sent.key}) as r:
        return r.status, await r.json(content_type=None)


async def _burst(
    session: aiohttp.ClientSession, url: str, account: str, rotated: list[str], sent: list[Sent]
) -> None:
    async def writer(number: int) -> None:
        for n in range(10_000):
            if n % 2:
                token_id = rotated[(number + n) % len(rotated)]
                path = f"/v3/system-accounts/{account}/access-tokens/{token_id}/rotate"
                request = Sent(path, {"grace_period_seconds": 60 * (n % 3)}, str(uuid.uuid4()))
            else:
                path = f"/v3/system-accounts/{account}/access-tokens"
                request = Sent(path, {"name": f"w{number}-{n}", "expires_at": in_days(1)}, str(uuid.uuid4()))
            sent.append(request)
            try:
                request.answer = await _post(session, url, request)
            except aiohttp.ClientError:
                return

    await asyncio.gather(*(writer(n) for n in range(WRITERS)))


async def _active(session: aiohttp.ClientSession, url: str, secret: str) -> bool:
    async with session.post(url + "/v3/tokens/introspect", json={"token": secret}) as r:
        assert r.status == 200
        active: bool = (await r.json())["active"]
        return active


async def test_retries_after_a_kill_get_the_original_secret_or_a_refusal(
    empty_database: str, tmp_path: Path
) -> None:
    admin = await bootstrap_token(empty_database, tmp_path)
    node = ServiceProcess(empty_database, tmp_path)
    await node.start()
    given: set[str] = set()
    sent: list[Sent] = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {admin}"}) as session:
        async with session.post(
            f"{node.url}/v3/system-accounts", json={"name": "crash", "description": ""}
        ) as r:
            account = (await r.json())["id"]
        rotated = []
        for n in range(ROTATED_TOKENS):
            body = {"name": f"rotated-{n}", "expires_at": in_days(1)}
            async with session.post(f"{node.url}/v3/system-accounts/{account}/access-tokens", json=body) as r:
                issued = await r.json()
                rotated.append(issued["id"])
                given.add(issued["token"])
        burst = asyncio.create_task(_burst(session, node.url, account, rotated, sent))
        async with asyncio.timeout(60):
            while sum(s.answer is not None for s in sent) < ANSWERED_BEFORE_THE_KILL:
                await asyncio.sleep(0.01)
        assert await node.stop(signal.SIGKILL) == -signal.SIGKILL
        await burst

    for request in sent:
        if request.answer is not None:
            status, body = request.answer
            assert status in (200, 201), body
            given.add(body["token"])
    unanswered = [request for request in sent if request.answer is None]
    assert unanswered

    restarted = ServiceProcess(empty_database, tmp_path)
    await restarted.start()
    try:
        connection = await asyncpg.connect(empty_database)
        try:
            # The killed runs' claims would free themselves after the pending timeout (a minute);
            # let that minute pass at once.
            await connection.execute(
                "UPDATE idempotency_keys SET claimed_at = claimed_at - interval '2 minutes'"
                " WHERE state = 'pending'"
            )
        finally:
            await connection.close()
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {admin}"}) as session:
            refused = 0
            for request in unanswered:
                status, body = await _post(session, restarted.url, request)
                if status == 409:
                    assert body["detail"], body
                    refused += 1
                    continue
                assert status in (200, 201), body
                assert await _active(session, restarted.url, body["token"]), body
                given.add(body["token"])
                again = await _post(session, restarted.url, request)
                assert again[0] == status and again[1]["token"] == body["token"]

        hashes = {secret_hash(secret, TEST_PEPPER.encode()) for secret in given}
        connection = await asyncpg.connect(empty_database)
        try:
            usable = await connection.fetch(
                "SELECT s.secret_hash, s.token_id, s.secret_version FROM rm_token_secrets s"
                " JOIN rm_tokens t ON t.token_id = s.token_id"
                " WHERE t.state = 'ACTIVE' AND NOT t.deleted AND t.account_id = $1 AND NOT s.retired"
                " AND (s.secret_version = t.secret_version"
                "      OR (s.secret_version = t.secret_version - 1 AND s.valid_until > now()))",
                uuid.UUID(account),
            )
        finally:
            await connection.close()
        assert usable
        nobody_has = [
            (str(r["token_id"]), r["secret_version"]) for r in usable if r["secret_hash"] not in hashes
        ]
        assert nobody_has == [], f"{len(unanswered)} retried, {refused} refused"
    finally:
        with contextlib.suppress(AssertionError):
            await restarted.stop()
