"""The HTTP access log: one line per request, nothing in it the client can use to forge or hide a
line, and no secret in clear.

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

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError

from services.client_text import log_field

MAX_PATH = 1024
MAX_METHOD = 32
MAX_REMOTE = 64
MAX_REASON = 200
SERVER_LOGGER = "aiohttp.server"


class PathOnlyAccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %d %d %.1fms',
            log_field(request.remote or "-", MAX_REMOTE),
            log_field(request.method, MAX_METHOD),
            log_field(request.path, MAX_PATH),
            response.status,
            response.body_length,
            time * 1000,
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
