"""What an aiohttp application serves from, and how it finds it.

``ServedRuntime`` is what the HTTP side uses of a running process (a protocol: the composition
root's ``Runtime`` is one, and the API never imports the composition root). The HTTP server starts
listening (and answers /healthz) before the database is ready, so handlers find the runtime in
``AppState`` and answer 503 while it is still None. ``AppState`` also holds what the process's
settings say of the HTTP side itself: whether ``/metrics`` is public.
"""

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

import asyncpg
import msgspec
from aiohttp import web

from events import LogCursor
from projections.runtime import Projections
from services.auth.usage import UsageRecorder
from services.auth.verifier import TokenVerifier
from services.dependencies import Dependencies
from services.dispatch import Dispatcher
from services.metrics import ProcessGauges
from services.organization import Organization


class ServedRuntime(Protocol):
    @property
    def pool(self) -> asyncpg.Pool: ...
    @property
    def deps(self) -> Dependencies: ...
    @property
    def dispatcher(self) -> Dispatcher: ...
    @property
    def organization(self) -> Organization: ...
    @property
    def projections(self) -> Projections: ...
    @property
    def verifier(self) -> TokenVerifier: ...
    @property
    def usage(self) -> UsageRecorder: ...
    @property
    def clock(self) -> Callable[[], datetime]: ...
    @property
    def gauges(self) -> ProcessGauges: ...

    async def caught_up(self, cursor: LogCursor, timeout: float) -> bool: ...  # noqa: ASYNC109


class AppState(msgspec.Struct):
    runtime: ServedRuntime | None = None
    metrics_public: bool = False
    """``TOKENLEDGER_METRICS=public``: ``/metrics`` answers anyone; else a token with ``metrics:read``."""


RUNTIME = web.AppKey("runtime", AppState)
