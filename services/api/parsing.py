"""Request input: JSON bodies decoded with msgspec into a route's Struct, query values, and path
parameters. Every value a client sends is read here by one bounded parser per kind of value, so no
malformed, oversized or unrepresentable value gets past the boundary (it is a 400 naming it).

This module owns:

* ``raw_body``: the request body, at most ``MAX_BODY_BYTES`` (413 beyond), read once (aiohttp caches it)
  so that every reader (introspection, the body parser) reads the same bytes;
* ``read_body(request, Type)``: the body as ``Type`` (a ``msgspec.Struct``; declare request Structs with
  ``forbid_unknown_fields=True``), every failure answered as a Konnect 400 whose ``invalid_parameters``
  names the JSON path (``labels.env``, ``tags[0]``) and the rule (``required``, ``is_string``,
  ``unknown_property``, ``min_length``, ``enum``...); msgspec's errors are translated by
  ``services.api.validation_errors``;
* ``AwareDateTime``: the type for request date-times (RFC 3339 and a timezone required; an instant
  that falls outside years 1..9999 once its offset is applied, such as ``0001-01-01T00:00:00+14:00``,
  is a 400 ``is_date_time``);
* ``MAX_JSON_DEPTH``: bodies nesting arrays and objects deeper than that are a 400 before any decoding
  or error reporting walks them;
* the query value parsers, each appending a problem that names the parameter as sent and returning
  None when the value is refused: ``query_integer`` (ASCII digits only, within declared bounds, so
  ``²`` or a value past int64 is a 400), ``query_text`` (no U+0000, which PostgreSQL cannot compare,
  at most ``MAX_QUERY_TEXT`` characters) and ``query_instant`` (RFC 3339 with an offset, representable
  in UTC);
* ``name_field``: a name (of an account, token or team) in its normal form, by the rule of
  ``services.names``; call it from a request Struct's ``__post_init__``;
* ``uuid_path_param``: a path parameter that must be a UUID. Malformed: 400 ``is_uuid`` (the Teams
  family, whose spec types ids as ``format: uuid``) or 404 (the System Accounts family, whose spec types
  ids as plain strings, so a malformed id is just an id that does not exist).

Decisions where the spec is silent: an empty body is read as ``{}`` (no in-scope body is
``required: true``, and this gives precise ``required`` errors); a non-empty body must be
``application/json`` (or ``application/*+json``), otherwise 415; an explicit charset other than UTF-8
is 415 too; a string (or key) holding U+0000 is a 400 naming it (PostgreSQL cannot store it).
"""

import datetime
import functools
import re
import uuid
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from aiohttp import web

from services.api.problems import (
    BadRequest,
    InvalidParameter,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from services.api.validation_errors import invalid_parameter_for
from services.names import name_problem, normalize_name

MAX_BODY_BYTES = 64 * 1024
MAX_JSON_DEPTH = 32
"""The deepest nesting of arrays and objects a body may have (Konnect's bodies nest three deep)."""
MAX_QUERY_TEXT = 1024
"""The longest text query value, in characters (names are at most 255, descriptions 1000)."""
MAX_DURATION_SECONDS = 10 * 365 * 86400
"""The longest duration a request may name, in seconds (ten years); the domain may allow less."""
MAX_INT64 = 2**63 - 1

AwareDateTime = Annotated[datetime.datetime, msgspec.Meta(tz=True)]

T = TypeVar("T")

NUL_REASON = "must not contain the NUL character (U+0000)"
INSTANT_REASON = "must be an RFC 3339 date-time with an offset, between years 1 and 9999 in UTC"
_MALFORMED = InvalidParameter(field="body", reason="request format is invalid", source="body")
_TOO_DEEP = InvalidParameter(
    field="body", reason=f"must not nest arrays and objects more than {MAX_JSON_DEPTH} deep", source="body"
)
_DIGITS = re.compile(r"[0-9]+")
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


async def raw_body(request: web.Request, max_bytes: int = MAX_BODY_BYTES) -> bytes:
    """The body's bytes; ``PayloadTooLarge`` (413) past ``max_bytes``. aiohttp's ``request.read()``
    caches the body, so every reader gets the same bytes; a
    chunked body is read up to the application's ``client_max_size`` before it is measured."""
    declared = request.content_length
    if declared is not None and declared > max_bytes:
        raise PayloadTooLarge(max_bytes)
    body = await request.read()
    if len(body) > max_bytes:
        raise PayloadTooLarge(max_bytes)
    return body


def _check_content_type(request: web.Request) -> None:
    media_type = request.content_type.lower()
    is_json = media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )
    if not is_json:
        raise UnsupportedMediaType()
    charset = request.charset
    if charset is not None and charset.lower().replace("_", "-") not in ("utf-8", "utf8"):
        raise UnsupportedMediaType("The request body must be UTF-8 encoded JSON")


