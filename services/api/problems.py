"""Errors as ``application/problem+json`` in Konnect Identity v3's shape, and the request id.

This module owns:

* the per-request id (``request_id``), answered in every response's ``X-Request-Id`` header, in
  each problem's ``instance`` (``tokenledger:trace:<request id>``) and in the request's access-log
  line. An incoming ``X-Request-Id`` is kept when it is well-formed (``REQUEST_ID_PATTERN``: 1 to
  128 letters, digits, ``.``, ``_``, ``:`` or ``-``, sent once, nothing shaped like a secret), so a
  proxy's or client's trace id follows the request; otherwise a new one is made;
* ``InvalidParameter``: one item of a 400's ``invalid_parameters`` (Konnect's five ``InvalidParameter*``
  variants, flattened: fields that are None are left out of the JSON);
* ``ProblemError`` and its subclasses: raise one anywhere below a handler to answer with that problem;
* ``problem_middleware``: the outermost middleware. It gives each request its id, turns
  ``ProblemError`` and aiohttp's own HTTP errors (404 for an unknown path, 405, 413...) into problems,
  and any other exception into a 500 whose body reveals nothing; the exception is logged with the
  request id, method and path, never with headers or bodies (they may carry token secrets).
"""

import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Literal

import msgspec
from aiohttp import web

from services.client_text import recordable

_log = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
REQUEST_ID_HEADER = "X-Request-Id"
INSTANCE_PREFIX = "tokenledger:trace:"
REQUEST_ID = web.RequestKey("tokenledger.request_id", str)
MAX_REQUEST_ID = 128
REQUEST_ID_PATTERN = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_REQUEST_ID}}}")

# Konnect's InvalidRules enum plus the rules of its min/max/choice/dependent variants.
InvalidRule = Literal[
    "required",
    "is_array",
    "is_base64",
    "is_boolean",
    "is_date_time",
    "is_integer",
    "is_null",
    "is_number",
    "is_object",
    "is_string",
    "is_uuid",
    "is_fqdn",
    "is_arn",
    "unknown_property",
    "missing_reference",
    "is_label",
    "matches_regex",
    "invalid",
    "type",
    "min_length",
    "min_items",
    "min",
    "max_length",
    "max_items",
    "max",
    "enum",
    "dependent_fields",
]
Source = Literal["body", "query", "path", "header"]


class InvalidParameter(msgspec.Struct, frozen=True, omit_defaults=True):
    """One entry of ``invalid_parameters``. ``field`` names what was wrong as the client wrote it
    (``labels.env``, ``filter[name][startswith]``, ``Idempotency-Key``); ``source`` says where."""

    field: str
    reason: str
    rule: InvalidRule | None = None
    source: Source | None = None
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] | None = None


class Problem(msgspec.Struct, frozen=True, omit_defaults=True):
    """The wire body (Konnect's BaseError and BadRequestError)."""

    status: int
    title: str
    instance: str
    detail: str
    type: str | None = None
    invalid_parameters: tuple[InvalidParameter, ...] | None = None


_encoder = msgspec.json.Encoder()


