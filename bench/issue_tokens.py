"""Issue-token commands per second over HTTP, next to raw asyncpg INSERTs of one event row each at the
same concurrency, same run.

    python -m bench.issue_tokens [--seconds 10] [--warmup 2] [--concurrency 32] [--processes N]
                                 [--json FILE]

The service is the real thing: ``tokenledger serve --processes N`` (default: the cores) (production wiring,
every middleware, the projector worker; no Kafka), on a throw-away database of the benchmark's
PostgreSQL (embedded unless ``BENCH_DATABASE_URL``); the admin token comes from ``tokenledger
bootstrap``. Each client loop issues tokens with new names to an account of its own, so requests do
not contend on one account's stream: what is measured is the command path (authentication, parsing,
folding the account, the append with its name claim and account condition, waiting for this node's
read models and verifier) rather than a conflict storm. The baseline is one INSERT of an event-sized
row into a plain table per operation (``bench.append``'s baseline), which is what a command that did
nothing but write its event would cost.
"""

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg

from bench import harness
from bench.append import BASELINE_TABLE, Case, run_baseline
from services.supervisor import default_processes

AIM = 0.3  # issue 3: at least 0.3 of the raw insert rate
PEPPER = "bench-pepper-0123456789abcdef0123456789"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _environment(dsn: str, data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": dsn,
        "TOKENLEDGER_DATA_DIR": str(data_dir),
        "TOKENLEDGER_PEPPER": PEPPER,
        "TOKENLEDGER_WORKERS": "projector",
    }


READY_LINE = b"services.serve: ready"


async def bootstrap_admin(environment: dict[str, str]) -> str:
    """An admin token from ``tokenledger bootstrap`` run with ``environment``."""
    bootstrap = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "bootstrap", "--name", f"bench-admin-{os.getpid()}",
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    token = (await bootstrap.communicate())[0].decode().strip()
    if bootstrap.returncode != 0 or not token.startswith("spat_"):
        raise RuntimeError("tokenledger bootstrap failed")
    return token


@contextlib.asynccontextmanager
async def service(
    dsn: str, data_dir: Path, processes: int = 1, workers: str = "projector"
) -> AsyncIterator[tuple[str, str]]:
    """A ``tokenledger serve --processes N`` node; yields its base URL (once every HTTP process is
    ready) and an admin token."""
    environment = {**_environment(dsn, data_dir), "TOKENLEDGER_WORKERS": workers}
    token = await bootstrap_admin(environment)
    port = _free_port()
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    log_path = data_dir / f"serve-{port}.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.cli", "serve", "--port", str(port),
            "--processes", str(processes), env=environment, stderr=log,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if process.returncode is not None:
                raise RuntimeError(f"serve exited: {log_path.read_text(errors='replace')[-2000:]}")
            if log_path.read_bytes().count(READY_LINE) >= processes:
                break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError("the service did not become ready")
        yield url, token
    finally:
        process.terminate()
        await process.wait()


async def run_service(url: str, token: str, args: argparse.Namespace) -> harness.Measurement:
    headers = {"Authorization": f"Bearer {token}"}
    expires_at = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        accounts = []
        for n in range(args.concurrency):
            body = {"name": f"bench-{n}-{os.getpid()}", "description": "benchmark"}
            async with session.post(url + "/v3/system-accounts", json=body) as response:
                accounts.append((await response.json())["id"])
        issued = [0] * args.concurrency

        async def issue(worker: int) -> int:
            issued[worker] += 1
            body = {"name": f"token-{issued[worker]}", "expires_at": expires_at}
            path = f"{url}/v3/system-accounts/{accounts[worker]}/access-tokens"
            async with session.post(path, json=body) as response:
                if response.status != 201:
                    raise RuntimeError(f"issue failed: {response.status} {await response.text()}")
                await response.read()
            return 1

        return await harness.measure(
            "issue token over HTTP",
            issue,
            concurrency=args.concurrency,
            seconds=args.seconds,
            warmup=args.warmup,
        )


def report(service_run: harness.Measurement, baseline: harness.Measurement) -> str:
    rows = [
        [m.label, f"{m.events_per_second:,.0f}", f"{m.p50_ms:.1f}", f"{m.p99_ms:.1f}"]
        for m in (service_run, baseline)
    ]
    return harness.markdown_table(["", "operations/s", "p50 ms", "p99 ms"], rows)


async def main(args: argparse.Namespace) -> None:
    print(f"machine: {harness.machine()}; load average at start {harness.load_average()}")
    async with harness.server() as server_dsn, harness.fresh_database(server_dsn) as dsn:
        data_dir = Path(f"/tmp/tokenledger-bench-{os.getpid()}")
        async with service(dsn, data_dir, args.processes) as (url, token):
            service_run = await run_service(url, token, args)
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(BASELINE_TABLE)
        finally:
            await connection.close()
        baseline_args = argparse.Namespace(settings={}, seconds=args.seconds, warmup=args.warmup)
        baseline = await run_baseline(dsn, Case("baseline", args.concurrency, 1), baseline_args)
    print(
        f"concurrency {args.concurrency}, {args.processes} HTTP process(es),"
        f" {args.seconds:g} s after {args.warmup:g} s of warm-up\n"
    )
    print(report(service_run, baseline))
    achieved = harness.ratio(service_run.events_per_second, baseline.events_per_second)
    verdict = "met" if achieved >= AIM else "NOT met"
    print(f"\nratio to the raw insert rate: {achieved:.2f} (aim >= {AIM}: {verdict})")
    print(f"load average at end {harness.load_average()}")
    if args.json:
        document = {"service": service_run.summary(), "baseline": baseline.summary(), "ratio": achieved}
        await asyncio.to_thread(Path(args.json).write_text, json.dumps(document, indent=2) + "\n")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    summary = __doc__.split("\n\n")[0]
    parser = argparse.ArgumentParser(prog="python -m bench.issue_tokens", description=summary)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--processes", type=int, default=default_processes(), help="default: the cores")
    parser.add_argument("--json", help="also write the raw figures to this file")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
