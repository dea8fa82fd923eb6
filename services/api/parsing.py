"""Request input: JSON bodies decoded with msgspec into a route's Struct, and path parameters.

This module owns:

* ``raw_body``: the request body, at most ``MAX_BODY_BYTES`` (413 beyond), read once (aiohttp caches it)
  so that the idempotency middleware and the handler read the same bytes;
* ``read_body(request, Type)``: the body as ``Type`` (a ``msgspec.Struct``; declare request Structs with
  ``forbid_unknown_fields=True``), every failure answered as a Konnect 400 whose ``invalid_parameters``
  names the JSON path (``labels.env``, ``tags[0]``) and the rule (``required``, ``is_string``,
  ``unknown_property``, ``min_length``, ``enum``...); msgspec's errors are translated by
  ``services.api.validation_errors``;
* ``AwareDateTime``: the type for request date-times (RFC 3339 and a timezone required);
* ``uuid_path_param``: a path parameter that must be a UUID. Malformed: 400 ``is_uuid`` (the Teams
  family, whose spec types ids as ``format: uuid``) or 404 (the System Accounts family, whose spec types
  ids as plain strings, so a malformed id is just an id that does not exist).

Decisions where the spec is silent: an empty body is read as ``{}`` (no in-scope body is
``required: true``, and this gives precise ``required`` errors); a non-empty body must be
``application/json`` (or ``application/*+json``), otherwise 415; an explicit charset other than UTF-8
is 415 too; a string (or key) holding U+0000 is a 400 naming it (PostgreSQL cannot store it).
"""

import datetime
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

MAX_BODY_BYTES = 64 * 1024

AwareDateTime = Annotated[datetime.datetime, msgspec.Meta(tz=True)]

T = TypeVar("T")

NUL_REASON = "must not contain the NUL character (U+0000)"
_MALFORMED = InvalidParameter(field="body", reason="request format is invalid", source="body")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


async def raw_body(request: web.Request, max_bytes: int = MAX_BODY_BYTES) -> bytes:
    """The body's bytes; ``PayloadTooLarge`` (413) past ``max_bytes``. aiohttp's ``request.read()``
    caches the body, so every reader (the idempotency middleware, the handler) gets the same bytes; a
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


def decode_body(raw: bytes, type_: type[T]) -> T:
    """``raw`` (JSON; empty means ``{}``) as ``type_``, or ``BadRequest`` naming what is wrong."""
    if not raw.strip():
        raw = b"{}"
    try:
        value: T = _decoder(type_).decode(raw)
    except msgspec.ValidationError as error:
        raise BadRequest([invalid_parameter_for(str(error), type_, raw)]) from None
    except msgspec.DecodeError:
        raise BadRequest([_MALFORMED]) from None
    if b"\\u0000" in raw and (field := _field_with_nul(msgspec.json.decode(raw), "")) is not None:
        raise BadRequest([InvalidParameter(field=field, reason=NUL_REASON, rule="invalid", source="body")])
    return value


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