class ProblemError(Exception):
    """An error answered as a problem. ``headers`` are added to the response (``Allow``,
    ``WWW-Authenticate``, ``Retry-After``...)."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        invalid_parameters: Sequence[InvalidParameter] | None = None,
        *,
        problem_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, title, detail)
        self.status = status
        self.title = title
        self.detail = detail
        # uniqueItems: true in the spec; keep the first of each, in order.
        self.invalid_parameters = tuple(dict.fromkeys(invalid_parameters)) if invalid_parameters else None
        self.problem_type = problem_type
        self.headers: dict[str, str] = dict(headers or {})

    def __str__(self) -> str:
        return f"{self.status} {self.title}: {self.detail}"


class BadRequest(ProblemError):
    """400 with a non-empty ``invalid_parameters`` (required by Konnect's BadRequestError)."""

    def __init__(self, invalid_parameters: Sequence[InvalidParameter], detail: str = "") -> None:
        if not invalid_parameters:
            raise ValueError("a 400 problem needs at least one invalid parameter")
        named = ", ".join(dict.fromkeys(item.field for item in invalid_parameters))
        super().__init__(400, "Bad Request", detail or f"Invalid parameters: {named}", invalid_parameters)


class Unauthenticated(ProblemError):
    def __init__(self, detail: str = "A valid token is required") -> None:
        super().__init__(401, "Unauthenticated", detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ProblemError):
    """403. The Teams family answers ``Forbidden``; the System Accounts family's examples use
    ``Permission denied`` (pass ``title=``)."""

    def __init__(
        self, detail: str = "You do not have permission to perform this action", title: str = "Forbidden"
    ) -> None:
        super().__init__(403, title, detail)


class NotFound(ProblemError):
    def __init__(self, detail: str = "Not found") -> None:
        super().__init__(404, "Not Found", detail)


class MethodNotAllowed(ProblemError):
    def __init__(self, method: str, allowed: Sequence[str]) -> None:
        super().__init__(
            405,
            "Method Not Allowed",
            f"The method {method} is not allowed for this resource",
            headers={"Allow": ",".join(sorted(allowed))},
        )


class Conflict(ProblemError):
    def __init__(self, detail: str = "Conflict", *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(409, "Conflict", detail, headers=headers)


class PreconditionFailed(ProblemError):
    def __init__(self, detail: str = "Precondition failed") -> None:
        super().__init__(412, "Precondition Failed", detail)


class PayloadTooLarge(ProblemError):
    def __init__(self, limit: int | None = None) -> None:
        detail = (
            f"The request body must not be larger than {limit} bytes"
            if limit is not None
            else "The request body is too large"
        )
        super().__init__(413, "Payload Too Large", detail)


class UnsupportedMediaType(ProblemError):
    def __init__(self, detail: str = "The request body must be application/json") -> None:
        super().__init__(415, "Unsupported Media Type", detail)


class UnprocessableEntity(ProblemError):
    def __init__(self, detail: str, invalid_parameters: Sequence[InvalidParameter] | None = None) -> None:
        super().__init__(422, "Unprocessable Entity", detail, invalid_parameters)


class InternalServerError(ProblemError):
    def __init__(self) -> None:
        super().__init__(500, "Internal Server Error", "An unexpected error occurred")


class ServiceUnavailable(ProblemError):
    def __init__(
        self, detail: str = "The service is not ready yet", retry_after_seconds: int | None = None
    ) -> None:
        headers = {"Retry-After": str(retry_after_seconds)} if retry_after_seconds is not None else None
        super().__init__(503, "Service Unavailable", detail, headers=headers)


def _incoming_request_id(request: web.Request) -> str | None:
    """The client's ``X-Request-Id`` when it is sent once and well-formed, else None."""
    sent = request.headers.getall(REQUEST_ID_HEADER, [])
    if len(sent) != 1 or not REQUEST_ID_PATTERN.fullmatch(sent[0]):
        return None
    return sent[0] if recordable(sent[0], MAX_REQUEST_ID) == sent[0] else None


def request_id(request: web.Request) -> str:
    """The request's id, taken or made on first use (the middleware does so first for every request)."""
    if REQUEST_ID not in request:
        request[REQUEST_ID] = _incoming_request_id(request) or uuid.uuid4().hex
    return request[REQUEST_ID]


def problem_response(request: web.Request, error: ProblemError) -> web.Response:
    body = Problem(
        status=error.status,
        title=error.title,
        instance=INSTANCE_PREFIX + request_id(request),
        detail=error.detail,
        type=error.problem_type,
        invalid_parameters=error.invalid_parameters,
    )
    response = web.Response(
        status=error.status, body=_encoder.encode(body), content_type=PROBLEM_CONTENT_TYPE
    )
    response.headers.update(error.headers)
    response.headers[REQUEST_ID_HEADER] = request_id(request)
    return response


def _from_http_exception(request: web.Request, error: web.HTTPException) -> ProblemError:
    if isinstance(error, web.HTTPMethodNotAllowed):
        return MethodNotAllowed(request.method, sorted(error.allowed_methods))
    if isinstance(error, web.HTTPNotFound):
        return NotFound()
    if isinstance(error, web.HTTPRequestEntityTooLarge):
        return PayloadTooLarge()
    if error.status == 400:
        return BadRequest([InvalidParameter(field="body", reason="request format is invalid", source="body")])
    try:
        title = HTTPStatus(error.status).phrase
    except ValueError:
        title = error.reason
    return ProblemError(error.status, title, title)


def as_problem(request: web.Request, error: Exception) -> ProblemError | None:
    """The problem an exception is answered with; None for one that is not an HTTP error (a bug)."""
    if isinstance(error, ProblemError):
        return error
    if isinstance(error, web.HTTPException) and error.status >= 400:
        return _from_http_exception(request, error)
    return None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Install it first (outermost), so that every response carries ``X-Request-Id``."""
    rid = request_id(request)
    try:
        response = await handler(request)
    except web.HTTPException as error:
        if error.status < 400:  # redirects and other non-errors raised as exceptions
            error.headers[REQUEST_ID_HEADER] = rid
            raise
        problem = as_problem(request, error)
        assert problem is not None
        return problem_response(request, problem)
    except ProblemError as error:
        return problem_response(request, error)
    except Exception:
        # The path only: the query string may hold filter values, headers may hold a token.
        _log.exception("unhandled error in %s %r [request_id=%s]", request.method, request.path, rid)
        return problem_response(request, InternalServerError())
    if not response.prepared:
        response.headers[REQUEST_ID_HEADER] = rid
    return response
