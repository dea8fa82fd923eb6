"""``GET /docs``: the interactive API reference, served whole by the service from the installed
Swagger UI package and our own page, pointing at our OpenAPI document, with nothing fetched from
another host at run time."""

import re
from html.parser import HTMLParser

import aiohttp

from services.api.docs import ASSET_TYPES
from services.api.openapi import PATH as OPENAPI_PATH

EXTERNAL = re.compile(r"https?://", re.IGNORECASE)


class References(HTMLParser):
    """Every URL the page makes the browser load (``src`` and ``href``)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


async def fetch(session: aiohttp.ClientSession, url: str) -> tuple[int, str, bytes, dict[str, str]]:
    async with session.get(url) as reply:
        return reply.status, reply.content_type, await reply.read(), dict(reply.headers)


async def test_the_reference_is_served_without_any_outside_host(api_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        status, content_type, body, headers = await fetch(session, f"{api_url}/docs")
        assert (status, content_type) == (200, "text/html")
        page = body.decode()
        assert not EXTERNAL.search(page)
        references = References()
        references.feed(page)
        assert references.urls
        assert all(url.startswith("/") and not url.startswith("//") for url in references.urls)
        policy = headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "default-src 'none'" in policy
        assert not EXTERNAL.search(policy)
        for url in references.urls:
            status, _, asset, _ = await fetch(session, api_url + url)
            assert status == 200 and asset, url
        status, content_type, script, _ = await fetch(session, f"{api_url}/docs/assets/start.js")
        assert (status, content_type) == (200, "text/javascript")
        start = script.decode()
        assert not EXTERNAL.search(start)
        assert f'url: "{OPENAPI_PATH}"' in start and "validatorUrl: null" in start


async def test_the_assets_are_the_swagger_ui_package_files(api_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for name, content_type in ASSET_TYPES.items():
            status, served_type, body, _ = await fetch(session, f"{api_url}/docs/assets/{name}")
            assert (status, served_type) == (200, content_type), name
            assert len(body) > 100
        status, _, bundle, _ = await fetch(session, f"{api_url}/docs/assets/swagger-ui-bundle.js")
        assert b"SwaggerUIBundle" in bundle
        for other in ("index.html", "..%2fcore.py", "swagger-ui-bundle.js.map", "LICENSE"):
            status, content_type, _, _ = await fetch(session, f"{api_url}/docs/assets/{other}")
            assert (status, content_type) == (404, "application/problem+json"), other


async def test_the_reference_needs_no_token_and_its_document_is_public(api_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        assert (await fetch(session, f"{api_url}/docs"))[0] == 200
        status, content_type, _, _ = await fetch(session, f"{api_url}/v3/openapi.json")
        assert (status, content_type) == (200, "application/json")
