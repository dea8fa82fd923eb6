"""Query parameters of the cursor-paginated extensions (audit events, token usage): their parsing
into problems that name each offending parameter as sent, and the ``first``/``next`` links of
Konnect's cursor envelope ``{"meta": {"page": {"size", "first", "next", "previous"}}}``."""

import urllib.parse
from datetime import datetime
from typing import Any

from aiohttp import web

from services.api.listing import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from services.api.problems import InvalidParameter

PAGE_SIZE, PAGE_AFTER = "page[size]", "page[after]"


def query_problem(name: str, reason: str, rule: Any = "invalid", **extra: Any) -> InvalidParameter:
    return InvalidParameter(name, reason, rule, "query", **extra)


def page_size(raw: str | None, problems: list[InvalidParameter]) -> int:
    if not raw:
        return DEFAULT_PAGE_SIZE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        reason = f"must be an integer from 1 to {MAX_PAGE_SIZE}"
        problems.append(query_problem(PAGE_SIZE, reason, "max", maximum=MAX_PAGE_SIZE))
        return DEFAULT_PAGE_SIZE
    return int(raw)


def instant(name: str, raw: str, problems: list[InvalidParameter]) -> datetime | None:
    """An RFC 3339 date-time with an offset, or a problem naming ``name``."""
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        problems.append(query_problem(name, "must be an RFC 3339 date-time with an offset", "is_date_time"))
        return None
    return parsed


def page_link(request: web.Request, after: str | None) -> str:
    """This path with the same query, starting after ``after`` (None: the first page)."""
    kept = [(k, v) for k, v in request.query.items() if k != PAGE_AFTER]
    if after is not None:
        kept.append((PAGE_AFTER, after))
    return f"{request.path}?{urllib.parse.urlencode(kept, safe='[]:')}" if kept else request.path


def cursor_page(request: web.Request, size: int, items: list[Any], next_after: str | None) -> dict[str, Any]:
    meta = {
        "size": size,
        "first": page_link(request, None),
        "next": page_link(request, next_after) if next_after is not None else None,
        "previous": None,
    }
    return {"meta": {"page": meta}, "data": items}
