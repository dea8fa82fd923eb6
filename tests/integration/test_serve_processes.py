"""``serve --processes 2``, a real node of two HTTP processes on one port.

Which process accepts a connection is the kernel's choice; to hold one keep-alive connection to each,
the other process is paused (SIGSTOP) while a connection is opened, so only one can accept it. Then:
a command answered by one process is seen by a read on the other, or on process 1 itself, right
after (read-your-writes, with the projection runners in process 0 only), a revocation on one is
rejected by the other within the two-node bound, ``/metrics`` counts both, a killed process is
started again, and SIGTERM stops all.
"""

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.api.helpers import in_days
from tests.service_process import ServiceProcess, bootstrap_token


class Node:
    def __init__(self, service: ServiceProcess, token: str) -> None:
        self.service = service
        self.headers = {"Authorization": f"Bearer {token}"}
        self.sessions: dict[int, aiohttp.ClientSession] = {}

    async def connect_each(self) -> None:
        """One session per HTTP process, each on one keep-alive connection that process accepted."""
        children = self.service.children()
        for index, pid in children.items():
            others = [other for i, other in children.items() if i != index]
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
            for other in others:
                os.kill(other, signal.SIGSTOP)
            try:
                async with session.get(self.service.url + "/healthz") as response:
                    assert response.status == 200
            finally:
                for other in others:
                    os.kill(other, signal.SIGCONT)
            self.sessions[index] = session
            assert pid == self.service.children()[index]

    async def close(self) -> None:
        for session in self.sessions.values():
            await session.close()

    async def request(self, index: int, method: str, path: str, body: object = None) -> tuple[int, dict]:
        session = self.sessions[index]
        async with session.request(
            method, self.service.url + path, json=body, headers=self.headers
        ) as response:
            return response.status, (await response.json() if response.content_length else {})


@pytest.fixture
async def node(empty_database: str, tmp_path: Path) -> AsyncIterator[Node]:
    token = await bootstrap_token(empty_database, tmp_path)
    service = ServiceProcess(empty_database, tmp_path, processes=2, TOKENLEDGER_WORKERS="all")
    await service.start()
    assert sorted(service.children()) == [0, 1]
    node = Node(service, token)
    await node.connect_each()
    yield node
    await node.close()
    assert await service.stop() == 0


@pytest.mark.parametrize(("writer", "reader"), [(0, 1), (1, 0), (1, 1)])
async def test_a_command_on_one_process_is_read_on_the_other(node: Node, writer: int, reader: int) -> None:
    for trial in range(5):
        name = f"rw-{writer}-{trial}-{time.monotonic_ns()}"
        status, created = await node.request(
            writer, "POST", "/v3/system-accounts", {"name": name, "description": ""}
        )
        assert status == 201, created
        status, read = await node.request(reader, "GET", f"/v3/system-accounts/{created['id']}")
        assert (status, read["name"]) == (200, name)
        status, listed = await node.request(reader, "GET", f"/v3/system-accounts?filter[name][eq]={name}")
        assert status == 200 and [a["id"] for a in listed["data"]] == [created["id"]]


async def test_a_revocation_on_one_process_reaches_the_other(node: Node) -> None:
    status, account = await node.request(
        0, "POST", "/v3/system-accounts", {"name": "revoked", "description": ""}
    )
    assert status == 201
    status, issued = await node.request(
        1,
        "POST",
        f"/v3/system-accounts/{account['id']}/access-tokens",
        {"name": "t", "expires_at": in_days(1)},
    )
    assert status == 201, issued
    introspect = {"token": issued["token"]}
    for index in (0, 1):  # a token issued by one process is known at once to both
        status, verdict = await node.request(index, "POST", "/v3/tokens/introspect", introspect)
        assert (status, verdict["active"]) == (200, True)
    path = f"/v3/system-accounts/{account['id']}/access-tokens/{issued['id']}/revoke"
    status, _ = await node.request(1, "PATCH", path)
    answered = time.perf_counter()
    assert status in (200, 204)
    async with asyncio.timeout(1):
        while True:
            status, verdict = await node.request(0, "POST", "/v3/tokens/introspect", introspect)
            assert status == 200
            if not verdict["active"]:
                break
            await asyncio.sleep(0.002)
    print(f"revocation reached the other process after {(time.perf_counter() - answered) * 1000:.1f} ms")


async def test_metrics_count_every_process(node: Node) -> None:
    for index in (0, 1):
        for _ in range(3):
            assert (await node.request(index, "GET", "/v3/system-accounts"))[0] == 200
    for index in (0, 1):
        async with node.sessions[index].get(node.service.url + "/metrics", headers=node.headers) as response:
            assert response.status == 200
            text = await response.text()
        served = [
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("tokenledger_http_requests_total{")
            and 'route="/v3/system-accounts"' in line
            and 'method="GET"' in line
        ]
        assert sum(served) >= 6, text  # both processes' requests, whichever process answers
        pools = [line for line in text.splitlines() if line.startswith("tokenledger_db_pool_max_connections")]
        assert pools and float(pools[0].rsplit(" ", 1)[1]) == 40  # two pools of 20, summed


async def test_a_killed_process_is_started_again(node: Node) -> None:
    killed = node.service.children()[1]
    os.kill(killed, signal.SIGKILL)
    async with asyncio.timeout(60):
        while node.service.children()[1] == killed or node.service.ready_processes() < 3:
            await asyncio.sleep(0.1)
    async with aiohttp.ClientSession() as fresh:
        for _ in range(10):  # new connections, accepted by either process
            async with fresh.get(node.service.url + "/v3/system-accounts", headers=node.headers) as response:
                assert response.status == 200
    assert f"HTTP process 1 (pid {killed}) exited" in node.service.log_text()


async def test_sigterm_stops_every_process(empty_database: str, tmp_path: Path) -> None:
    service = ServiceProcess(empty_database, tmp_path, processes=2)
    await service.start()
    children = list(service.children().values())
    assert await service.stop() == 0
    assert not any(_running(pid) for pid in children)
    assert "stopping 2 HTTP processes" in service.log_text()


async def test_a_killed_node_takes_its_processes_with_it(empty_database: str, tmp_path: Path) -> None:
    service = ServiceProcess(empty_database, tmp_path, processes=2)
    await service.start()
    children = list(service.children().values())
    await service.stop(signal.SIGKILL)
    async with asyncio.timeout(10):
        while any(_running(pid) for pid in children):
            await asyncio.sleep(0.05)


def _running(pid: int) -> bool:
    """Neither gone nor a zombie waiting for whoever adopted it to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")
