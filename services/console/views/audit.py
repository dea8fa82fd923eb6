"""Audit pages (the ``audit:read`` right): an account's timeline of events and its state as of an
instant, a token's events and usage (with the per-hour chart), and the hash chain's status."""

from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import web

from events import public_data
from services.api import representations as show
from services.api.problems import NotFound
from services.api.queries import accounts as account_queries
from services.api.queries.usage import token_exists
from services.audit import as_of as history
from services.audit.verify import verify
from services.authorization import Right
from services.console import queries
from services.console.chart import usage_chart
from services.console.context import (
    invalid,
    now,
    page,
    read_consistently,
    read_pool,
)
from services.console.views.accounts import path_uuid, token_fields
from services.eventstore.rows import recorded_event

TIMELINE_LENGTH = 200
USAGE_LENGTH = 100
MAX_INSTANT_TEXT = 40
_NOT_SHOWN = frozenset({"type", "account_id", "token_id", "team_id"})
"""The tag and the ids every timeline entry already names."""


def _instant(request: web.Request) -> datetime | None:
    """The picker's ``as_of`` (``YYYY-MM-DDTHH:MM[:SS]``, read as UTC; an offset is honoured)."""
    raw = request.query.get("as_of", "").strip()
    if not raw:
        return None
    try:
        if len(raw) > MAX_INSTANT_TEXT:
            raise ValueError(raw)
        moment = datetime.fromisoformat(raw)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        reason = "must be a date and time (YYYY-MM-DDTHH:MM, UTC)"
        raise invalid("as_of", reason, "is_date_time", "query") from None


async def _timeline(pool: asyncpg.Pool, rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
    events = [recorded_event(row) for row in rows]
    actors = await queries.account_names(pool, sorted({e.metadata.actor for e in events if e.metadata.actor}))
    credentials = await queries.token_names(
        pool, sorted({e.metadata.actor_token_id for e in events if e.metadata.actor_token_id})
    )
    items = []
    for recorded in events:
        metadata = recorded.metadata
        data = public_data(recorded.event)
        items.append(
            {
                "position": recorded.global_position,
                "type": recorded.type,
                "occurred_at": metadata.occurred_at,
                "actor_id": metadata.actor,
                "actor_name": actors.get(metadata.actor or ""),
                "token_id": metadata.actor_token_id,
                "token_name": credentials.get(metadata.actor_token_id or ""),
                "via": metadata.via,
                "details": [
                    (key, value)
                    for key, value in sorted(data.items())
                    if key not in _NOT_SHOWN and value is not None
                ],
            }
        )
    return items


async def account_audit(request: web.Request) -> web.Response:
    account_id = path_uuid(request, "accountId", "system account")
    at = _instant(request)
    await read_consistently(request, Right.AUDIT)
    pool = read_pool(request)
    row = await account_queries.get_account(pool, account_id)
    if row is None:
        raise NotFound("The requested system account was not found")
    then: dict[str, Any] | None = None
    if at is not None:
        state = await history.account_as_of(pool, account_id, at)
        tokens = await history.tokens_as_of(pool, account_id, at)
        teams = await history.teams_as_of(pool, account_id, at)
        team_names = {history.team_source(team.team_id): f"via {team.name}" for team in teams}
        then = {
            "at": at,
            "account": show.account(state, at) if state is not None else None,
            "roles": [
                {"role": held.role, "held": team_names.get(held.source, "directly")}
                for held in await history.roles_as_of(pool, account_id, at)
            ],
            "teams": [show.team(team) for team in teams],
            "tokens": [token_fields(show.token(token, at)) for token in tokens],
        }
    return page(
        request,
        "account_audit.html",
        {
            "account": show.account_row(row, now(request)),
            "events": await _timeline(pool, await queries.account_events(pool, account_id, TIMELINE_LENGTH)),
            "then": then,
            "as_of_value": at.strftime("%Y-%m-%dT%H:%M:%S") if at else "",
        },
    )


async def token_audit(request: web.Request) -> web.Response:
    account_id = path_uuid(request, "accountId", "system account")
    token_id = path_uuid(request, "tokenId", "access token")
    await read_consistently(request, Right.AUDIT)
    pool = read_pool(request)
    if not await token_exists(pool, account_id, token_id):
        raise NotFound("The requested access token was not found")
    token = await pool.fetchrow("SELECT name, deleted FROM rm_tokens WHERE token_id = $1::uuid", token_id)
    at = now(request)
    return page(
        request,
        "token_audit.html",
        {
            "account_id": account_id,
            "token_id": token_id,
            "token_name": token["name"] if token else token_id,
            "deleted": bool(token and token["deleted"]),
            "events": await _timeline(pool, await queries.token_events(pool, token_id, TIMELINE_LENGTH)),
            "usage": await queries.token_usage(pool, token_id, USAGE_LENGTH),
            "chart": usage_chart(await queries.usage_per_hour(pool, token_id, at), at, queries.CHART_DAYS),
        },
    )


async def chain(request: web.Request) -> web.Response:
    """The log's sealing status; with ``?verify=1`` the whole log's chains are recomputed now."""
    await read_consistently(request, Right.AUDIT)
    pool = read_pool(request)
    report = await verify(pool) if request.query.get("verify") == "1" else None
    return page(request, "chain.html", {"status": await queries.seal_status(pool), "report": report})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/accounts/{accountId}/audit", account_audit)
    app.router.add_get("/accounts/{accountId}/tokens/{tokenId}/audit", token_audit)
    app.router.add_get("/audit", chain)
