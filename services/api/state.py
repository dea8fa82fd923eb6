"""The late-bound runtime an aiohttp application serves from.

The HTTP server starts listening (and answers /healthz) before the database is ready, so handlers
find the runtime here and answer 503 while it is still None.
"""

import msgspec
from aiohttp import web

from services.composition import Runtime


class AppState(msgspec.Struct):
    runtime: Runtime | None = None


RUNTIME = web.AppKey("runtime", AppState)