_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def _decoder(type_: Any) -> msgspec.json.Decoder[Any]:
    decoder = _decoders.get(type_)
    if decoder is None:
        decoder = _decoders[type_] = msgspec.json.Decoder(type_)
    return decoder


def _document(raw: bytes) -> Any:
    """``raw`` decoded as untyped JSON, nesting at most ``MAX_JSON_DEPTH`` deep, else a 400. msgspec
    decodes linearly in C (a nesting too deep even for it is its RecursionError); the depth is then
    counted level by level, so nothing after this point recurses deeper than the limit."""
    try:
        node = msgspec.json.decode(raw)
    except RecursionError:
        raise BadRequest([_TOO_DEEP]) from None
    except msgspec.DecodeError:
        raise BadRequest([_MALFORMED]) from None
    level, depth = [node], 0
    while level := [
        child
        for item in level
        if isinstance(item, dict | list)
        for child in (item.values() if isinstance(item, dict) else item)
    ]:
        depth += 1
        if depth > MAX_JSON_DEPTH:
            raise BadRequest([_TOO_DEEP])
    return node


def decode_body(raw: bytes, type_: type[T]) -> T:
    """``raw`` (JSON; empty means ``{}``) as ``type_``, or ``BadRequest`` naming what is wrong."""
    if not raw.strip():
        raw = b"{}"
    document = _document(raw)
    try:
        value: T = _decoder(type_).decode(raw)
    except msgspec.ValidationError as error:
        raise BadRequest([invalid_parameter_for(str(error), type_, raw)]) from None
    if b"\\u0000" in raw and (field := _field_with_nul(document, "")) is not None:
        raise BadRequest([InvalidParameter(field=field, reason=NUL_REASON, rule="invalid", source="body")])
    if (field := _field_out_of_range(value, "")) is not None:
        raise BadRequest([InvalidParameter(field, INSTANT_REASON, "is_date_time", "body")])
    return value


def _in_utc_range(moment: datetime.datetime) -> bool:
    try:
        moment.astimezone(datetime.UTC)
    except OverflowError:
        return False
    return True


@functools.cache
def _struct_fields(type_: type[msgspec.Struct]) -> tuple[tuple[str, str], ...]:
    """A body Struct's fields, as (attribute, name on the wire): ``msgspec.structs.fields`` reads
    the class's annotations again on every call, a fifth of an introspection's parsing."""
    return tuple((field.name, field.encode_name) for field in msgspec.structs.fields(type_))


def _field_out_of_range(node: Any, path: str) -> str | None:
    """The first date-time of a decoded body that is not an instant of years 1..9999 in UTC (Python
    keeps ``0001-01-01T00:00:00+14:00`` but cannot compare it, convert it or store it)."""
    if isinstance(node, datetime.datetime):
        return None if _in_utc_range(node) else path
    children: list[tuple[str, Any]] = []
    if isinstance(node, msgspec.Struct):
        children = [
            (f"{path}.{encode_name}" if path else encode_name, getattr(node, name))
            for name, encode_name in _struct_fields(type(node))
        ]
    elif isinstance(node, dict):
        children = [(f"{path}.{key}", value) for key, value in node.items()]
    elif isinstance(node, list | tuple):
        children = [(f"{path}[{index}]", value) for index, value in enumerate(node)]
    return next((found for p, child in children if (found := _field_out_of_range(child, p))), None)


def _field_with_nul(node: Any, path: str) -> str | None:
    """The first string (value or key) of a decoded JSON document holding U+0000, which PostgreSQL
    cannot store in text or jsonb, named as the client wrote it (``labels.env``, ``scopes[1]``)."""
    if isinstance(node, str):
        return path if "\x00" in node else None
    children: list[tuple[str, Any]] = []
    if isinstance(node, dict):
        children = [(f"{path}.{key}" if path else key, value) for key, value in node.items()]
    elif isinstance(node, list):
        children = [(f"{path}[{index}]", value) for index, value in enumerate(node)]
    for child_path, child in children:
        if "\x00" in child_path:
            return child_path
        found = _field_with_nul(child, child_path)
        if found is not None:
            return found
    return None


async def read_body(request: web.Request, type_: type[T], *, max_bytes: int = MAX_BODY_BYTES) -> T:
    """The request body decoded into ``type_``; 400/413/415 problems otherwise."""
    raw = await raw_body(request, max_bytes)
    if raw.strip():
        _check_content_type(request)
    return decode_body(raw, type_)


