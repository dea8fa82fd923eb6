"""Two service processes on one database: a revocation, a deletion or a disabled account handled
by one node takes effect on the other within 100 ms (its verifier follows the log via NOTIFY)."""

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.api.helpers import in_days
from tests.service_process import ServiceProcess, bootstrap_token

TRIALS = 5


@pytest.fixture
async def nodes(
    empty_database: str, tmp_path: Path
) -> AsyncIterator[tuple[ServiceProcess, ServiceProcess, str]]:
    token = await bootstrap_token(empty_database, tmp_path)
    first = ServiceProcess(empty_database, tmp_path)
    second = ServiceProcess(empty_database, tmp_path, TOKENLEDGER_WORKERS="none")
    await asyncio.gather(first.start(), second.start())
    yield first, second, token
    await asyncio.gather(first.stop(), second.stop())


async def _new_secret(session: aiohttp.ClientSession, url: str, token: str) -> tuple[str, str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    async with session.post(
        f"{url}/v3/system-accounts",
        json={"name": f"node-{time.monotonic_ns()}", "description": ""},
        headers=headers,
    ) as response:
        account = (await response.json())["id"]
    grant = {"role_name": "Viewer", "entity_type_name": "Identity", "entity_region": "*"}
    async with session.get(f"{url}/v3/organizations/me", headers=headers) as response:
        grant["entity_id"] = (await response.json())["id"]
    async with session.post(
        f"{url}/v3/system-accounts/{account}/assigned-roles", json=grant, headers=headers
    ):
        pass
    body = {"name": "t", "expires_at": in_days(1)}
    async with session.post(
        f"{url}/v3/system-accounts/{account}/access-tokens", json=body, headers=headers
    ) as r:
        issued = await r.json()
    return account, issued["id"], issued["token"]


async def _seconds_until_rejected(
    session: aiohttp.ClientSession, url: str, secret: str, since: float
) -> float:
    headers = {"Authorization": f"Bearer {secret}"}
    async with asyncio.timeout(5):
        while True:
            async with session.get(f"{url}/v3/system-accounts", headers=headers) as response:
                if response.status == 401:
                    return time.perf_counter() - since
                assert response.status == 200
            await asyncio.sleep(0.002)


async def _propagation(nodes: tuple[ServiceProcess, ServiceProcess, str], action: str) -> list[float]:
    first, second, token = nodes
    headers = {"Authorization": f"Bearer {token}"}
    delays = []
    async with aiohttp.ClientSession() as session:
        for _ in range(TRIALS):
            account, token_id, secret = await _new_secret(session, first.url, token)
            async with session.get(
                f"{second.url}/v3/system-accounts", headers={"Authorization": f"Bearer {secret}"}
            ) as r:
                assert r.status == 200  # cached as valid on the second node
            tokens = f"{first.url}/v3/system-accounts/{account}/access-tokens/{token_id}"
            requests = {
                "revoke": ("PATCH", tokens + "/revoke", None),
                "delete": ("DELETE", tokens, None),
                "disable": ("PATCH", f"{first.url}/v3/system-accounts/{account}", {"enabled": False}),
            }
            method, path, body = requests[action]
            async with session.request(method, path, json=body, headers=headers) as response:
                assert response.status in (200, 204)
                answered = time.perf_counter()
            delays.append(await _seconds_until_rejected(session, second.url, secret, answered))
    return delays


@pytest.mark.parametrize("action", ["revoke", "delete", "disable"])
async def test_the_other_node_rejects_within_100_ms(
    nodes: tuple[ServiceProcess, ServiceProcess, str], action: str
) -> None:
    delays = await _propagation(nodes, action)
    print(f"{action}: propagation to the second node, ms: {[round(d * 1000, 1) for d in delays]}")
    assert statistics.median(delays) <= 0.1, delays
    assert max(delays) <= 1.0, delays
