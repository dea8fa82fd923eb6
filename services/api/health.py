"""Liveness and readiness probes.

``/healthz`` answers 200 while the process serves HTTP at all. ``/readyz`` answers 200 only once the
database is reachable and migrated (the runtime is open) and it still answers a query; 503 otherwise.
"""

import asyncpg
from aiohttp import web

from services.api.state import READ_POOL, bound


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    pool = bound(request.app, READ_POOL)
    if pool is None:
        return web.json_response({"status": "starting"}, status=503)
    try:
        await pool.fetchval("SELECT 1", timeout=2)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        return web.json_response(
            {"status": "database unavailable", "detail": type(error).__name__}, status=503
        )
    return web.json_response({"status": "ready"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
