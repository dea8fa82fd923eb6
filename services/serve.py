"""``tokenledger serve``: the HTTP service and, by default, the background workers in one process.

The web console (``services.console``) is mounted beside the API, at ``/console``.

Start-up order: listen first (so liveness answers at once), then open the runtime (embedded
PostgreSQL, migrations, pool, projection runners), start the workers, wait until the read models hold
the whole log (a first start on a long log builds them), and only then mark the service ready.
On SIGTERM or SIGINT: stop accepting connections, let in-flight requests finish (each command is one
database transaction, so nothing is ever half-written), then stop the workers and close the pool.

``listen`` binds the socket apart from ``serve``, so that several HTTP processes of one node
(``services.supervisor``) accept on one socket bound once.
"""

import asyncio
import contextlib
import errno
import logging
import signal
import socket

from aiohttp import web

from services import metrics
from services.api import state
from services.api.access_log import SERVER_LOGGER, ParserErrorsWithoutContent, PathOnlyAccessLogger
from services.api.app import create_app
from services.composition import open_runtime
from services.config import Settings
from services.console.app import mount_console
from services.console.context import ConsoleOptions
from services.console.sessions import SessionPolicy
from services.operator_errors import PortInUse, explain
from services.workers import running_workers

_log = logging.getLogger(__name__)
SHUTDOWN_GRACE_SECONDS = 30.0
LISTEN_BACKLOG = 1024


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``SO_REUSEADDR``, as aiohttp's own sites bind);
    ``PortInUse`` when another process holds the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, backlog=LISTEN_BACKLOG)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise PortInUse(host, port) from None
        raise
    _log.info("listening on http://%s:%d", host, port)
    return sock


async def _run_runtime(settings: Settings, app: web.Application, stop: asyncio.Event, pool_size: int) -> None:
    async with open_runtime(settings, pool_size=pool_size) as runtime, running_workers(runtime):
        await runtime.until_read_models_current()
        state.bind(app, runtime)
        _log.info("ready")
        await stop.wait()
        state.unbind(app)


async def serve(settings: Settings, sock: socket.socket, *, pool_size: int = 20) -> int:
    """Serves HTTP on the listening ``sock`` until SIGTERM or SIGINT; the exit code."""
    app = create_app(
        metrics_public=settings.metrics_access == "public",
        revocation_secret=settings.revocation_secret,
        max_id_token_age=settings.max_id_token_age,
    )
    sessions = SessionPolicy(idle=settings.console_idle, lifetime=settings.console_lifetime)
    mount_console(app, ConsoleOptions(sessions=sessions, allow_never=settings.allow_non_expiring_tokens))
    logging.getLogger(SERVER_LOGGER).addFilter(ParserErrorsWithoutContent())
    runner = web.AppRunner(
        app,
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_GRACE_SECONDS,
        access_log_class=PathOnlyAccessLogger,
    )
    await runner.setup()
    await web.SockSite(runner, sock).start()

    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_requested.set)

    runtime_stop = asyncio.Event()
    runtime_task = asyncio.create_task(_run_runtime(settings, app, runtime_stop, pool_size), name="runtime")
    stopper = asyncio.create_task(stop_requested.wait())
    await asyncio.wait({runtime_task, stopper}, return_when=asyncio.FIRST_COMPLETED)

    _log.info("shutting down")
    await runner.cleanup()  # stops listening, waits for in-flight requests
    runtime_stop.set()
    stopper.cancel()
    exit_code = 0
    with contextlib.suppress(asyncio.CancelledError):
        try:
            await runtime_task
        except Exception as error:
            if explain(error) is not None:
                raise  # an operator mistake (the database, say): the command line says it in one line
            _log.exception("the runtime failed")
            exit_code = 1
    metrics.forget_process()
    return exit_code
