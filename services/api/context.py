"""What a route handler needs from the request: the services it uses (``service``), the
authenticated principal, the command context, authorisation, and read-your-writes waits.

Consistency contract: a command's response is sent only after the read models and this node's
token verifier have caught up with the events it wrote (bounded), so the caller's next request on
any endpoint of this node sees its own write, and a revocation is effective here before its
response leaves. GETs first wait until the read models have caught up with everything committed
before the GET arrived, so a GET right after a command, on any node, sees that command.
"""

import logging
from typing import Any, TypeVar

from aiohttp import web

from events import LogCursor
from services.api.idempotency import idempotency_key
from services.api.problems import REQUEST_ID, ServiceUnavailable
from services.api.state import CLOCK, DISPATCHER, ORGANIZATION, PROJECTIONS, VERIFIER, Late, bound
from services.auth.principal import Principal
from services.auth.usage_log import NO_RIGHT, OUT_OF_SCOPE
from services.authorization import MissingRight, Right, require
from services.commands import CommandContext, Outcome

PRINCIPAL = web.RequestKey("tokenledger.principal", Principal)
REFUSAL = web.RequestKey("tokenledger.refusal", str)
"""Set when the caller's token lacks a right the request needs: its verification is recorded in the
usage log as rejected, ``out_of_scope`` when the account holds the right and the token's scopes
exclude it, ``no_right`` when the account does not hold it."""
SETTLE_SECONDS = 5.0
_log = logging.getLogger(__name__)
T = TypeVar("T")


def service(request: web.Request, key: web.AppKey[Late[T]]) -> T:
    """The service under ``key``; 503 while it is not bound (the service is starting or stopping)."""
    value = bound(request.app, key)
    if value is None:
        raise ServiceUnavailable("the service is starting")
    return value


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def _refused(request: web.Request, error: MissingRight) -> None:
    request[REFUSAL] = OUT_OF_SCOPE if error.out_of_scope else NO_RIGHT


def authorize(request: web.Request, right: Right) -> Principal:
    """For reads: the caller, when it holds ``right``. Commands are authorised by the dispatcher."""
    actor = principal(request)
    try:
        require(actor, service(request, ORGANIZATION).organization_id, right)
    except MissingRight as error:
        _refused(request, error)
        raise
    return actor


def admit(request: web.Request, kind: type) -> None:
    """Refuses, before the body is read, a caller the dispatcher would refuse commands of ``kind``."""
    try:
        service(request, DISPATCHER).authorize(kind, principal(request))
    except MissingRight as error:
        _refused(request, error)
        raise


async def execute(request: web.Request, command: object) -> Outcome[Any]:
    """Sends ``command`` as the caller, with the request's ``Idempotency-Key`` (POST commands
    only), through the dispatcher (which authorises it and claims the key), then waits until this
    node has applied what it wrote (read-your-writes)."""
    key = idempotency_key(request) if request.method == "POST" else None
    dispatcher = service(request, DISPATCHER)
    try:
        outcome = await dispatcher.dispatch(command, principal(request), command_context(request), key)
    except MissingRight as error:
        _refused(request, error)
        raise
    await settle(request, outcome.cursor)
    return outcome


def command_context(request: web.Request) -> CommandContext:
    actor = principal(request)
    return CommandContext(
        now=service(request, CLOCK)(),
        actor=actor.account_id,
        actor_token_id=actor.token_id,
        correlation_id=request.get(REQUEST_ID),
    )


async def settle(request: web.Request, cursor: LogCursor | None) -> None:
    """Waits until this node's read models and verifier have applied ``cursor``."""
    if cursor is None:
        return
    projections, verifier = service(request, PROJECTIONS), service(request, VERIFIER)
    reached = await projections.wait_for(cursor, SETTLE_SECONDS)
    if not (await verifier.wait_for(cursor, SETTLE_SECONDS) and reached):
        _log.warning("read models or verifier still behind %s after %.0fs", cursor, SETTLE_SECONDS)


async def consistent_read(request: web.Request) -> None:
    """Waits until the read models hold everything committed before this request; 503 when they
    cannot within ``SETTLE_SECONDS`` (a stale answer would hide the caller's own write)."""
    if not await service(request, PROJECTIONS).wait_until_current(SETTLE_SECONDS):
        raise ServiceUnavailable("the read models are behind the log; retry shortly", retry_after_seconds=1)
