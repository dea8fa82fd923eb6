"""What a console page handler needs: who is signed in (``Viewer``), the form it was sent, rendering a
page, and sending a command as the signed-in token (``act``).

The console is a door like the API: a command goes through the dispatcher as the session's
``Principal`` (the dispatcher authorises it, the handler applies the cover rule), with a
``CommandContext`` whose metadata says ``via: console``, and the page is rendered once this node's
read models and verifier hold what it wrote (read-your-writes, ``services.api.context.settle``).
Reads check the right they need with ``need``, the same rule as the API's ``authorize``.
"""

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

import aiohttp_jinja2
import asyncpg
import msgspec
from aiohttp import web
from multidict import MultiDictProxy

from services.api.context import REFUSAL, consistent_read, service, settle
from services.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from services.api.parsing import decode_body
from services.api.problems import REQUEST_ID, BadRequest, InvalidParameter, ProblemError
from services.api.state import (
    CATALOGUE,
    CLOCK,
    DISPATCHER,
    ORGANIZATION,
    READ_POOL,
    USAGE,
    VERIFIER,
)
from services.auth.principal import Principal
from services.auth.usage import UsageRecorder
from services.auth.usage_log import NO_RIGHT, OUT_OF_SCOPE
from services.auth.verifier import TokenVerifier
from services.authorization import WRITE_RIGHTS, MissingRight, Right, require, rights_of
from services.commands import CommandContext, Outcome
from services.console.sessions import Session, SessionPolicy
from services.idempotency_claims import key_problem

T = TypeVar("T")
VIA = "console"
IDEMPOTENCY_FIELD = "idempotency_key"


class Viewer(msgspec.Struct, frozen=True, kw_only=True):
    """The signed-in token and what its rights let the pages offer (``can("tokens:write")``: the
    templates show a control only to a token that may use it)."""

    principal: Principal
    session: Session
    rights: frozenset[Right]

    def can(self, right: str) -> bool:
        return right in self.rights

    @property
    def read_only(self) -> bool:
        return not self.rights & WRITE_RIGHTS


VIEWER = web.RequestKey("tokenledger.console.viewer", Viewer)
FORM = web.RequestKey("tokenledger.console.form", MultiDictProxy[str | bytes | bytearray | web.FileField])


class ConsoleOptions(msgspec.Struct, frozen=True, kw_only=True):
    """What the console is told of the deployment when it is mounted."""

    sessions: SessionPolicy = SessionPolicy()
    allow_never: bool = False
    """Whether the deployment accepts tokens that never expire (the issue form offers "never")."""


OPTIONS = web.AppKey("tokenledger.console.options", ConsoleOptions)


# -- the services the console uses, each read from the application in this one place --------------


def read_pool(request: web.Request) -> asyncpg.Pool:
    return service(request, READ_POOL)


def now(request: web.Request) -> datetime:
    return service(request, CLOCK)()


def verifier(request: web.Request) -> TokenVerifier:
    return service(request, VERIFIER)


def usage(request: web.Request) -> UsageRecorder:
    return service(request, USAGE)


def organization_id(request: web.Request) -> str:
    return service(request, ORGANIZATION).organization_id


def catalogue(request: web.Request) -> dict[str, Any]:
    """The role catalogue's document (``/v3/roles``' shape): entity types and their roles."""
    document: dict[str, Any] = json.loads(service(request, CATALOGUE).document)
    return document


def options(request: web.Request) -> ConsoleOptions:
    return request.config_dict[OPTIONS]


def allow_never(request: web.Request) -> bool:
    return options(request).allow_never


# -- the signed-in token ----------------------------------------------------------------------------


def viewer_of(principal: Principal, session: Session, organization_id: str) -> Viewer:
    return Viewer(principal=principal, session=session, rights=rights_of(principal, organization_id))


def viewer(request: web.Request) -> Viewer:
    return request[VIEWER]


def _refused(request: web.Request, error: MissingRight) -> None:
    """The verification is recorded as the API records it: ``out_of_scope`` or ``no_right``."""
    request[REFUSAL] = OUT_OF_SCOPE if error.out_of_scope else NO_RIGHT


