"""Token exchanges per second over HTTP: ``POST /v3/oauth/token`` (RFC 8693) with a warm JWKS cache,
next to ``POST /v3/tokens/introspect`` on the same server, same client, same run.

    python -m bench.exchange [--seconds 5] [--warmup 1] [--concurrency 32] [--json FILE]

Set-up: a throw-away database (embedded PostgreSQL unless ``BENCH_DATABASE_URL``), the real runtime
(``services.composition.open_runtime``: pool, projector, verifier, usage recorder) and the real app
(``create_app``, every middleware) served on a loopback port in this process, and the test suite's
local OIDC issuer (``tests/oidc_issuer.py``, HTTPS, EC keys) in this process too. One account holding
Viewer trusts the issuer through one GitHub-Actions-shaped federated credential. The key cache is
warmed by one exchange before anything is measured, so no measured exchange fetches the JWKS.

Each exchange presents a fresh id-token (a replayed ``jti`` is refused): ES256 id-tokens are minted
before the run (enough for the run at a generous rate, more minted on the fly if they run out), so
signing is not in the measured loop. Every exchange appends ``token.issued`` with its ``jti`` claim:
it is a command, and its figure is a write path's. Introspection presents one exchanged token (cached
after the first call) with the bootstrap admin token as the caller. Every answer is checked. The
exchange's per-address rate limit is lifted (every request comes from one address): what is
measured is the exchange's work.
"""

import argparse
import asyncio
import json
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench import harness
from services.api import state
from services.api.app import create_app
from services.api.rate_limit import RateLimit
from services.api.routes import oauth
from services.bootstrap_admin import bootstrap
from services.composition import open_runtime
from services.config import load_settings
from services.oidc.keys import IssuerKeys
from tests.oidc_issuer import LocalIssuer, github_claims

AUDIENCE = "urn:tokenledger:local"
GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
PEPPER = "bench-pepper-0123456789abcdef0123456789"
OWNER_ID = "4242"
ORGANIZATION_PATH = "/v3/organizations/me"
MINTED_PER_SECOND = 400
UNLIMITED = 1e12
"""A rate and burst no run reaches."""
"""How many id-tokens are minted ahead per measured second (more are minted should they run out)."""


async def _admin(url: str, token: str, method: str, path: str, body: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url + path, json=body, headers=headers) as reply,
    ):
        answer = await reply.json()
        if reply.status >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {reply.status}: {answer}")
        return answer


async def _trusting_account(url: str, admin: str, issuer: LocalIssuer) -> str:
    """A new account holding Viewer whose one federated credential trusts ``issuer``."""
    account = await _admin(
        url,
        admin,
        "POST",
        "/v3/system-accounts",
        {"name": f"bench-{uuid.uuid4().hex[:8]}", "description": "bench"},
    )
    path = f"/v3/system-accounts/{account['id']}"
    organization = await _admin(url, admin, "GET", ORGANIZATION_PATH, None)
    viewer = {
        "role_name": "Viewer",
        "entity_type_name": "Identity",
        "entity_id": organization["id"],
        "entity_region": "*",
    }
    await _admin(url, admin, "POST", f"{path}/assigned-roles", viewer)
    credential = {
        "name": "ci",
        "issuer": issuer.url,
        "subject": "repo:acme/deploy:*",
        "conditions": [{"claim": "repository_owner_id", "operator": "equals", "values": [OWNER_ID]}],
        "required_claims": ["repository_owner_id"],
    }
    await _admin(url, admin, "POST", f"{path}/federated-credentials", credential)
    return str(account["id"])


def _form(id_token: str) -> dict[str, str]:
    return {"grant_type": GRANT, "subject_token": id_token, "subject_token_type": JWT_TYPE}


def _mint(issuer: LocalIssuer) -> str:
    return issuer.mint(github_claims(AUDIENCE, owner_id=OWNER_ID), kind="ec")


