"""Verified tokens per second over HTTP: ``POST /v3/tokens/introspect`` next to a bare aiohttp handler
returning a fixed JSON body, same process model, same client, same run.

    python -m bench.introspect [--seconds 10] [--warmup 2] [--concurrency 64] [--tokens 1000]
                               [--repeat 1] [--json FILE]

Set-up: a throw-away database (embedded PostgreSQL unless ``BENCH_DATABASE_URL``) seeded through the
event store with ``--tokens`` tokens over 20 accounts (each with a direct role and a team role), 5%
of them then revoked; the real projections build the read models.

Servers: each runs in a process of its own (``python -m bench.introspect serve ...``), one event
loop, access log off. The introspection server is the production wiring reduced to what the route
needs: pool, LOG notifications, the projection runtime (the projector worker, as in ``serve``), the
token verifier, the usage recorder (with the usage log; ``introspect-unlogged``: without it, for
``bench.usage``), the problem middleware and the introspection route (the caller's own
authentication, the lead's middleware, is not in the path). The bare server answers the same
path with a fixed body of the same size as an active answer (it reads the request body too).

Client: this process, one ``aiohttp.ClientSession`` with a connector limit of ``--concurrency`` and
as many loops. Request mix: 90% valid tokens (uniform over the seeded ones, so all cached after
warm-up); 10% invalid, a third each: revoked tokens (known, cached rejections), malformed look-alikes
(bad checksum: rejected without a lookup) and fresh random well-formed secrets (a database miss
every time: the worst case, what a guessing attacker sends). Every answer is checked against the
expected ``active`` value.
"""

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from aiohttp import web

from bench import harness
from events import Event, Metadata, NewEvent
from events.accounts import AccountCreated, AccountRoleAssigned
from events.teams import TeamCreated, TeamMemberAdded, TeamRoleAssigned
from events.tokens import TokenIssued, TokenRevoked
from services import database
from services.dependencies import Dependencies
from services.directory import StreamDirectory
from services.dispatch import Dispatcher
from services.eventstore import PostgresEventStore
from services.policy import TokenPolicy
from services.ports import EventStore, StreamAppend, StreamState
from services.roles.catalogue import load_catalogue
from services.tokens.secrets import generate_secret, secret_hash

PEPPER = b"bench-pepper-0123456789abcdef0123456789"
ORGANIZATION = "5b0f4c61-6f35-4d7e-9d3a-3f1f2b2c0001"
ACCOUNTS = 20
PATH = "/v3/tokens/introspect"
ROOT = Path(__file__).resolve().parent.parent
METRICS_PATH = "/bench/metrics"


def dispatcher(store: EventStore) -> Dispatcher:
    """The real dispatcher over ``store``: what the usage recorder sends its batches through."""
    deps = Dependencies(
        store=store,
        directory=StreamDirectory(store),
        catalogue=load_catalogue(None),
        token_policy=TokenPolicy(max_lifetime=timedelta(days=365), allow_non_expiring=True),
        pepper=PEPPER,
        organization_id=ORGANIZATION,
    )
    return Dispatcher(deps)


# -- seeding -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    valid: list[str]
    revoked: list[str]


def _new(event: Event, at: datetime) -> NewEvent:
    return NewEvent(event=event, metadata=Metadata(occurred_at=at, actor="system:bench"))


