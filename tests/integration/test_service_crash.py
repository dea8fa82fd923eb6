"""SIGKILL of ``tokenledger serve`` in the middle of a command load: after a restart every command
whose response the client received is there, and nothing is half-written: every issued token has
its name claim, and the restarted read models hold exactly the tokens the log holds."""

import asyncio
import contextlib
import signal
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from tests.api.helpers import in_days
from tests.service_process import ServiceProcess, bootstrap_token

pytestmark = pytest.mark.slow

WRITERS = 8


async def _load(url: str, token: str, acknowledged: list[str], stop: asyncio.Event) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.post(f"{url}/v3/system-accounts", json={"name": "crash", "description": ""}) as r:
            account = (await r.json())["id"]

        async def writer(number: int) -> None:
            n = 0
            while not stop.is_set():
                n += 1
                body = {"name": f"w{number}-{n}", "expires_at": in_days(1)}
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.post(
                        f"{url}/v3/system-accounts/{account}/access-tokens", json=body
                    ) as r:
                        if r.status == 201:
                            acknowledged.append((await r.json())["id"])

        await asyncio.gather(*(writer(n) for n in range(WRITERS)))


async def test_a_killed_service_loses_no_acknowledged_command(empty_database: str, tmp_path: Path) -> None:
    token = await bootstrap_token(empty_database, tmp_path)
    node = ServiceProcess(empty_database, tmp_path)
    await node.start()
    acknowledged: list[str] = []
    stop = asyncio.Event()
    load = asyncio.create_task(_load(node.url, token, acknowledged, stop))
    async with asyncio.timeout(30):
        while len(acknowledged) < 50:
            await asyncio.sleep(0.01)
    assert await node.stop(signal.SIGKILL) == -signal.SIGKILL
    stop.set()
    await load

    restarted = ServiceProcess(empty_database, tmp_path)
    await restarted.start()
    try:
        connection = await asyncpg.connect(empty_database)
        try:
            issued = {
                r["id"]
                for r in await connection.fetch(
                    "SELECT data->>'token_id' AS id FROM events WHERE type = 'token.issued'"
                )
            }
            claims = await connection.fetchval(
                "SELECT count(*) FROM uniqueness_claims WHERE claim LIKE 'token-name:%'"
            )
            rows = {str(r["token_id"]) for r in await connection.fetch("SELECT token_id FROM rm_tokens")}
        finally:
            await connection.close()
        assert set(acknowledged) <= issued
        assert claims == len(issued)
        assert rows == issued
    finally:
        await restarted.stop()
