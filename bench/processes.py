"""Introspection over the real service with N HTTP processes, next to the same with one process and
to a bare aiohttp handler run with the same N, same client, same run.

    python -m bench.processes [--processes N] [--seconds 8] [--warmup 2] [--concurrency 64]
                              [--tokens 1000] [--repeat 1] [--json FILE]

Set-up: ``bench.introspect``'s seeded database (tokens over 20 accounts, 5% revoked) and its request
mix (90% valid, 10% revoked / malformed / random). The service is ``tokenledger serve --processes
K`` (production wiring, every middleware, the projector worker; the caller authenticates with the
bootstrap admin's token, so each request verifies two tokens). The bare server is one aiohttp
handler with a fixed body of an active answer's size in N processes forked on one socket, as
``serve`` does. Every answer of the service is checked against the token's expected state.
"""

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiohttp
from aiohttp import web

from bench import harness
from bench.introspect import PATH, ROOT, Mix, _active_sized_body, seed
from bench.issue_tokens import service
from services.serve import listen
from services.supervisor import default_processes

AIM_SCALING = 1.6
AIM_BARE = 0.7


# -- the bare server (child processes) ---------------------------------------------------------------


async def _serve_bare(sock: socket.socket) -> None:
    body = _active_sized_body()

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_post(PATH, handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()


def serve_bare(processes: int) -> None:
    """Binds a port, forks ``processes`` servers on it, prints ``READY <port>``, waits for SIGTERM."""
    sock = listen("127.0.0.1", 0)
    children = []
    for _ in range(processes):
        pid = os.fork()
        if pid == 0:
            asyncio.run(_serve_bare(sock))
            os._exit(0)
        children.append(pid)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    print(f"READY {sock.getsockname()[1]}", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    for pid in children:
        os.kill(pid, signal.SIGTERM)
    for pid in children:
        os.waitpid(pid, 0)


@contextlib.asynccontextmanager
async def bare_server(processes: int) -> AsyncIterator[str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.processes", "bare", "--processes", str(processes),
        stdout=subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        if not line.startswith(b"READY "):
            raise RuntimeError(f"the bare server did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        process.send_signal(signal.SIGTERM)
        await process.wait()


# -- the client --------------------------------------------------------------------------------------


async def run_load(
    label: str, url: str, token: str | None, mix: Mix, args: argparse.Namespace
) -> harness.Measurement:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def call(_worker: int) -> int:
            kind, body = mix.draw()
            async with session.post(url + PATH, data=body, headers=headers) as response:
                payload = await response.read()
            if response.status != 200:
                raise RuntimeError(f"{label}: HTTP {response.status}: {payload[:200]!r}")
            if token is not None:
                if payload.startswith(b'{"active":true') != (kind == "valid"):
                    mix.mismatches += 1
                mix.by_class[kind] += 1
            return 1

        return await harness.measure(
            label, call, concurrency=args.concurrency, seconds=args.seconds, warmup=args.warmup
        )


async def main(args: argparse.Namespace) -> None:
    print(f"machine: {harness.machine()}; load average at start {harness.load_average()}")
    rows: list[list[str]] = []
    document: list[dict[str, object]] = []
    async with harness.server() as server_dsn, harness.fresh_database(server_dsn, "bench_processes") as dsn:
        seeded = await seed(dsn, args.tokens)
        mix = Mix(seeded, random.Random(args.seed))
        data_dir = Path(tempfile.mkdtemp(prefix="tokenledger-bench-processes-"))
        for round_ in range(args.repeat):
            async with bare_server(args.processes) as url:
                bare = await run_load(f"bare, {args.processes}", url, None, mix, args)
            measured: dict[int, harness.Measurement] = {}
            for processes in (1, args.processes):
                async with service(dsn, data_dir, processes) as (url, token):
                    measured[processes] = await run_load(f"serve, {processes}", url, token, mix, args)
            one, many = measured[1], measured[args.processes]
            scaling = harness.ratio(many.events_per_second, one.events_per_second)
            to_bare = harness.ratio(many.events_per_second, bare.events_per_second)
            rows.append(
                [
                    str(round_ + 1),
                    f"{one.events_per_second:,.0f}",
                    f"{many.events_per_second:,.0f}",
                    f"{bare.events_per_second:,.0f}",
                    f"**{scaling:.2f}**",
                    f"**{to_bare:.2f}**",
                    f"{many.p50_ms:.1f} / {many.p99_ms:.1f}",
                    harness.load_average(),
                ]
            )
            document.append({"one": one.summary(), "many": many.summary(), "bare": bare.summary()})
    print(
        f"concurrency {args.concurrency}, N = {args.processes}, {args.seconds:g} s after"
        f" {args.warmup:g} s of warm-up; answers checked {sum(mix.by_class.values())},"
        f" wrong {mix.mismatches}\n"
    )
    print(
        harness.markdown_table(
            [
                "round",
                "serve, 1 process req/s",
                f"serve, {args.processes} req/s",
                f"bare, {args.processes} req/s",
                f"N / 1 (aim ≥ {AIM_SCALING})",
                f"N / bare N (aim ≥ {AIM_BARE})",
                "N p50/p99 ms",
                "load at end",
            ],
            rows,
        )
    )
    if mix.mismatches:
        raise SystemExit(f"{mix.mismatches} answers did not match the token's expected state")
    if args.json:
        await asyncio.to_thread(Path(args.json).write_text, json.dumps(document, indent=2) + "\n")


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.processes", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    inner = sub.add_parser("bare", help="internal: run the bare server")
    inner.add_argument("--processes", type=int, required=True)
    parser.add_argument("--processes", type=int, default=default_processes())
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", default=None)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse(sys.argv[1:])
    if arguments.command == "bare":
        serve_bare(arguments.processes)
    else:
        asyncio.run(main(arguments))
