"""The HTTP access log: one line per request, nothing in it the client can use to forge or hide a
line, and no secret in clear.

Each line carries the request id (the one in ``X-Request-Id`` and in a problem's ``instance``), the
remote address, the method, the path, the route template, the status, the size, the latency, and
the caller's account and token ids when a token was accepted: in the text format after the
request, as ``key=value``; in the JSON format (``services.logs``) as fields of their own.

aiohttp's default format logs the request line, query string included; a client that puts a token
where it does not belong (``?filter[name][eq]=spat_...``) would have it written to the log. This
logger writes the remote address, the method, the path, the status, the size and the time: no query
string, and every field the client chose goes through ``services.client_text.log_field``, so a
``%0a`` or an ANSI escape in the path is written as ``\\x0a`` or ``\\x1b`` (never a new line or a
colour), a double quote cannot close the quoted request, and a token pasted into the path is
written ``[redacted]``.

aiohttp's own server log has the same weakness: a request it cannot parse is logged with the
offending line quoted (an ``Authorization`` header with its token, say) and a traceback.
``ParserErrorsWithoutContent``, installed on the ``aiohttp.server`` logger by ``serve``, keeps the
first line of the reason only, through ``log_field`` too.
"""

import logging
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError

from services.api.context import PRINCIPAL
from services.api.metrics import ROUTE
from services.api.problems import REQUEST_ID
from services.client_text import log_field
from services.logs import FIELDS
from services.metrics import UNMATCHED_ROUTE

MAX_PATH = 1024
MAX_METHOD = 32
MAX_REMOTE = 64
MAX_REASON = 200
SERVER_LOGGER = "aiohttp.server"


def access_fields(request: web.BaseRequest, response: web.StreamResponse, time: float) -> dict[str, Any]:
    """What the access log records of one request; every value the client chose is escaped."""
    actor = request.get(PRINCIPAL)
    return {
        "request_id": request.get(REQUEST_ID),
        "remote": log_field(request.remote or "-", MAX_REMOTE),
        "method": log_field(request.method, MAX_METHOD),
        "path": log_field(request.path, MAX_PATH),
        "route": request.get(ROUTE, UNMATCHED_ROUTE),
        "status": response.status,
        "bytes": response.body_length,
        "latency_ms": round(time * 1000, 1),
        "account_id": actor.account_id if actor is not None else None,
        "token_id": actor.token_id if actor is not None else None,
    }


class PathOnlyAccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        fields = access_fields(request, response, time)
        self.logger.info(
            '%s "%s %s" %d %d %.1fms request_id=%s route=%s account_id=%s token_id=%s',
            fields["remote"],
            fields["method"],
            fields["path"],
            fields["status"],
            fields["bytes"],
            fields["latency_ms"],
            fields["request_id"] or "-",
            fields["route"],
            fields["account_id"] or "-",
            fields["token_id"] or "-",
            extra={FIELDS: fields},
        )


class ParserErrorsWithoutContent(logging.Filter):
    """Rewrites a log record about a request aiohttp could not parse: its message, then the first
    line of the parser's reason (``Invalid header value char``), escaped; no quoted request line,
    no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            reason = error.message.split("\n", 1)[0]
            record.msg, record.args = "%s: %s", (record.getMessage(), log_field(reason, MAX_REASON))
            record.exc_info, record.exc_text = None, None
        return True
