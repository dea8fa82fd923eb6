"""What a route handler needs from the request: the runtime, the authenticated principal, the
command context, authorisation, and read-your-writes waits.

Consistency contract: a command's response is sent only after the read models and this node's
token verifier have caught up with the events it wrote (bounded), so the caller's next request on
any endpoint of this node sees its own write, and a revocation is effective here before its
response leaves. GETs first wait until the read models have caught up with everything committed
before the GET arrived, so a GET right after a command, on any node, sees that command.
"""

import logging
from typing import Any

from aiohttp import web

from events import LogCursor
from services.api.idempotency import idempotency_key
from services.api.problems import REQUEST_ID, ServiceUnavailable
from services.api.state import RUNTIME, ServedRuntime
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


def runtime(request: web.Request) -> ServedRuntime:
    current = request.app[RUNTIME].runtime
    if current is None:
        raise ServiceUnavailable("the service is starting")
    return current


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def _refused(request: web.Request, error: MissingRight) -> None:
    request[REFUSAL] = OUT_OF_SCOPE if error.out_of_scope else NO_RIGHT


def authorize(request: web.Request, right: Right) -> Principal:
    """For reads: the caller, when it holds ``right``. Commands are authorised by the dispatcher."""
    actor = principal(request)
    try:
        require(actor, runtime(request).organization.organization_id, right)
    except MissingRight as error:
        _refused(request, error)
        raise
    return actor


def admit(request: web.Request, kind: type) -> None:
    """Refuses, before the body is read, a caller the dispatcher would refuse commands of ``kind``."""
    try:
        runtime(request).dispatcher.authorize(kind, principal(request))
    except MissingRight as error:
        _refused(request, error)
        raise


async def execute(request: web.Request, command: object) -> Outcome[Any]:
    """Sends ``command`` as the caller, with the request's ``Idempotency-Key`` (POST commands
    only), through the dispatcher (which authorises it and claims the key), then waits until this
    node has applied what it wrote (read-your-writes)."""
    key = idempotency_key(request) if request.method == "POST" else None
    try:
        outcome = await runtime(request).dispatcher.dispatch(
            command, principal(request), command_context(request), key
        )
    except MissingRight as error:
        _refused(request, error)
        raise
    await settle(request, outcome.cursor)
    return outcome


def command_context(request: web.Request) -> CommandContext:
    actor = principal(request)
    return CommandContext(
        now=runtime(request).clock(),
        actor=actor.account_id,
        actor_token_id=actor.token_id,
        correlation_id=request.get(REQUEST_ID),
    )


async def settle(request: web.Request, cursor: LogCursor | None) -> None:
    """Waits until this node's read models and verifier have applied ``cursor``."""
    if cursor is not None and not await runtime(request).caught_up(cursor, SETTLE_SECONDS):
        _log.warning("read models or verifier still behind %s after %.0fs", cursor, SETTLE_SECONDS)


async def consistent_read(request: web.Request) -> None:
    """Waits until the read models hold everything committed before this request; 503 when they
    cannot within ``SETTLE_SECONDS`` (a stale answer would hide the caller's own write)."""
    if not await runtime(request).projections.wait_until_current(SETTLE_SECONDS):
        raise ServiceUnavailable("the read models are behind the log; retry shortly", retry_after_seconds=1)