def body_error(field: str, reason: str, rule: Any = None, **extra: Any) -> BadRequest:
    """A 400 for one body field, for checks a Struct cannot declare. Raise it from a request Struct's
    ``__post_init__`` (msgspec lets non-ValueError exceptions through) or from a handler."""
    return BadRequest([InvalidParameter(field=field, reason=reason, rule=rule, source="body", **extra)])


def name_field(field: str, value: str) -> str:
    """``value`` in the normal form of names, or a 400 naming ``field`` when it is blank once
    trimmed or holds an invisible, control or format character."""
    normal = normalize_name(value)
    problem = name_problem(normal)
    if problem is None:
        return normal
    if not normal:
        raise body_error(field, problem, "min_length", minimum=1)
    raise body_error(field, problem, "invalid")


def uuid_path_param(
    request: web.Request,
    name: str,
    *,
    malformed: Literal["bad_request", "not_found"] = "bad_request",
    field: str | None = None,
    not_found_detail: str = "Not found",
) -> uuid.UUID:
    """The path parameter ``name`` as a UUID (canonical 8-4-4-4-12 form, any case, any version).

    ``malformed="bad_request"`` (Teams, team roles: ``format: uuid`` in the spec): 400 with
    ``{field: field or name, rule: is_uuid, source: path, reason: "invalid ID format"}``.
    ``malformed="not_found"`` (the System Accounts family: plain ``type: string`` ids): 404 with
    ``not_found_detail``, exactly as for a well-formed id that does not exist.
    """
    value = request.match_info[name]
    if _UUID.fullmatch(value):
        return uuid.UUID(value)
    if malformed == "not_found":
        raise NotFound(not_found_detail)
    raise BadRequest(
        [InvalidParameter(field=field or name, reason="invalid ID format", rule="is_uuid", source="path")]
    )


# -- query values ---------------------------------------------------------------------------------


def query_problem(name: str, reason: str, rule: Any = "invalid", **extra: Any) -> InvalidParameter:
    """A 400 item for the query parameter ``name``, named as sent."""
    return InvalidParameter(name, reason, rule, "query", **extra)


def bounded_integer(text: str, minimum: int, maximum: int) -> int | None:
    """``text`` as an integer of ASCII digits within ``minimum..maximum``, else None. Unicode digits
    (``²``, ``٣``) that ``int()`` and ``str.isdigit`` accept are refused, and so is a number too long
    to be in range, before it is converted."""
    if not _DIGITS.fullmatch(text):
        return None
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(maximum)):
        return None
    value = int(digits)
    return value if minimum <= value <= maximum else None


def query_integer(
    name: str, raw: str, problems: list[InvalidParameter], *, minimum: int, maximum: int
) -> int | None:
    """The integer value of ``name`` (surrounding spaces ignored), or None with a problem."""
    text = raw.strip()
    magnitude = text.removeprefix("-")
    if not _DIGITS.fullmatch(magnitude):
        problems.append(query_problem(name, "must be an integer", "is_integer"))
        return None
    value = None if text.startswith("-") else bounded_integer(text, minimum, maximum)
    if value is None and (text.startswith("-") or bounded_integer(text, 0, maximum) is not None):
        reason = f"must be greater than or equal to {minimum}"
        problems.append(query_problem(name, reason, "min", minimum=minimum))
    elif value is None:
        reason = f"must be less than or equal to {maximum}"
        problems.append(query_problem(name, reason, "max", maximum=maximum))
    return value


def query_text(name: str, raw: str, problems: list[InvalidParameter]) -> str | None:
    """A text value that may reach SQL: no U+0000 (PostgreSQL cannot hold or compare it), no lone
    surrogate (not encodable as UTF-8), at most ``MAX_QUERY_TEXT`` characters."""
    if "\x00" in raw or "\x00" in name:
        problems.append(query_problem(name, NUL_REASON))
        return None
    if len(raw) > MAX_QUERY_TEXT:
        reason = f"must not have more than {MAX_QUERY_TEXT} characters"
        problems.append(query_problem(name, reason, "max_length", maximum=MAX_QUERY_TEXT))
        return None
    if any("\ud800" <= char <= "\udfff" for char in raw + name):
        problems.append(query_problem(name, "must be valid Unicode text"))
        return None
    return raw


def query_instant(name: str, raw: str, problems: list[InvalidParameter]) -> datetime.datetime | None:
    """An RFC 3339 date-time with an offset that is an instant of years 1..9999 in UTC."""
    parsed = None
    if _RFC3339.fullmatch(raw.strip()):
        try:
            parsed = datetime.datetime.fromisoformat(raw.strip().upper().replace("Z", "+00:00"))
        except ValueError:
            parsed = None
    if parsed is None or not _in_utc_range(parsed):
        problems.append(query_problem(name, INSTANT_REASON, "is_date_time"))
        return None
    return parsed
