"""The HTTP access log, without query strings.

aiohttp's default format logs the request line, query string included; a client that puts a token
where it does not belong (``?filter[name][eq]=spat_...``) would have it written to the log. This
logger writes the method, the path, the status, the size and the time, nothing the client chose
beyond the path (a path only ever carries ids).
"""

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger


class PathOnlyAccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %d %d %.1fms',
            request.remote,
            request.method,
            request.path,
            response.status,
            response.body_length,
            time * 1000,
        )