async def seed(dsn: str, tokens: int) -> Seeded:
    pool = await database.create_pool(dsn, min_size=1, max_size=4)
    store = PostgresEventStore(pool)
    now = datetime.now(UTC)
    accounts = [str(uuid.uuid4()) for _ in range(ACCOUNTS)]
    try:
        appends: list[StreamAppend] = []
        for n, account in enumerate(accounts):
            team = str(uuid.uuid4())
            account_events: list[NewEvent] = [
                _new(AccountCreated(account_id=account, name=f"bench-{n}"), now),
                _new(
                    AccountRoleAssigned(
                        account_id=account,
                        assignment_id=str(uuid.uuid4()),
                        role_name="Viewer",
                        entity_id=ORGANIZATION,
                        entity_type_name="Identity",
                        entity_region="*",
                    ),
                    now,
                ),
            ]
            team_events = [
                _new(TeamCreated(team_id=team, name=f"team-{n}"), now),
                _new(TeamMemberAdded(team_id=team, account_id=account), now),
                _new(
                    TeamRoleAssigned(
                        team_id=team,
                        assignment_id=str(uuid.uuid4()),
                        role_name="Auditor",
                        entity_id=ORGANIZATION,
                        entity_type_name="Identity",
                        entity_region="us",
                    ),
                    now,
                ),
            ]
            appends.append(StreamAppend(f"account-{account}", account_events, StreamState.NO_STREAM))
            appends.append(StreamAppend(f"team-{team}", team_events, StreamState.NO_STREAM))
        await store.append_many(appends)

        secrets: list[tuple[str, str, str]] = []
        for n in range(tokens):
            secrets.append((str(uuid.uuid4()), accounts[n % ACCOUNTS], generate_secret()))
        for start in range(0, tokens, 500):
            await store.append_many(
                [
                    StreamAppend(
                        f"token-{token_id}",
                        [
                            _new(
                                TokenIssued(
                                    token_id=token_id,
                                    account_id=account,
                                    name=f"token-{token_id[:8]}",
                                    secret_hash=secret_hash(secret, PEPPER),
                                    expires_at=now + timedelta(days=30),
                                    scopes=("identity:read",),
                                ),
                                now,
                            )
                        ],
                        StreamState.NO_STREAM,
                    )
                    for token_id, account, secret in secrets[start : start + 500]
                ]
            )
        revoked = secrets[: max(1, tokens // 20)]
        await store.append_many(
            [
                StreamAppend(
                    f"token-{token_id}",
                    [_new(TokenRevoked(token_id=token_id, account_id=account, reason="bench"), now)],
                    StreamState.ANY,
                )
                for token_id, account, _ in revoked
            ]
        )
    finally:
        await pool.close()
    return Seeded(valid=[s for _, _, s in secrets[len(revoked) :]], revoked=[s for _, _, s in revoked])


# -- servers (child processes) -----------------------------------------------------------------------


def _active_sized_body() -> bytes:
    """A fixed body the size of a typical active answer (two roles)."""
    role = {
        "role_name": "Viewer",
        "entity_id": ORGANIZATION,
        "entity_type_name": "Identity",
        "entity_region": "*",
        "source": "direct",
    }
    return msgspec.json.encode(
        {
            "active": True,
            "token_id": str(uuid.uuid4()),
            "account_id": str(uuid.uuid4()),
            "account_name": "bench-1",
            "name": "token-12345678",
            "exp": 1_900_000_000,
            "iat": 1_800_000_000,
            "scopes": ["identity:read"],
            "roles": [role, {**role, "role_name": "Auditor", "source": f"team:{uuid.uuid4()}"}],
        }
    )


async def _serve_bare(stop: asyncio.Event) -> None:
    body = _active_sized_body()

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_post(PATH, handler)
    await _run_app(app, stop)


async def _serve_introspection(dsn: str, stop: asyncio.Event, *, usage_log: bool = True) -> None:
    from projections.catalogue import ALL_PROJECTIONS
    from projections.runtime import Projections
    from projections.source import CombinedLogSource
    from services.api.introspection import add_routes
    from services.api.problems import problem_middleware
    from services.api.state import CLOCK, USAGE, VERIFIER, Late
    from services.auth.usage import UsageRecorder
    from services.auth.usage_log import UsageLog
    from services.auth.verifier import TokenVerifier
    from services.composition import utc_now
    from services.eventstore.notifications import LogNotifications
    from services.eventstore.tail import LogTail

    pool = await database.create_pool(dsn, min_size=2, max_size=10)
    notifications = LogNotifications(lambda: database.connect(dsn))
    await notifications.start()
    store = PostgresEventStore(pool)
    projections = Projections(
        pool,
        CombinedLogSource(LogTail(store, notifications.waiter()), store),
        ALL_PROJECTIONS,
        connect=lambda: database.connect(dsn),
    )
    await projections.start()
    if not await projections.wait_until_current(60.0):
        raise RuntimeError("the projections did not catch up")
    verifier = TokenVerifier(pool, notifications, PEPPER)
    await verifier.start()
    usage = UsageRecorder(
        dispatcher(store), expiry=verifier, log=UsageLog(pool, PEPPER) if usage_log else None
    )
    await usage.start()

    async def metrics(_request: web.Request) -> web.Response:
        log = vars(usage.log.metrics) if usage.log is not None else {}
        return web.json_response(
            {
                "verifier": verifier.metrics.snapshot(),
                "usage": vars(usage.metrics),
                "usage_log": log,
                "cpu_seconds": time.process_time(),
            }
        )

    app = web.Application(middlewares=[problem_middleware])
    app[VERIFIER], app[USAGE], app[CLOCK] = Late(verifier), Late(usage), Late(utc_now)
    add_routes(app)
    app.router.add_get(METRICS_PATH, metrics)
    try:
        await _run_app(app, stop)
    finally:
        await usage.stop()
        await verifier.stop()
        await projections.stop()
        await notifications.stop()
        await pool.close()


async def _run_app(app: web.Application, stop: asyncio.Event) -> None:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    port = runner.addresses[0][1]
    print(f"READY {port}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


async def serve(kind: str, dsn: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if kind == "bare":
        await _serve_bare(stop)
    else:
        await _serve_introspection(dsn, stop, usage_log=kind != "introspect-unlogged")


@contextlib.asynccontextmanager
async def server_process(kind: str, dsn: str) -> Any:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.introspect",
        "serve",
        "--kind",
        kind,
        "--dsn",
        dsn,
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 120)
        if not line.startswith(b"READY "):
            raise RuntimeError(f"the {kind} server did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()


# -- client ------------------------------------------------------------------------------------------


def _malformed(secret: str) -> str:
    last = secret[-1]
    return secret[:-1] + ("A" if last != "A" else "B")


class Mix:
    """90% valid, then revoked / malformed / fresh random in equal parts."""

    def __init__(self, seeded: Seeded, rng: random.Random) -> None:
        self.valid = [json.dumps({"token": s}).encode() for s in seeded.valid]
        self.revoked = [json.dumps({"token": s}).encode() for s in seeded.revoked]
        self.malformed = [json.dumps({"token": _malformed(s)}).encode() for s in seeded.valid[:1000]]
        self.rng = rng
        self.mismatches = 0
        self.by_class: dict[str, int] = {"valid": 0, "revoked": 0, "malformed": 0, "random": 0}

    def draw(self) -> tuple[str, bytes]:
        roll = self.rng.random()
        if roll < 0.90:
            return "valid", self.rng.choice(self.valid)
        if roll < 0.9333:
            return "revoked", self.rng.choice(self.revoked)
        if roll < 0.9667:
            return "malformed", self.rng.choice(self.malformed)
        return "random", json.dumps({"token": generate_secret()}).encode()


async def run_load(
    label: str, url: str, mix: Mix, args: argparse.Namespace, check: bool
) -> harness.Measurement:
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector) as session:

        async def call(_worker: int) -> int:
            kind, body = mix.draw()
            async with session.post(url + PATH, data=body, headers=headers) as response:
                payload = await response.read()
            if response.status != 200:
                raise RuntimeError(f"{label}: HTTP {response.status}: {payload[:200]!r}")
            if check:
                active = payload.startswith(b'{"active":true')
                if active != (kind == "valid"):
                    mix.mismatches += 1
                mix.by_class[kind] += 1
            return 1

        return await harness.measure(
            label, call, concurrency=args.concurrency, seconds=args.seconds, warmup=args.warmup
        )


async def fetch_metrics(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(url + METRICS_PATH) as response:
        metrics: dict[str, Any] = await response.json()
        return metrics


def report(results: Sequence[tuple[harness.Measurement, harness.Measurement]]) -> str:
    rows = []
    for bare, verified in results:
        rows.append(
            [
                f"{verified.events_per_second:,.0f}",
                f"{bare.events_per_second:,.0f}",
                f"{harness.ratio(verified.events_per_second, bare.events_per_second):.2f}",
                f"{verified.p50_ms:.2f} / {verified.p99_ms:.2f}",
                f"{bare.p50_ms:.2f} / {bare.p99_ms:.2f}",
            ]
        )
    return harness.markdown_table(
        [
            "introspect req/s",
            "bare req/s",
            "ratio",
            "introspect p50/p99 ms",
            "bare p50/p99 ms",
        ],
        rows,
    )


async def main(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    async with harness.server() as server_dsn, harness.fresh_database(server_dsn, "bench_introspect") as dsn:
        print(f"seeding {args.tokens} tokens...", file=sys.stderr)
        seeded = await seed(dsn, args.tokens)
        mix = Mix(seeded, rng)
        results: list[tuple[harness.Measurement, harness.Measurement]] = []
        metrics: dict[str, Any] = {}
        for round_ in range(args.repeat):
            async with server_process("bare", dsn) as url:
                bare = await run_load("bare", url, mix, args, check=False)
            async with server_process("introspect", dsn) as url:
                verified = await run_load("introspect", url, mix, args, check=True)
                metrics = await fetch_metrics(url)
            results.append((bare, verified))
            print(
                f"round {round_ + 1}: introspect {verified.events_per_second:,.0f} req/s,"
                f" bare {bare.events_per_second:,.0f} req/s",
                file=sys.stderr,
            )
        print(f"\n{harness.machine()}; load average {harness.load_average()}")
        print(
            f"concurrency {args.concurrency}, {args.seconds}s measured after {args.warmup}s warm-up,"
            f" {args.tokens} tokens; mix: 90% valid, 10% invalid (revoked / malformed / random)\n"
        )
        print(report(results))
        verifier_metrics = metrics.get("verifier", {})
        shown = ("hits", "misses", "loads", "stale_waits", "unknown_retries", "rejected_stale")
        print(
            "\nverifier (last round, warm-up included): "
            + ", ".join(f"{name} {verifier_metrics.get(name)}" for name in shown)
            + f"; answers checked {sum(mix.by_class.values())}, wrong {mix.mismatches}"
        )
        if mix.mismatches:
            raise SystemExit(f"{mix.mismatches} answers did not match the token's expected state")
        if args.json:
            text = json.dumps(
                {
                    "machine": harness.machine(),
                    "rounds": [{"introspect": v.summary(), "bare": b.summary()} for b, v in results],
                    "verifier": verifier_metrics,
                    "usage": metrics.get("usage", {}),
                    "answers": mix.by_class,
                },
                indent=2,
            )
            await asyncio.to_thread(Path(args.json).write_text, text)


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.introspect", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    inner = sub.add_parser("serve", help="internal: run one server process")
    inner.add_argument("--kind", choices=("bare", "introspect", "introspect-unlogged"), required=True)
    inner.add_argument("--dsn", required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", default=None)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse(sys.argv[1:])
    if arguments.command == "serve":
        os.environ.setdefault("PYTHONUNBUFFERED", "1")
        asyncio.run(serve(arguments.kind, arguments.dsn))
    else:
        asyncio.run(main(arguments))
