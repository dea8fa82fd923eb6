"""Konnect collection queries: ``page[size]``/``page[number]`` and ``filter[...]``, their SQL, the envelope.

This module owns:

* the filter declarations a list route makes (``StringFilter``, ``BoolFilter``, ``LabelFilter``) and
  ``parse_list_query(query, filters, paginated=...)`` (or ``list_query(request, ...)``), which turns
  the query string into a ``ListQuery`` or answers 400 naming every offending parameter exactly as
  sent (``filter[name][startswith]``, reason ``[startswith] is not a supported filter operation``, as
  in Konnect's example);
* ``sql_conditions``: the parameterised SQL condition for a ``ListQuery``'s filters, given a mapping of
  filter field -> column expression (trusted code, never client input);
* ``collection``/``collection_response``: ``{"meta":{"page":{"number","size","total"}},"data":[...]}``.

Decisions where the spec is silent: ``page[size]`` defaults to 10 and must be 1..100; ``page[number]``
defaults to 1 and must be 1..1,000,000; an empty value (``allowEmptyValue: true``) means the default;
a repeated parameter is a 400; ``eq`` and ``contains`` on one field may be combined (AND); ``contains``
is case-sensitive; a boolean filter also accepts ``[eq]``; any query parameter a route does not declare
is a 400, including ``page[...]`` on the route that takes none (the role catalogue). The assigned-role
lists take ``page[...]`` too, although Konnect's spec lists none there (our extension, declared in our
document), so that every collection pages and reports ``meta.page`` alike. Page numbers
and filter values are read by the bounded parsers of ``services.api.parsing`` (ASCII digits within
range; text without U+0000, at most 1024 characters), so nothing unbounded reaches SQL.
Team labels accept both spellings of the spec: ``filter[labels.<key>][op]`` (its prose) and
``filter[labels][<key>][op]`` (strict deepObject), with ``eq``, ``contains`` and ``exists`` (boolean).
"""

import dataclasses
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Literal

import msgspec
from aiohttp import web
from multidict import MultiMapping

from services.api.parsing import query_integer, query_problem, query_text
from services.api.problems import BadRequest, InvalidParameter

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100
MAX_PAGE_NUMBER = 1_000_000

Operation = Literal["eq", "contains", "exists"]
_STRING_OPS = frozenset({"eq", "contains"})
_LABEL_OPS = frozenset({"eq", "contains", "exists"})
_FILTER_NAME = re.compile(r"filter((?:\[[^\[\]]*\])+)")
_BRACKETS = re.compile(r"\[([^\[\]]*)\]")


@dataclasses.dataclass(frozen=True)
class StringFilter:
    """A string field: ``filter[f][eq]``/``filter[f][contains]``; ``bare_allowed`` (alias ``bare``):
    ``filter[f]=v`` too, meaning ``eq`` (the spec's StringFieldEqualsFilter)."""

    ops: Collection[str] = _STRING_OPS
    bare_allowed: bool = False
    bare: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "ops", frozenset(self.ops))
        if not self.ops or not set(self.ops) <= _STRING_OPS:
            raise ValueError(f"string filter operations must be among {sorted(_STRING_OPS)}")

    @property
    def allows_bare(self) -> bool:
        return self.bare_allowed or self.bare


@dataclasses.dataclass(frozen=True)
class BoolFilter:
    """A boolean field: ``filter[f]=true|false`` (the spec's BooleanFieldFilter)."""


@dataclasses.dataclass(frozen=True)
class LabelFilter:
    """A labels map: ``filter[labels.<key>][op]`` or ``filter[labels][<key>][op]``."""

    ops: Collection[str] = _LABEL_OPS

    def __post_init__(self) -> None:
        object.__setattr__(self, "ops", frozenset(self.ops))
        if not self.ops or not set(self.ops) <= _LABEL_OPS:
            raise ValueError(f"label filter operations must be among {sorted(_LABEL_OPS)}")


FilterSpec = StringFilter | BoolFilter | LabelFilter


class Filter(msgspec.Struct, frozen=True):
    """One condition. ``key`` is the label key for label filters, else None. ``value`` is a bool for
    boolean filters and ``exists``, else a str."""

    field: str
    op: Operation
    value: str | bool
    key: str | None = None


class ListQuery(msgspec.Struct, frozen=True):
    """``page_size`` is None for routes without pagination (every match is returned)."""

    page_size: int | None
    page_number: int
    filters: tuple[Filter, ...] = ()

    @property
    def limit(self) -> int | None:
        return self.page_size

    @property
    def offset(self) -> int:
        return 0 if self.page_size is None else (self.page_number - 1) * self.page_size


def _bool(raw: str) -> bool | None:
    lowered = raw.strip().lower()
    return True if lowered == "true" else False if lowered == "false" else None


def _split_label(field: str, parts: list[str], specs: Mapping[str, FilterSpec]) -> tuple[str, str, list[str]]:
    """(field, label key, operation parts) for a label filter; key "" when this is not one."""
    if field.startswith("labels.") and isinstance(specs.get("labels"), LabelFilter):
        return "labels", field.removeprefix("labels."), parts
    if field == "labels" and isinstance(specs.get("labels"), LabelFilter) and parts:
        return "labels", parts[0], parts[1:]
    return field, "", parts