async def run(args: argparse.Namespace, url: str, admin: str, issuer: LocalIssuer) -> dict[str, Any]:
    minted = [_mint(issuer) for _ in range(int((args.seconds + args.warmup) * MINTED_PER_SECOND))]
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def exchange(_worker: int) -> int:
            id_token = minted.pop() if minted else _mint(issuer)
            async with session.post(url + "/v3/oauth/token", data=_form(id_token)) as reply:
                answer = await reply.json()
            if reply.status != 200 or not answer["access_token"].startswith("spat_"):
                raise RuntimeError(f"exchange: HTTP {reply.status}: {answer}")
            return 1

        async with session.post(url + "/v3/oauth/token", data=_form(_mint(issuer))) as reply:
            secret = (await reply.json())["access_token"]
        body = json.dumps({"token": secret}).encode()
        headers = {"Authorization": f"Bearer {admin}", "Content-Type": "application/json"}

        async def introspect(_worker: int) -> int:
            async with session.post(url + "/v3/tokens/introspect", data=body, headers=headers) as reply:
                payload = await reply.read()
            if reply.status != 200 or not payload.startswith(b'{"active":true'):
                raise RuntimeError(f"introspect: HTTP {reply.status}: {payload[:200]!r}")
            return 1

        exchanged = await harness.measure(
            "exchange", exchange, concurrency=args.concurrency, seconds=args.seconds, warmup=args.warmup
        )
        load = harness.load_average()
        introspected = await harness.measure(
            "introspect", introspect, concurrency=args.concurrency, seconds=args.seconds, warmup=args.warmup
        )
    return {"exchange": exchanged, "introspect": introspected, "load_average": load}


def report(result: dict[str, Any]) -> str:
    exchanged: harness.Measurement = result["exchange"]
    introspected: harness.Measurement = result["introspect"]
    return harness.markdown_table(
        ["exchange req/s", "introspect req/s", "ratio", "exchange p50/p99 ms", "introspect p50/p99 ms"],
        [
            [
                f"{exchanged.events_per_second:,.0f}",
                f"{introspected.events_per_second:,.0f}",
                f"{harness.ratio(exchanged.events_per_second, introspected.events_per_second):.2f}",
                f"{exchanged.p50_ms:.2f} / {exchanged.p99_ms:.2f}",
                f"{introspected.p50_ms:.2f} / {introspected.p99_ms:.2f}",
            ]
        ],
    )


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-exchange-") as scratch:
        issuer = LocalIssuer(Path(scratch))
        await issuer.start()
        keys = IssuerKeys(ssl_context=issuer.client_ssl)
        try:
            async with (
                harness.server() as server_dsn,
                harness.fresh_database(server_dsn, "bench_exchange") as dsn,
            ):
                environment = {
                    "DATABASE_URL": dsn,
                    "TOKENLEDGER_DATA_DIR": scratch,
                    "TOKENLEDGER_PEPPER": PEPPER,
                    "TOKENLEDGER_WORKERS": "projector",
                }
                async with open_runtime(load_settings(environment)) as runtime:
                    await runtime.until_read_models_current()
                    admin = await bootstrap(runtime.deps, runtime.dispatcher, "bench-admin", runtime.clock())
                    app = create_app()
                    app[oauth.LIMIT] = RateLimit(UNLIMITED, UNLIMITED)
                    state.bind(app, runtime)
                    app[state.OIDC_KEYS].value = keys
                    runner = web.AppRunner(app, access_log=None)
                    await runner.setup()
                    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
                    await site.start()
                    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
                    try:
                        await _trusting_account(url, admin, issuer)
                        await runtime.until_read_models_current()
                        result = await run(args, url, admin, issuer)
                    finally:
                        await runner.cleanup()
        finally:
            await keys.close()
            await issuer.close()
    print(f"\n{harness.machine()}; load average {result['load_average']} (after the exchanges)")
    print(
        f"concurrency {args.concurrency}, {args.seconds}s measured after {args.warmup}s warm-up each,"
        f" JWKS cache warm; one process serves both (and runs the issuer and the client)\n"
    )
    print(report(result))
    if args.json:
        text = json.dumps(
            {
                "machine": harness.machine(),
                "load_average": result["load_average"],
                "exchange": result["exchange"].summary(),
                "introspect": result["introspect"].summary(),
            },
            indent=2,
        )
        await asyncio.to_thread(Path(args.json).write_text, text)


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.exchange", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--json", default=None)
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse(sys.argv[1:])))
