"""The services the HTTP side uses, one typed ``AppKey`` each, and how they are bound late.

The HTTP server starts listening (and answers /healthz) before the database is ready, so each
service sits in a ``Late`` cell of the application: ``create_app`` installs empty cells, the process
binds them once its runtime is open (``bind``) and unbinds them at shutdown (``unbind``). A route
reads exactly the services it uses (``services.api.context.service(request, KEY)``), and one whose
cell is empty, or not installed at all, is answered 503. A test wires an application with only the
services of the routes it calls (``app[VERIFIER] = Late(verifier)``). What the settings say of the
HTTP side itself is set when the application is made (``METRICS_PUBLIC``, ``MAX_ID_TOKEN_AGE``).

``ServedRuntime`` is what ``bind`` takes from a running process (a protocol: the composition root's
``Runtime`` is one, and the API never imports the composition root).
"""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

import asyncpg
from aiohttp import web

from projections.runtime import Projections
from services.auth.usage import UsageRecorder
from services.auth.verifier import TokenVerifier
from services.dependencies import Dependencies
from services.dispatch import Dispatcher
from services.metrics import ProcessGauges
from services.oidc.keys import IssuerKeys
from services.organization import Organization
from services.roles.catalogue import RoleCatalogue

T = TypeVar("T")
Clock = Callable[[], datetime]


class Late(Generic[T]):
    """A service bound once the process has it (None until then, and again after shutdown)."""

    __slots__ = ("value",)

    def __init__(self, value: T | None = None) -> None:
        self.value = value


READ_POOL = web.AppKey("tokenledger.read_pool", Late[asyncpg.Pool])
"""The pool the read routes query (the read models, the audit history, readiness)."""
DISPATCHER = web.AppKey("tokenledger.dispatcher", Late[Dispatcher])
VERIFIER = web.AppKey("tokenledger.verifier", Late[TokenVerifier])
USAGE = web.AppKey("tokenledger.usage", Late[UsageRecorder])
ORGANIZATION = web.AppKey("tokenledger.organization", Late[Organization])
CATALOGUE = web.AppKey("tokenledger.catalogue", Late[RoleCatalogue])
PROJECTIONS = web.AppKey("tokenledger.projections", Late[Projections])
"""The read side's barrier: reads wait for it, and a command's answer for its cursor."""
CLOCK = web.AppKey("tokenledger.clock", Late[Clock])
GAUGES = web.AppKey("tokenledger.gauges", Late[ProcessGauges])
OIDC_KEYS = web.AppKey("tokenledger.oidc_keys", Late[IssuerKeys])
"""The signing keys of the OIDC issuers federated credentials trust (the token exchange's)."""
"""This process's own gauges, sampled when ``/metrics`` is scraped."""
METRICS_PUBLIC = web.AppKey("tokenledger.metrics_public", bool)
REVOCATION_SECRET = web.AppKey("tokenledger.revocation_secret", str)
"""``TOKENLEDGER_REVOCATION_SECRET``: the shared secret of the leaked-token revocation endpoints
(absent: they answer 404)."""
"""``TOKENLEDGER_METRICS=public``: ``/metrics`` answers anyone; else a token with ``metrics:read``."""
MAX_ID_TOKEN_AGE = web.AppKey("tokenledger.max_id_token_age", timedelta)
"""``TOKENLEDGER_MAX_ID_TOKEN_AGE_SECONDS``: the oldest ``iat`` the token exchange accepts."""


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
    def clock(self) -> Clock: ...
    @property
    def gauges(self) -> ProcessGauges: ...
    @property
    def oidc_keys(self) -> IssuerKeys: ...


def install(app: web.Application) -> None:
    """Empty cells for every service (before the application starts, when it can still change)."""
    app[READ_POOL] = Late()
    app[DISPATCHER] = Late()
    app[VERIFIER] = Late()
    app[USAGE] = Late()
    app[ORGANIZATION] = Late()
    app[CATALOGUE] = Late()
    app[PROJECTIONS] = Late()
    app[CLOCK] = Late()
    app[GAUGES] = Late()
    app[OIDC_KEYS] = Late()


def bound(app: web.Application, key: web.AppKey[Late[T]]) -> T | None:
    """The service under ``key`` when it is bound (None when not, or not installed at all)."""
    cell = app.get(key)
    return None if cell is None else cell.value


def bind(app: web.Application, runtime: ServedRuntime) -> None:
    """Every service from the open runtime: from now on the routes answer."""
    app[READ_POOL].value = runtime.pool
    app[DISPATCHER].value = runtime.dispatcher
    app[VERIFIER].value = runtime.verifier
    app[USAGE].value = runtime.usage
    app[ORGANIZATION].value = runtime.organization
    app[CATALOGUE].value = runtime.deps.catalogue
    app[PROJECTIONS].value = runtime.projections
    app[CLOCK].value = runtime.clock
    app[GAUGES].value = runtime.gauges
    app[OIDC_KEYS].value = runtime.oidc_keys


def unbind(app: web.Application) -> None:
    """No service any more (the runtime is closing): the routes answer 503."""
    cells: tuple[Late[Any], ...] = (
        app[READ_POOL],
        app[DISPATCHER],
        app[VERIFIER],
        app[USAGE],
        app[ORGANIZATION],
        app[CATALOGUE],
        app[PROJECTIONS],
        app[OIDC_KEYS],
        app[CLOCK],
        app[GAUGES],
    )
    for cell in cells:
        cell.value = None
