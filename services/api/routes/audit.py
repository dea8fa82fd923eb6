"""The audit API (extension, in the Konnect style), readable with the ``audit:read`` right (the
Auditor and Admin roles):

* ``GET /v3/audit/events``: the log itself, oldest first, with ``filter[account_id]``,
  ``filter[token_id]``, ``filter[type]``, ``filter[occurred_at][gte]``/``[lt]`` and cursor pagination
  (``page[size]``, ``page[after]``). The cursor is the log's commit-order cursor
  ``<tx_id>.<position>`` and a page holds only events of transactions older than every running one
  (the same gap-safe read as the projections), so paging is stable under concurrent appends: an
  event that commits later always lands after a cursor already handed out. Items: ``event_id``,
  ``type``, ``stream_id``, ``stream_version``, ``position``, ``occurred_at``, ``recorded_at``,
  ``actor`` (``account_id``, ``token_id``), ``correlation_id``, ``via`` (``console`` for a
  command sent from the web console, else null), ``data`` (public fields only: never
  a secret hash).
* ``?as_of=<RFC 3339>`` on ``GET /v3/system-accounts/{id}``, its ``access-tokens`` (list and one),
  ``assigned-roles`` and ``teams``: the state at that instant, folded from the log up to it (not
  from the current projections). Roles as of a time include the team-inherited ones, each with its
  ``source`` (``direct`` or ``team:<id>``).
"""

from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from aiohttp import web

from events import public_data
from services.api import representations as show
from services.api.context import authorize, consistent_read, service
from services.api.cursor_query import PAGE_AFTER, PAGE_SIZE, cursor_page, page_after, page_size
from services.api.listing import ListQuery, collection
from services.api.parsing import query_instant, query_problem, query_text
from services.api.problems import BadRequest, InvalidParameter, NotFound
from services.api.routes.common import account_id, json, token_id
from services.api.state import READ_POOL
from services.audit import as_of as history
from services.authorization import Right
from services.eventstore.rows import EVENT_COLUMNS, recorded_event

AS_OF = "as_of"
WHOLE_LIST = ListQuery(page_size=None, page_number=1)
_FILTERS = {
    "filter[account_id]": "(e.data->>'account_id' = ${n} OR e.stream_id = 'account-' || ${n})",
    "filter[token_id]": "e.data->>'token_id' = ${n}",
    "filter[type]": "e.type = ${n}",
    "filter[occurred_at][gte]": "(e.metadata->>'occurred_at')::timestamptz >= ${n}",
    "filter[occurred_at][lt]": "(e.metadata->>'occurred_at')::timestamptz < ${n}",
}
_INSTANTS = frozenset({"filter[occurred_at][gte]", "filter[occurred_at][lt]"})
_EVENTS_SQL = (
    f"SELECT {EVENT_COLUMNS} FROM events e"  # noqa: S608 (a constant column list)
    " WHERE (e.tx_id, e.global_position) > ($1::bigint::text::xid8, $2::bigint)"
    " AND e.tx_id < pg_snapshot_xmin(pg_current_snapshot()) AND {conditions}"
    " ORDER BY e.tx_id, e.global_position LIMIT $3"
)


def _events_query(request: web.Request) -> tuple[int, tuple[int, int], str, list[Any]]:
    problems: list[InvalidParameter] = []
    seen: set[str] = set()
    conditions: list[str] = []
    args: list[Any] = []
    size, after = page_size(None, problems), (0, 0)
    for name, raw in request.query.items():
        if name in seen:
            problems.append(query_problem(name, "must not be repeated"))
            continue
        seen.add(name)
        if name == PAGE_SIZE:
            size = page_size(raw, problems)
        elif name == PAGE_AFTER:
            tx, position = page_after(raw, 2, problems)
            after = (tx, position)
        elif name in _FILTERS:
            parse = query_instant if name in _INSTANTS else query_text
            value: Any = parse(name, raw, problems)
            args.append(value)
            conditions.append(_FILTERS[name].replace("{n}", str(len(args) + 3)))
        else:
            problems.append(query_problem(name, "is not a supported query parameter", "unknown_property"))
    if problems:
        raise BadRequest(problems)
    return size, after, " AND ".join(conditions) or "TRUE", args