def need(request: web.Request, right: Right) -> Viewer:
    """The viewer, when its token holds ``right``; else the API's 403 (``MissingRight``)."""
    current = viewer(request)
    try:
        require(current.principal, organization_id(request), right)
    except MissingRight as error:
        _refused(request, error)
        raise
    return current


def admit(request: web.Request, kind: type) -> None:
    """Refuses, before the form's values are read, a token the dispatcher would refuse commands of
    ``kind`` (as the API's ``admit``): a Viewer's forged form is a 403 whatever it holds."""
    try:
        service(request, DISPATCHER).authorize(kind, viewer(request).principal)
    except MissingRight as error:
        _refused(request, error)
        raise


async def read_consistently(request: web.Request, right: Right) -> Viewer:
    current = need(request, right)
    await consistent_read(request)
    return current


def invalid(field: str, reason: str, rule: Any = "invalid", source: Any = "body") -> BadRequest:
    """The API's 400 naming one field of the form (or of the query, ``source="query"``)."""
    return BadRequest([InvalidParameter(field=field, reason=reason, rule=rule, source=source)])


def form_text(request: web.Request, name: str) -> str | None:
    """A text field of the posted form (None when absent); a file where text is due is a 400."""
    value = request[FORM].get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(name, "must be text", "type")
    return value


def _idempotency_key(request: web.Request) -> str | None:
    """The form's one-use key (each rendered form carries a fresh one), so that sending a form twice
    (a double click, a resubmitted page) carries out its command once and answers as the first time."""
    key = form_text(request, IDEMPOTENCY_FIELD)
    if key is None:
        return None
    if key_problem(key) is not None:
        raise invalid(IDEMPOTENCY_HEADER, "is not a valid key")
    return key


async def act(request: web.Request, command: object) -> Outcome[Any]:
    """Sends ``command`` as the signed-in token through the dispatcher, then waits until this node
    has applied what it wrote."""
    current = viewer(request)
    context = CommandContext(
        now=now(request),
        actor=current.principal.account_id,
        actor_token_id=current.principal.token_id,
        correlation_id=request.get(REQUEST_ID),
        via=VIA,
    )
    try:
        outcome = await service(request, DISPATCHER).dispatch(
            command, current.principal, context, _idempotency_key(request)
        )
    except MissingRight as error:
        _refused(request, error)
        raise
    await settle(request, outcome.cursor)
    return outcome


def page(
    request: web.Request, template: str, context: Mapping[str, Any], *, status: int = 200
) -> web.Response:
    """``template`` rendered with ``context``, the viewer (None before sign-in) and the path (the
    navigation marks the current section)."""
    values = {**context, "viewer": request.get(VIEWER), "here": request.path}
    return aiohttp_jinja2.render_template(template, request, values, status=status)


def redirect(location: str) -> web.Response:
    """303 See Other: after a form that changed something, the page to show (Post/Redirect/Get)."""
    return web.Response(status=303, headers={"Location": location})


def decoded(fields: Mapping[str, Any], type_: type[T]) -> T:
    """A form's values read as the API reads the same request's JSON body (``type_`` is the API's
    request Struct): the same bounds, names rule and problems, whichever door a value comes in by."""
    return decode_body(msgspec.json.encode(fields), type_)


def back_link(path: str) -> str:
    """Where a refused form's page links back to: the account or team it was about, else the list."""
    parts = path.removeprefix("/console/").split("/")
    if parts[0] in ("accounts", "teams") and len(parts) > 1 and parts[1]:
        return f"/console/{parts[0]}/{parts[1]}"
    if parts[0] in ("teams", "roles", "audit"):
        return f"/console/{parts[0]}"
    return "/console/accounts"


def problem_page(request: web.Request, problem: ProblemError) -> web.Response:
    """A refusal as a page: the API's problem (status, title, detail, invalid parameters)."""
    response = page(
        request,
        "error.html",
        {"problem": problem, "back": back_link(request.path)},
        status=problem.status,
    )
    response.headers.update(problem.headers)
    return response
