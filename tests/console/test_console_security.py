"""The console's security, in Chromium against the real service: a Viewer sees no write control and
its forged POST is refused; a POST without the session's CSRF token is refused; a token revoked, or
an account disabled, ends its sessions at once; signing out ends the session; no secret is in the
session table or the logs; every response is ``no-store`` under a strict Content-Security-Policy
with no inline script; the session cookie is HttpOnly and SameSite=Strict."""

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page, expect

from services.composition import Runtime
from services.console.guard import CONTENT_SECURITY_POLICY, SESSION_COOKIE
from tests.api_fixture import ApiClient, unique
from tests.console.conftest import account_named, csp_violations, csrf_of, new_account, sign_in

pytestmark = pytest.mark.slow  # a real browser: about half a minute

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
INLINE_HANDLER_OR_STYLE = re.compile(r"<[^>]+\s(on[a-z]+|style)\s*=", re.IGNORECASE)


async def sessions_of(runtime: Runtime, account_id: str) -> int:
    count: int = await runtime.pool.fetchval(
        "SELECT count(*) FROM console_sessions WHERE account_id = $1::uuid", account_id
    )
    return count


async def test_a_viewer_sees_no_write_control_and_its_forged_posts_are_refused(
    page: Page, api: ApiClient
) -> None:
    account_id, secret = await new_account(api, "Viewer")
    await sign_in(page, secret)
    await expect(page.get_by_text("read-only")).to_be_visible()
    await expect(page.get_by_role("button", name="Create account")).to_have_count(0)
    await page.goto(f"/console/accounts/{account_id}")
    await expect(page.get_by_role("heading", name="Access tokens")).to_be_visible()
    assert await page.locator("form[method=post]").count() == 1  # signing out
    for control in ("Issue a token", "Assign a role", "Disable account", "Delete account", "Manage"):
        await expect(page.get_by_text(control)).to_have_count(0)
    await page.goto("/console/teams")
    await expect(page.get_by_role("button", name="Create team")).to_have_count(0)

    csrf = await csrf_of(page)
    forged_name = unique("forged")
    forged = await page.request.post("/console/accounts", form={"csrf": csrf, "name": forged_name})
    assert forged.status == 403
    assert "accounts:write" in await forged.text()
    issue = await page.request.post(
        f"/console/accounts/{account_id}/tokens", form={"csrf": csrf, "name": "more", "expiry": "30"}
    )
    assert issue.status == 403
    assert await account_named(api, forged_name) == []
    tokens = await api.get(f"/v3/system-accounts/{account_id}/access-tokens")
    assert [token["name"] for token in tokens.body["data"]] == ["console"]


async def test_a_post_without_the_sessions_csrf_token_is_refused(
    page: Page, api: ApiClient, admin_token: str
) -> None:
    await sign_in(page, admin_token)
    name = unique("csrf")
    missing = await page.request.post("/console/accounts", form={"name": name, "description": ""})
    assert missing.status == 403
    assert "CSRF" in await missing.text()
    wrong = await page.request.post("/console/accounts", form={"csrf": "0" * 64, "name": name})
    assert wrong.status == 403
    assert await account_named(api, name) == []
    right = await page.request.post(
        "/console/accounts", form={"csrf": await csrf_of(page), "name": name, "description": ""}
    )
    assert right.ok
    assert len(await account_named(api, name)) == 1


async def test_the_sign_in_form_needs_its_own_csrf_token(page: Page, admin_token: str) -> None:
    response = await page.request.post("/console/sign-in", form={"token": admin_token})
    assert response.status == 403
    assert SESSION_COOKIE not in {cookie["name"] for cookie in await page.context.cookies()}


@pytest.mark.parametrize("ending", ["revoke the token", "disable the account", "delete the account"])
async def test_a_token_that_stops_working_ends_its_sessions_at_once(
    page: Page, api: ApiClient, api_runtime: Runtime, ending: str
) -> None:
    account_id, secret = await new_account(api, "Viewer")
    await sign_in(page, secret)
    assert await sessions_of(api_runtime, account_id) == 1
    token_id = (await api.post("/v3/tokens/introspect", {"token": secret})).body["token_id"]
    path = f"/v3/system-accounts/{account_id}"
    reply = {
        "revoke the token": lambda: api.patch(f"{path}/access-tokens/{token_id}/revoke"),
        "disable the account": lambda: api.patch(path, {"enabled": False}),
        "delete the account": lambda: api.delete(path),
    }[ending]
    assert (await reply()).status in (200, 204)
    await page.goto("/console/teams")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await expect(page.get_by_role("status")).to_contain_text("Your session has ended")
    assert await sessions_of(api_runtime, account_id) == 0
    assert SESSION_COOKIE not in {cookie["name"] for cookie in await page.context.cookies()}