def _event_item(row: asyncpg.Record) -> dict[str, Any]:
    recorded = recorded_event(row)
    metadata = recorded.metadata
    return {
        "event_id": str(recorded.event_id),
        "type": recorded.type,
        "stream_id": recorded.stream_id,
        "stream_version": recorded.stream_version,
        "position": recorded.global_position,
        "occurred_at": msgspec.to_builtins(metadata.occurred_at),
        "recorded_at": show.timestamp(recorded.recorded_at),
        "actor": {"account_id": metadata.actor, "token_id": metadata.actor_token_id},
        "correlation_id": metadata.correlation_id,
        "via": metadata.via,
        "data": public_data(recorded.event),
    }


async def audit_events(request: web.Request) -> web.Response:
    authorize(request, Right.AUDIT)
    size, (tx, position), conditions, args = _events_query(request)
    sql = _EVENTS_SQL.replace("{conditions}", conditions)
    rows = await service(request, READ_POOL).fetch(sql, tx, position, size + 1, *args)
    page = rows[:size]
    next_after = f"{page[-1]['tx_id']}.{page[-1]['global_position']}" if len(rows) > size else None
    return json(cursor_page(request, size, [_event_item(row) for row in page], next_after))


# -- as of a past instant -------------------------------------------------------------------------


def as_of_param(request: web.Request) -> datetime | None:
    """The ``as_of`` instant of the request, None without one; a malformed one is a 400."""
    raw = request.query.get(AS_OF)
    if raw is None:
        return None
    problems: list[InvalidParameter] = []
    at = query_instant(AS_OF, raw, problems)
    if at is None:
        raise BadRequest(problems)
    return at


def _no_other_parameters(request: web.Request) -> None:
    others = [name for name in request.query if name != AS_OF]
    if others:
        reason = "is not supported together with as_of"
        raise BadRequest([query_problem(name, reason, "unknown_property") for name in others])


async def _account_then(request: web.Request, at: datetime) -> Any:
    authorize(request, Right.AUDIT)
    _no_other_parameters(request)
    await consistent_read(request)
    account = await history.account_as_of(service(request, READ_POOL), account_id(request), at)
    if account is None:
        raise NotFound("The requested system account did not exist at that time")
    return account


async def account_as_of(request: web.Request, at: datetime) -> web.Response:
    return json(show.account(await _account_then(request, at), at))


async def tokens_as_of(request: web.Request, at: datetime) -> web.Response:
    await _account_then(request, at)
    tokens = await history.tokens_as_of(service(request, READ_POOL), account_id(request), at)
    query = WHOLE_LIST
    return json(collection([show.token(t, at) for t in tokens], query, len(tokens)))


async def token_as_of(request: web.Request, at: datetime) -> web.Response:
    await _account_then(request, at)
    wanted = token_id(request)
    tokens = await history.tokens_as_of(service(request, READ_POOL), account_id(request), at)
    found = next((t for t in tokens if t.token_id == wanted), None)
    if found is None:
        raise NotFound("The requested access token did not exist at that time")
    return json(show.token(found, at))


async def roles_as_of(request: web.Request, at: datetime) -> web.Response:
    await _account_then(request, at)
    roles = await history.roles_as_of(service(request, READ_POOL), account_id(request), at)
    items = [{**show.assigned_role(r.role), "source": r.source} for r in roles]
    query = WHOLE_LIST
    return json(collection(items, query, len(items)))


async def federated_credentials_as_of(request: web.Request, at: datetime) -> web.Response:
    account = await _account_then(request, at)
    items = [show.federated_credential(c) for c in account.federated_credentials.values()]
    return json(collection(items, WHOLE_LIST, len(items)))


async def teams_as_of(request: web.Request, at: datetime) -> web.Response:
    await _account_then(request, at)
    teams = await history.teams_as_of(service(request, READ_POOL), account_id(request), at)
    query = WHOLE_LIST
    return json(collection([show.team(t) for t in teams], query, len(teams)))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v3/audit/events", audit_events)
