"""``tokenledger serve`` as a real process for tests about several nodes and crashes.

``ServiceProcess`` starts ``python -m services.cli serve`` on a free loopback port against a given
database (with one HTTP process unless told otherwise), waits for ``/readyz``, and can be stopped
(SIGTERM) or killed (SIGKILL); ``children`` reads the pids of its HTTP processes from its log.
``bootstrap_token`` runs ``tokenledger bootstrap`` against the same database and returns the printed token.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from tests.api_fixture import TEST_PEPPER

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def service_environment(dsn: str, data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "DATABASE_URL": dsn,
        "TOKENLEDGER_DATA_DIR": str(data_dir),
        "TOKENLEDGER_PEPPER": TEST_PEPPER,
        "TOKENLEDGER_WORKERS": "projector",
        **extra,
    }


async def bootstrap_token(dsn: str, data_dir: Path) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "bootstrap", "--name", "admin",
        env=service_environment(dsn, data_dir),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("spat_"), out
    return lines[0]


class ServiceProcess:
    def __init__(self, dsn: str, data_dir: Path, *, processes: int = 1, **environment: str) -> None:
        self.processes = processes
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._environment = service_environment(dsn, data_dir, **environment)
        self._log = data_dir / f"serve-{self.port}.log"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, ready_within: float = 60.0) -> None:
        data_dir = Path(self._environment["TOKENLEDGER_DATA_DIR"])
        data_dir.mkdir(parents=True, exist_ok=True)
        with self._log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "services.cli", "serve", "--port", str(self.port),
                "--processes", str(self.processes), env=self._environment, stdout=log, stderr=log,
            )  # fmt: skip
        async with aiohttp.ClientSession() as session, asyncio.timeout(ready_within):
            while True:
                assert self.process.returncode is None, self.log_text()
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(self.url + "/readyz") as response:
                        if response.status == 200 and (self.processes == 1 or self.all_ready()):
                            return
                await asyncio.sleep(0.05)

    def ready_processes(self) -> int:
        """How many times an HTTP process of this node said it is ready (restarts count again; the
        text log format)."""
        return self.log_text().count("services.serve: ready")

    def all_ready(self) -> bool:
        return self.ready_processes() >= self.processes

    def children(self) -> dict[int, int]:
        """Each HTTP process's index and pid, the latest started in each place (with several)."""
        started = re.findall(r"HTTP process (\d+) started \(pid (\d+)\)", self.log_text())
        return {int(index): int(pid) for index, pid in started}

    def log_text(self) -> str:
        return self._log.read_text(errors="replace") if self._log.exists() else ""

    async def stop(self, signum: signal.Signals = signal.SIGTERM, within: float = 20.0) -> int:
        """Sends ``signum`` and waits for the exit; a process that outlives ``within`` seconds is
        killed and the test fails with its log."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signum)
        try:
            async with asyncio.timeout(within):
                return await self.process.wait()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise AssertionError(f"serve did not stop within {within}s:\n{self.log_text()[-5000:]}") from None
