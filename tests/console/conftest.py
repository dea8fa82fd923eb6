"""The console over real HTTP in a real browser: the service's application with the console mounted,
on a loopback port, over the session's API runtime (real PostgreSQL), driven by Debian's Chromium
through Playwright (``pytest-playwright-asyncio``: one browser for the session, a fresh context per
test). Every log record of the process is kept (``process_logs``), so tests can show that no secret
was ever logged.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import ConsoleMessage, Page, expect

from services.api import state
from services.api.access_log import PathOnlyAccessLogger
from services.api.app import create_app
from services.composition import Runtime
from services.console.app import mount_console
from services.console.context import ConsoleOptions
from tests.api_fixture import ApiClient, unique

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
VIEWPORT = {"width": 1280, "height": 900}


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(logging.Formatter("%(name)s %(levelname)s %(message)s").format(record))


@pytest.fixture(scope="session")
def process_logs() -> Iterator[list[str]]:
    """Every log record of this process (any logger, any level) from now on, formatted."""
    keep = _Keep()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(keep)
    root.setLevel(logging.DEBUG)
    yield keep.lines
    root.removeHandler(keep)
    root.setLevel(previous)


@pytest.fixture(scope="session")
async def console_url(api_runtime: Runtime, process_logs: list[str]) -> AsyncIterator[str]:
    app = create_app()
    mount_console(app, ConsoleOptions(allow_never=api_runtime.deps.token_policy.allow_non_expiring))
    state.bind(app, api_runtime)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(access_log_class=PathOnlyAccessLogger)
    yield str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    return {"executable_path": CHROMIUM, "headless": True}


@pytest.fixture(scope="session")
def browser_context_args(console_url: str) -> dict[str, Any]:
    return {"base_url": console_url, "viewport": VIEWPORT, "locale": "en-GB", "timezone_id": "UTC"}


async def sign_in(page: Page, token: str) -> None:
    await page.goto("/console/")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await page.get_by_label("Access token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Service accounts")).to_be_visible()


async def screenshot(page: Page, name: str, **options: Any) -> None:
    """Takes a picture of the page. It refreshes the one in docs/console/ (linked from the README)
    when ``TOKENLEDGER_REFRESH_SCREENSHOTS=1`` or that one is missing; otherwise it goes to a
    temporary folder, so a test run leaves the checkout as it was (the pictures carry run-specific
    names and dates)."""
    target = SCREENSHOTS / f"{name}.png"
    if os.environ.get("TOKENLEDGER_REFRESH_SCREENSHOTS") != "1" and target.exists():
        target = Path(tempfile.gettempdir()) / "tokenledger-console" / f"{name}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(target), full_page=True, caret="initial", **options)


def csp_violations(page: Page) -> list[str]:
    """What the browser reports on ``page`` from now on about the Content-Security-Policy (the
    console never needs an exception to it, so the list stays empty)."""
    found: list[str] = []

    def note(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            found.append(message.text)

    page.on("console", note)
    return found


async def new_account(api: ApiClient, role: str | None) -> tuple[str, str]:
    """A new account (holding the Identity ``role``) and a token of it: (account id, secret)."""
    created = await api.post("/v3/system-accounts", {"name": unique("sec"), "description": ""})
    assert created.status == 201, created.body
    account_id = created.body["id"]
    if role is not None:
        organization = (await api.get("/v3/organizations/me")).body["id"]
        grant = {
            "role_name": role,
            "entity_type_name": "Identity",
            "entity_id": organization,
            "entity_region": "*",
        }
        assigned = await api.post(f"/v3/system-accounts/{account_id}/assigned-roles", grant)
        assert assigned.status == 201, assigned.body
    expires_at = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    issued = await api.post(
        f"/v3/system-accounts/{account_id}/access-tokens", {"name": "console", "expires_at": expires_at}
    )
    assert issued.status == 201, issued.body
    return account_id, issued.body["token"]


async def csrf_of(page: Page) -> str:
    value = await page.locator("form[action='/console/sign-out'] input[name=csrf]").get_attribute("value")
    assert value
    return value


async def account_named(api: ApiClient, name: str) -> list[Any]:
    found: list[Any] = (await api.get(f"/v3/system-accounts?filter[name][eq]={name}")).body["data"]
    return found
