"""The service's own OpenAPI 3.1 document (Konnect Identity v3's in-scope operations plus our
extensions), built once per process from Konnect's shipped reference spec and our parts (see
``document``), and served at ``GET /v3/openapi.json`` without authentication."""

import functools

import msgspec
from aiohttp import web

from services.api.openapi.document import build_document

PATH = "/v3/openapi.json"


@functools.cache
def encoded_document() -> bytes:
    return msgspec.json.encode(build_document())


async def serve(_request: web.Request) -> web.Response:
    return web.Response(body=encoded_document(), content_type="application/json")


def add_routes(app: web.Application) -> None:
    encoded_document()  # built at start-up, so a broken part fails the start, not a request
    app.router.add_get(PATH, serve)
