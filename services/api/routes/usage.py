"""``GET /v3/system-accounts/{accountId}/access-tokens/{tokenId}/usage``: the usage timeline of one
token (every verification of it, from the usage log), oldest first. Extension.

Readable with the ``audit:read`` right (the Auditor and Admin roles). A token the account has, or
had (a deleted token's history stays readable), else 404.

Query: ``page[size]`` (1..100, default 10), ``page[after]`` (a position, as given by
``meta.page.next``: the rows after it), ``filter[occurred_at][gte]`` (inclusive) and
``filter[occurred_at][lt]`` (exclusive) as RFC 3339 date-times with an offset, ``filter[outcome]``
or ``filter[outcome][eq]`` (``accepted`` or ``rejected``). Anything else, a repeated parameter or a
malformed value is a 400 naming each offending parameter as sent.

Answer, in Konnect's cursor envelope:
``{"meta": {"page": {"size", "first", "next", "previous": null}}, "data": [...]}`` where ``first``
and ``next`` are this path with the same filters (``next`` null on the last page) and each item is
``{"position", "occurred_at", "outcome", "reason", "operation", "client_address", "user_agent"}``.
A verification appears once its process has flushed its usage log (1 s by default).
"""

from typing import Any

import asyncpg
import msgspec
from aiohttp import web
from multidict import MultiMapping

from services.api.context import authorize, consistent_read, service
from services.api.cursor_query import PAGE_AFTER, PAGE_SIZE, cursor_page, page_after, page_size
from services.api.parsing import query_instant, query_problem
from services.api.problems import BadRequest, InvalidParameter, NotFound
from services.api.queries.usage import UsageSelection, token_exists, usage_page
from services.api.representations import timestamp
from services.api.routes.common import account_id, json, token_id
from services.api.state import READ_POOL
from services.auth.usage_log import ACCEPTED, REJECTED
from services.authorization import Right

PATH = "/v3/system-accounts/{accountId}/access-tokens/{tokenId}/usage"
OUTCOMES = (ACCEPTED, REJECTED)
_SIZE, _AFTER = PAGE_SIZE, PAGE_AFTER
_FROM, _BEFORE = "filter[occurred_at][gte]", "filter[occurred_at][lt]"
_OUTCOME_NAMES = ("filter[outcome]", "filter[outcome][eq]")
PARAMETERS = frozenset({_SIZE, _AFTER, _FROM, _BEFORE, *_OUTCOME_NAMES})


def parse_usage_query(query: MultiMapping[str]) -> UsageSelection:
    """The selection a request's query string asks for, or a 400 listing every problem."""
    problems: list[InvalidParameter] = []
    values: dict[str, str] = {}
    for name, raw in query.items():
        if name not in PARAMETERS:
            problems.append(query_problem(name, "is not a supported query parameter", "unknown_property"))
        elif name in values or (name in _OUTCOME_NAMES and set(_OUTCOME_NAMES) & values.keys()):
            problems.append(query_problem(name, "must not be repeated"))
        else:
            values[name] = raw.strip()
    outcome = next((values[n] for n in _OUTCOME_NAMES if n in values), None)
    if outcome is not None and outcome not in OUTCOMES:
        name = next(n for n in _OUTCOME_NAMES if n in values)
        problems.append(query_problem(name, "must be accepted or rejected", "enum", choices=OUTCOMES))
    selection = UsageSelection(
        limit=page_size(values.get(_SIZE), problems),
        after=page_after(values[_AFTER], 1, problems)[0] if values.get(_AFTER) else 0,
        occurred_from=query_instant(_FROM, values[_FROM], problems) if _FROM in values else None,
        occurred_before=query_instant(_BEFORE, values[_BEFORE], problems) if _BEFORE in values else None,
        outcome=outcome,
    )
    if problems:
        raise BadRequest(problems)
    return selection


def _item(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "position": row["position"],
        "occurred_at": timestamp(row["occurred_at"]),
        "outcome": row["outcome"],
        "reason": row["reason"],
        "operation": row["operation"],
        "client_address": row["client_address"],
        "user_agent": row["user_agent"],
    }


async def token_usage(request: web.Request) -> web.Response:
    authorize(request, Right.AUDIT)
    owner, token = account_id(request), token_id(request)
    selection = parse_usage_query(request.query)
    await consistent_read(request)
    pool = service(request, READ_POOL)
    if not await token_exists(pool, owner, token):
        raise NotFound("The requested access token was not found")
    asked = selection.limit
    rows = await usage_page(pool, token, msgspec.structs.replace(selection, limit=asked + 1))
    page = rows[:asked]
    next_after = page[-1]["position"] if len(rows) > asked else None
    after = str(next_after) if next_after is not None else None
    return json(cursor_page(request, asked, [_item(row) for row in page], after))


def add_routes(app: web.Application) -> None:
    app.router.add_get(PATH, token_usage)