async def test_signing_out_ends_the_session_for_good(
    page: Page, new_context: Any, api: ApiClient, api_runtime: Runtime
) -> None:
    account_id, secret = await new_account(api, "Viewer")
    await sign_in(page, secret)
    cookies = await page.context.cookies()
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert await sessions_of(api_runtime, account_id) == 0
    replayed: BrowserContext = await new_context()
    await replayed.add_cookies(cookies)  # type: ignore[arg-type]
    again = await replayed.new_page()
    await again.goto("/console/accounts")
    await expect(again.get_by_role("heading", name="Sign in")).to_be_visible()


async def test_the_session_cookie_and_every_response_are_locked_down(
    page: Page, api: ApiClient, admin_token: str
) -> None:
    violations = csp_violations(page)
    account_id, _ = await new_account(api, None)
    sign_in_page = await page.request.get("/console/sign-in")
    await sign_in(page, admin_token)
    (cookie,) = [c for c in await page.context.cookies() if c["name"] == SESSION_COOKIE]
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    assert cookie["secure"] is False  # plain HTTP here; over TLS it is Secure (test_console_units)
    responses = [sign_in_page]
    for path in (
        "/console/accounts",
        f"/console/accounts/{account_id}",
        f"/console/accounts/{account_id}/audit",
        "/console/teams",
        "/console/roles",
        "/console/audit",
        "/console/accounts/not-an-id",
        "/console/static/console.css",
        "/console/static/htmx.min.js",
    ):
        await page.goto(path)
        responses.append(await page.request.get(path))
    for response in responses:
        headers = response.headers
        assert headers["cache-control"] == "no-store", response.url
        assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY, response.url
        assert headers["x-frame-options"] == "DENY"
        if headers["content-type"].startswith("text/html"):
            html = await response.text()
            assert not INLINE_SCRIPT.search(html), response.url
            assert not INLINE_HANDLER_OR_STYLE.search(html), response.url
    assert "unsafe" not in CONTENT_SECURITY_POLICY and "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert violations == [], violations


async def test_no_secret_is_in_the_session_table_or_the_logs(
    page: Page, api: ApiClient, api_runtime: Runtime, process_logs: list[str], admin_token: str
) -> None:
    _, secret = await new_account(api, "Viewer")
    await sign_in(page, secret)
    await page.goto("/console/teams")
    rows = await api_runtime.pool.fetch("SELECT row_to_json(s)::text AS row FROM console_sessions s")
    assert rows
    stored = "\n".join(row["row"] for row in rows)
    logged = "\n".join(process_logs)
    assert any("/console/teams" in line for line in process_logs)  # the access log is there
    for value in (secret, admin_token):
        assert value not in stored
        assert value not in logged
    assert "spat_" not in stored


async def test_reads_work_without_javascript(new_context: Any, api: ApiClient, admin_token: str) -> None:
    context: BrowserContext = await new_context(java_script_enabled=False)
    page = await context.new_page()
    account_id, _ = await new_account(api, "Viewer")
    await sign_in(page, admin_token)
    await page.get_by_label("Search name or description").fill("sec-")
    await page.get_by_role("button", name="Filter").click()
    await expect(page).to_have_url(re.compile(r"q=sec-"))
    await page.goto(f"/console/accounts/{account_id}")
    await expect(page.get_by_role("heading", name="Roles")).to_be_visible()
    await expect(page.locator("tbody tr", has_text="Viewer")).to_contain_text("directly")


async def test_each_control_shows_only_to_a_token_with_its_right(page: Page, api: ApiClient) -> None:
    account_id, _ = await new_account(api, "Admin")
    expires_at = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    scoped = await api.post(
        f"/v3/system-accounts/{account_id}/access-tokens",
        {
            "name": "tokens-only",
            "expires_at": expires_at,
            "scopes": ["accounts:read", "tokens:read", "tokens:write"],
        },
    )
    assert scoped.status == 201, scoped.body
    await sign_in(page, scoped.body["token"])
    await expect(page.get_by_role("button", name="Create account")).to_have_count(0)
    await expect(page.get_by_role("link", name="Teams", exact=True)).to_have_count(0)
    await page.goto(f"/console/accounts/{account_id}")
    await expect(page.locator("summary", has_text="Issue a token")).to_be_visible()
    await expect(page.locator("summary", has_text="Edit")).to_have_count(0)
    await expect(page.get_by_text("This token may not read roles")).to_be_visible()
    await expect(page.get_by_text("This token may not read teams")).to_be_visible()
    await expect(page.get_by_role("link", name="Audit timeline and history")).to_have_count(0)
    refused = await page.request.post(
        f"/console/accounts/{account_id}/enabled", form={"csrf": await csrf_of(page), "enabled": "false"}
    )
    assert refused.status == 403 and "accounts:write" in await refused.text()
    assert (await api.get(f"/v3/system-accounts/{account_id}")).body["enabled"] is True
