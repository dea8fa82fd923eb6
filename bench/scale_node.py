"""One ``tokenledger serve`` node for ``bench.scale``: started as a subprocess against a database, timed
from its start until ``/readyz`` answers 200 (the runtime is open and the read models hold the whole
log, ``services.serve``), and its memory (resident set, from ``/proc``, over the process and its
children)."""

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.issue_tokens import _environment, _free_port

READY_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class Node:
    url: str
    pid: int
    ready_seconds: float

    def rss_mib(self) -> float:
        return resident_kib(self.pid) / 1024


def resident_kib(pid: int) -> int:
    """VmRSS of ``pid`` and of its descendants, in KiB (0 for a process already gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return 0
    own = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return own + sum(resident_kib(int(child)) for child in children)


async def _ready(session: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with session.get(url + "/readyz") as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


@contextlib.asynccontextmanager
async def node(
    dsn: str,
    data_dir: Path,
    *,
    workers: str,
    extra: dict[str, str] | None = None,
    processes: int = 1,
    ready_within: float = 3600.0,
) -> AsyncIterator[Node]:
    """A running node; yields once it is ready, with the seconds that took; stopped on exit."""
    environment = {**_environment(dsn, data_dir), "TOKENLEDGER_WORKERS": workers, **(extra or {})}
    port = _free_port()
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    log_path = data_dir / f"serve-{port}.log"
    url = f"http://127.0.0.1:{port}"
    began = time.perf_counter()
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.cli", "serve", "--port", str(port),
            "--processes", str(processes), env=environment, stderr=log,
        )  # fmt: skip
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            while not await _ready(session, url):
                if process.returncode is not None:
                    raise RuntimeError(f"serve exited: {log_path.read_text(errors='replace')[-2000:]}")
                if time.perf_counter() - began > ready_within:
                    raise RuntimeError(f"the node was not ready within {ready_within:.0f} s")
                await asyncio.sleep(READY_POLL_SECONDS)
        yield Node(url, process.pid, time.perf_counter() - began)
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()