def _parse_filter(
    name: str, raw: str, specs: Mapping[str, FilterSpec], problems: list[InvalidParameter]
) -> Filter | None:
    match = _FILTER_NAME.fullmatch(name)
    if match is None:
        problems.append(query_problem(name, "is not a supported query parameter", "unknown_property"))
        return None
    if query_text(name, raw, problems) is None:  # the value and a label key named in it reach SQL
        return None
    field, *parts = _BRACKETS.findall(match[1])
    field, label_key, parts = _split_label(field, parts, specs)
    spec = specs.get(field)
    if spec is None:
        problems.append(query_problem(name, f"[{field}] is not a supported filter field", "unknown_property"))
        return None
    if len(parts) > 1:
        problems.append(query_problem(name, "is not a supported filter", "invalid"))
        return None
    op = parts[0] if parts else None
    if isinstance(spec, LabelFilter) and not label_key:
        problems.append(query_problem(name, "must name a label, e.g. filter[labels.env][eq]", "invalid"))
        return None
    if op is None:
        if isinstance(spec, BoolFilter) or (isinstance(spec, StringFilter) and spec.allows_bare):
            op = "eq"
        else:
            problems.append(query_problem(name, "must name a filter operation, e.g. [eq]", "is_object"))
            return None
    allowed = {"eq"} if isinstance(spec, BoolFilter) else set(spec.ops)
    if op not in allowed:
        problems.append(query_problem(name, f"[{op}] is not a supported filter operation", None))
        return None
    value: str | bool = raw
    if isinstance(spec, BoolFilter) or op == "exists":
        flag = _bool(raw)
        if flag is None:
            problems.append(query_problem(name, "must be a boolean (true or false)", "is_boolean"))
            return None
        value = flag
    typed_op: Operation = "eq" if op == "eq" else "contains" if op == "contains" else "exists"
    return Filter(field, typed_op, value, label_key or None)


def parse_list_query(
    query: MultiMapping[str], filters: Mapping[str, FilterSpec], *, paginated: bool = True
) -> ListQuery:
    """The collection query of a request (pass ``request.query``), or a 400 listing every problem."""
    problems: list[InvalidParameter] = []
    page_size: int | None = DEFAULT_PAGE_SIZE if paginated else None
    page_number = 1
    found: list[Filter] = []
    seen: set[str] = set()
    for name, raw in query.items():
        if name in seen:
            problems.append(query_problem(name, "must not be repeated", "invalid"))
            continue
        seen.add(name)
        if paginated and name in ("page[size]", "page[number]"):
            if not raw.strip():
                continue  # allowEmptyValue: an empty value is the default
            is_size = name == "page[size]"
            maximum = MAX_PAGE_SIZE if is_size else MAX_PAGE_NUMBER
            value = query_integer(name, raw, problems, minimum=1, maximum=maximum)
            if value is not None and is_size:
                page_size = value
            elif value is not None:
                page_number = value
        elif name.startswith("filter"):
            parsed = _parse_filter(name, raw, filters, problems)
            if parsed is not None:
                found.append(parsed)
        else:
            problems.append(query_problem(name, "is not a supported query parameter", "unknown_property"))
    if problems:
        raise BadRequest(problems)
    return ListQuery(page_size=page_size, page_number=page_number, filters=tuple(found))


def list_query(
    request: web.Request, filters: Mapping[str, FilterSpec], *, paginated: bool = True
) -> ListQuery:
    """``parse_list_query`` of the request's query string."""
    return parse_list_query(request.query, filters, paginated=paginated)


def _like_pattern(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def sql_conditions(
    filters: Iterable[Filter], columns: Mapping[str, str], *, first_param: int = 1
) -> tuple[str, list[Any]]:
    """``(condition, args)``: the filters ANDed, with placeholders ``$first_param``, ``$first_param+1``...
    The condition is ``TRUE`` without filters, so it composes: ``WHERE account_id = $1 AND {condition}``.
    ``columns`` maps a filter field to its column expression (a jsonb column for labels)."""
    conditions: list[str] = []
    args: list[Any] = []

    def param(value: Any) -> str:
        args.append(value)
        return f"${first_param + len(args) - 1}"

    for item in filters:
        column = columns[item.field]
        if item.key is not None:
            key = param(item.key)
            if item.op == "exists":
                test = f"jsonb_exists({column}, {key})"
                conditions.append(test if item.value else f"NOT {test}")
                continue
            column = f"({column} ->> {key})"
        if item.op == "eq":
            conditions.append(f"{column} = {param(item.value)}")
        elif item.op == "contains":
            pattern = param(_like_pattern(str(item.value)))
            conditions.append(f"{column} LIKE '%' || {pattern} || '%' ESCAPE '\\'")
        else:
            raise ValueError(f"operation {item.op!r} needs a label key")
    return (" AND ".join(conditions) if conditions else "TRUE"), args


def collection(data: Sequence[Any], query: ListQuery, total: int) -> dict[str, Any]:
    """The envelope. ``size`` is the page size asked for (the total for an unpaginated list)."""
    size = query.page_size if query.page_size is not None else total
    return {"meta": {"page": {"number": query.page_number, "size": size, "total": total}}, "data": list(data)}


def collection_response(data: Sequence[Any], query: ListQuery, total: int) -> web.Response:
    """The envelope as a 200 ``application/json`` response; ``data`` items may be msgspec Structs."""
    return web.Response(
        body=msgspec.json.encode(collection(data, query, total)), content_type="application/json"
    )
