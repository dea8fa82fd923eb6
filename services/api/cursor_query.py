"""Query parameters of the cursor-paginated extensions (audit events, token usage): ``page[size]``
and a ``page[after]`` cursor of int64 parts, read with the bounded parsers of
``services.api.parsing`` into problems that name each offending parameter as sent, and the
``first``/``next`` links of Konnect's cursor envelope
``{"meta": {"page": {"size", "first", "next", "previous"}}}``."""

import urllib.parse
from typing import Any

from aiohttp import web

from services.api.listing import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from services.api.parsing import MAX_INT64, bounded_integer, query_integer, query_problem
from services.api.problems import InvalidParameter

PAGE_SIZE, PAGE_AFTER = "page[size]", "page[after]"


def page_size(raw: str | None, problems: list[InvalidParameter]) -> int:
    """``page[size]``: 1..100, default 10 (an empty value means the default)."""
    if not raw or not raw.strip():
        return DEFAULT_PAGE_SIZE
    size = query_integer(PAGE_SIZE, raw, problems, minimum=1, maximum=MAX_PAGE_SIZE)
    return DEFAULT_PAGE_SIZE if size is None else size


def page_after(raw: str, parts: int, problems: list[InvalidParameter]) -> tuple[int, ...]:
    """``page[after]``: ``parts`` non-negative int64s joined by dots, as given by ``meta.page.next``
    (all zeros, the start, when refused)."""
    found = [bounded_integer(part, 0, MAX_INT64) for part in raw.strip().split(".")]
    if len(found) != parts or None in found:
        problems.append(query_problem(PAGE_AFTER, "must be a cursor, as given by meta.page.next"))
        return (0,) * parts
    return tuple(value for value in found if value is not None)


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
