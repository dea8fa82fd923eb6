"""``GET /metrics`` (Prometheus text format) and the HTTP side's own metrics.

* ``http_metrics_middleware``, the outermost middleware, counts every answer by route template
  (``route_label``: the route's canonical path, ``unmatched`` when none matched, so a client can
  never create a label value), method and status, and times it.
* ``GET /metrics``: with ``TOKENLEDGER_METRICS=token`` (the default) it is authenticated like a
  ``/v3`` request (``services.api.authentication``) and needs the ``metrics:read`` right (the
  Metrics or Admin Identity role, within the token's scopes); with ``public``, it answers anyone.
  Before rendering, it samples what lives in the database (each projection's and relay's lag, at
  most once a second however often it is scraped) and this process's own gauges; a database that
  does not answer leaves those at their last sample rather than failing the scrape.
"""

import asyncio
import logging
import time

import asyncpg
from aiohttp import web

from projections.runtime import Projections
from services import metrics
from services.api.context import authorize
from services.api.problems import Handler
from services.api.state import GAUGES, METRICS_PUBLIC, PROJECTIONS, READ_POOL, bound
from services.authorization import Right
from services.relay.lag import relay_lags

PATH = "/metrics"
ROUTE = web.RequestKey("tokenledger.route", str)
"""The request's route label, for the access log (a request aiohttp could not parse has none)."""
SAMPLE_TIMEOUT_SECONDS = 5.0
SAMPLE_MIN_INTERVAL_SECONDS = 1.0
_log = logging.getLogger(__name__)


def route_label(request: web.Request) -> str:
    """The matched route's template (``/v3/system-accounts/{accountId}``), else ``unmatched``."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else metrics.UNMATCHED_ROUTE


@web.middleware
async def http_metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    request[ROUTE] = route = route_label(request)
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as error:  # a redirect the problem middleware lets through
        status = error.status
        raise
    finally:
        method = metrics.method_label(request.method)
        metrics.HTTP_REQUESTS.labels(route, method, str(status)).inc()
        metrics.HTTP_LATENCY.labels(route, method).observe(time.perf_counter() - started)


class DatabaseSampler:
    """Samples the lags that live in the database, at most once per ``min_interval`` seconds."""

    def __init__(self, min_interval: float = SAMPLE_MIN_INTERVAL_SECONDS) -> None:
        self._min_interval = min_interval
        self._last: float | None = None
        self._lock = asyncio.Lock()

    async def sample(self, projections: Projections, pool: asyncpg.Pool) -> None:
        async with self._lock:
            now = time.monotonic()
            if self._last is not None and now - self._last < self._min_interval:
                return
            self._last = now
            try:
                async with asyncio.timeout(SAMPLE_TIMEOUT_SECONDS):
                    statuses, relays = await projections.status(), await relay_lags(pool)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                _log.warning(
                    "metrics: could not sample the lags from the database (%s)", type(error).__name__
                )
                return
        for status in statuses:
            metrics.PROJECTION_LAG_EVENTS.labels(status.name).set(status.lag_events)
            metrics.PROJECTION_LAG_SECONDS.labels(status.name).set(status.lag_seconds)
        for lag in relays:
            metrics.RELAY_LAG_EVENTS.labels(lag.relay).set(lag.events)
            metrics.RELAY_LAG_SECONDS.labels(lag.relay).set(lag.seconds)


SAMPLER = web.AppKey("tokenledger.metrics_sampler", DatabaseSampler)


async def serve_metrics(request: web.Request) -> web.Response:
    if not request.app.get(METRICS_PUBLIC, False):
        authorize(request, Right.METRICS)
    projections, pool = bound(request.app, PROJECTIONS), bound(request.app, READ_POOL)
    if projections is not None and pool is not None:
        await request.app[SAMPLER].sample(projections, pool)
    gauges = bound(request.app, GAUGES)
    if gauges is not None:
        gauges.sample()
    response = web.Response(body=metrics.render())
    response.headers["Content-Type"] = metrics.CONTENT_TYPE
    return response


def add_routes(app: web.Application) -> None:
    app[SAMPLER] = DatabaseSampler()
    app.router.add_get(PATH, serve_metrics)
