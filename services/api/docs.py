"""``GET /docs``: the interactive API reference (Swagger UI) of the served OpenAPI document.

Swagger UI's files come from the ``swagger-ui-py`` package (a dependency, installed from PyPI like
any other): only its bundle, its stylesheet and its icons are served, from memory, under
``/docs/assets/``; nothing is fetched from another host at run time. The page and its start-up
script are ours: they load ``/v3/openapi.json`` (this service's document), turn off Swagger UI's
online validator badge (which would call an outside host), and the page's
``Content-Security-Policy`` lets the browser load nothing but this origin's scripts, styles and
images, so a change that brought a CDN back would be refused by the browser too.
"""

import functools
import importlib.util
from pathlib import Path

from aiohttp import web

from services.api.openapi import PATH as OPENAPI_PATH

PATH = "/docs"
ASSETS = f"{PATH}/assets"
PACKAGE = "swagger_ui"
ASSET_TYPES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
"""Swagger UI sets element styles and draws its icons as data: URIs; nothing else leaves 'self'."""

PAGE = f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>tokenledger API reference</title>
  <link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
  <link rel="icon" type="image/png" sizes="32x32" href="{ASSETS}/favicon-32x32.png">
  <link rel="icon" type="image/png" sizes="16x16" href="{ASSETS}/favicon-16x16.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{ASSETS}/swagger-ui-bundle.js"></script>
  <script src="{ASSETS}/start.js"></script>
</body>
</html>
"""

START = f"""window.addEventListener("load", function () {{
  window.ui = SwaggerUIBundle({{
    url: "{OPENAPI_PATH}",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  }});
}});
"""


class MissingAssets(RuntimeError):
    """The installed package does not hold Swagger UI's files."""


def assets_directory() -> Path:
    """Where the installed ``swagger-ui-py`` keeps Swagger UI's files (found without importing it)."""
    spec = importlib.util.find_spec(PACKAGE)
    locations = spec.submodule_search_locations if spec is not None else None
    if not locations:
        raise MissingAssets(f"the {PACKAGE} package (swagger-ui-py) is not installed")
    directory = Path(next(iter(locations))) / "static"
    missing = [name for name in ASSET_TYPES if not (directory / name).is_file()]
    if missing:
        raise MissingAssets(f"{directory} lacks {', '.join(missing)}")
    return directory


@functools.cache
def asset(name: str) -> bytes:
    return (assets_directory() / name).read_bytes()


def _headers() -> dict[str, str]:
    return {"Content-Security-Policy": POLICY, "X-Content-Type-Options": "nosniff"}


async def page(_request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html", headers=_headers())


async def start_script(_request: web.Request) -> web.Response:
    return web.Response(text=START, content_type="text/javascript", headers=_headers())


async def serve_asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    content_type = ASSET_TYPES.get(name)
    if content_type is None:
        raise web.HTTPNotFound()
    headers = {**_headers(), "Cache-Control": "public, max-age=86400"}
    return web.Response(body=asset(name), content_type=content_type, headers=headers)


def add_routes(app: web.Application) -> None:
    assets_directory()  # at start-up, so a broken install fails the start, not a request
    app.router.add_get(PATH, page)
    app.router.add_get(f"{ASSETS}/start.js", start_script)
    app.router.add_get(ASSETS + "/{name}", serve_asset)
