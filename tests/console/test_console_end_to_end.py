"""The console end to end, in Chromium, against the real service: sign in with the bootstrap token;
create an account; give it a role directly and another through a team; issue a token and read its
secret once; introspect it (active); revoke it in the console (introspection rejects it); rotate
another with a grace period; disable the account; the audit timeline shows every step as the
console's actor, the as-of picker shows the state before the revocation, the token's usage has its
chart, and the log verifies intact. Screenshots of the main pages go to docs/console/."""

import asyncio
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Locator, Page, expect

from services.audit.checkpoints import seal
from services.composition import Runtime
from tests.api_fixture import ApiClient, unique
from tests.console.conftest import csp_violations, screenshot, sign_in

pytestmark = pytest.mark.slow  # a real browser: about half a minute

CONSOLE_STEPS = {
    "account.created",
    "account.role_assigned",
    "team.created",
    "team.role_assigned",
    "team.member_added",
    "token.issued",
    "token.revoked",
    "token.rotated",
    "account.disabled",
}


async def introspect(api: ApiClient, secret: str) -> dict[str, Any]:
    reply = await api.post("/v3/tokens/introspect", {"token": secret})
    assert reply.status == 200, reply.body
    body: dict[str, Any] = reply.body
    return body


def token_row(page: Page, name: str) -> Locator:
    return page.locator("tbody tr", has_text=name)


async def manage(page: Page, name: str) -> Locator:
    row = token_row(page, name)
    await row.locator("summary", has_text="Manage").click()
    return row


async def issue(page: Page, name: str) -> str:
    await page.locator("summary", has_text="Issue a token").click()
    await page.locator("#token-name").fill(name)
    await page.locator("#token-expiry").select_option("30")
    await page.get_by_role("button", name="Issue token").click()
    panel = page.locator(".secret-panel")
    await expect(panel).to_contain_text(name)
    secret = (await page.locator("#new-secret").inner_text()).strip()
    assert re.fullmatch(r"spat_[A-Za-z0-9]{50}", secret), secret
    return secret


async def eventually_visible(page: Page, locator: Locator, attempts: int = 30) -> None:
    """Reloads until ``locator`` shows (the usage log is flushed every second)."""
    for _ in range(attempts):
        if await locator.count():
            return
        await asyncio.sleep(0.3)
        await page.reload()
    await expect(locator.first).to_be_visible()


async def test_manage_an_account_from_sign_in_to_audit(
    context: BrowserContext, api: ApiClient, admin_token: str, api_runtime: Runtime
) -> None:
    await context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = await context.new_page()
    violations = csp_violations(page)
    admin = await introspect(api, admin_token)
    visited: dict[str, str] = {}

    async def keep(label: str) -> None:
        visited[label] = await page.content()

    await page.goto("/console/")
    await screenshot(page, "sign-in")
    await sign_in(page, admin_token)

    # Create the account.
    name = unique("payments-ci")
    await page.locator("#new-name").fill(name)
    await page.locator("#new-description").fill("Deploys the payments service")
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("heading", name=name)).to_be_visible()
    await expect(page.get_by_role("status")).to_contain_text("The account was created.")
    account_url = page.url.split("?")[0]
    account_id = account_url.rstrip("/").rsplit("/", 1)[1]

    # A role directly.
    await page.locator("summary", has_text="Assign a role").click()
    await page.locator("#assign-role").select_option("Identity/Viewer")
    await page.get_by_role("button", name="Assign role").click()
    await expect(page.get_by_role("status")).to_contain_text("The role was assigned.")

    # A team holding Auditor, then the account in it.
    team = unique("release-managers")
    await page.get_by_role("link", name="Teams", exact=True).click()
    await page.locator("#team-name").fill(team)
    await page.locator("#team-labels").fill("env=prod")
    await page.get_by_role("button", name="Create team").click()
    await expect(page.get_by_role("heading", name=team)).to_be_visible()
    await page.locator("summary", has_text="Assign a role").click()
    await page.locator("#assign-role").select_option("Identity/Auditor")
    await page.get_by_role("button", name="Assign role").click()
    await expect(page.get_by_role("status")).to_contain_text("The role was assigned.")
    await page.goto(account_url)
    await page.locator("#join-team").select_option(label=team)
    await page.get_by_role("button", name="Add to team").click()
    await expect(page.get_by_role("status")).to_contain_text("added to the team")
    roles = page.locator("section", has=page.get_by_role("heading", name="Roles"))
    await expect(roles.locator("tr", has_text="Viewer")).to_contain_text("directly")
    await expect(roles.locator("tr", has_text="Auditor")).to_contain_text(f"via team {team}")

    # Issue a token: the secret is shown once, copied, and gone after a reload.
    secret = await issue(page, "alpha-key")
    await expect(page.locator(".secret-panel")).to_contain_text("shown this once and never again")
    await page.get_by_role("button", name="Copy to clipboard").click()
    await expect(page.locator("#copy-status")).to_have_text("Copied to the clipboard.")
    assert await page.evaluate("navigator.clipboard.readText()") == secret
    await screenshot(page, "secret-panel", mask=[page.locator("#new-secret")], mask_color="#8c959f")
    await page.reload()
    assert page.url == account_url
    await expect(page.locator(".secret-panel")).to_have_count(0)
    assert secret not in await page.content()
    await screenshot(page, "account")
    await keep("account after reload")

    active = await introspect(api, secret)
    assert active["active"] is True and active["account_id"] == account_id

    # Revoke it in the console: introspection rejects it at once.
    await asyncio.sleep(1.1)
    before_revocation = datetime.now(UTC)
    await asyncio.sleep(1.1)
    row = await manage(page, "alpha-key")
    await row.get_by_label("Reason").fill("compromised")
    await row.get_by_role("button", name="Revoke").click()
    await expect(page.get_by_role("status")).to_contain_text("The token was revoked.")
    await expect(token_row(page, "alpha-key")).to_contain_text("revoked")
    await expect(token_row(page, "alpha-key")).to_contain_text("(compromised)")
    assert (await introspect(api, secret))["active"] is False

    # Rotate another with a grace period: both secrets work until it ends.
    old = await issue(page, "beta-key")
    row = await manage(page, "beta-key")
    await row.locator("select[name=grace_period_seconds]").select_option("3600")
    await row.get_by_role("button", name="Rotate").click()
    await expect(page.locator("#new-secret")).not_to_have_text(old)
    await expect(page.locator(".secret-panel")).to_contain_text("beta-key")
    new = (await page.locator("#new-secret").inner_text()).strip()
    assert (await introspect(api, old))["active"] is True
    assert (await introspect(api, new))["active"] is True

    # Disable the account: its tokens stop.
    await page.goto(account_url)
    await page.get_by_role("button", name="Disable account").click()
    await expect(page.get_by_role("status")).to_contain_text("The account was disabled")
    assert (await introspect(api, new))["active"] is False

    # The log holds every step as the admin, via the console.
    events = await api.get(f"/v3/audit/events?filter[account_id]={account_id}&page[size]=100")
    steps = [item for item in events.body["data"] if item["type"] in CONSOLE_STEPS]
    assert {item["type"] for item in steps} >= CONSOLE_STEPS - {"team.created", "team.role_assigned"}
    for item in steps:
        assert item["via"] == "console", item
        assert item["actor"] == {"account_id": admin["account_id"], "token_id": admin["token_id"]}, item

    # The audit timeline shows them; the as-of picker the account before the revocation.
    await page.get_by_role("link", name="Audit timeline and history").click()
    timeline = page.locator("ol.timeline > li")
    for kind in ("token.revoked", "token.rotated", "token.issued", "account.created", "team.member_added"):
        entry = timeline.filter(has_text=kind).first
        await expect(entry).to_contain_text("via console")
        await expect(entry).to_contain_text(admin["account_name"])
        await expect(entry).to_contain_text(f"with token “{admin['name']}”")
    await page.locator("#as-of").fill(before_revocation.strftime("%Y-%m-%dT%H:%M:%S"))
    await page.get_by_role("button", name="Show").click()
    then = page.locator("#as-of-result")
    await expect(then.locator("tr", has_text="alpha-key")).to_contain_text("active")
    await expect(then.locator("tr", has_text="beta-key")).to_have_count(0)
    await expect(then).to_contain_text("Identity · Auditor")
    await expect(then).to_contain_text(team)
    await screenshot(page, "account-audit")
    await keep("account audit")

    # The token's usage: accepted, then rejected, per hour.
    await page.goto(account_url)
    await token_row(page, "alpha-key").get_by_role("link", name="Audit").click()
    await eventually_visible(page, page.locator("tbody .badge", has_text="rejected"))
    await expect(page.locator("tbody .badge", has_text="accepted").first).to_be_visible()
    await expect(page.locator("svg.chart rect.accepted").first).to_be_attached()
    await expect(page.locator("svg.chart rect.rejected").first).to_be_attached()
    await screenshot(page, "token-audit")
    await keep("token audit")

    # The hash chain verifies intact, with its last sealed checkpoint.
    await seal(api_runtime.pool)
    await page.get_by_role("link", name="Audit log").click()
    await expect(page.get_by_role("heading", name="The audit log")).to_be_visible()
    await expect(page.locator("#seal-facts")).to_contain_text("Last sealed checkpoint#")
    await page.get_by_role("button", name="Verify the whole log now").click()
    await expect(page.get_by_role("status")).to_contain_text("Intact.")
    await screenshot(page, "audit-log")
    await keep("audit log")

    for path, label in (("/console/accounts", "accounts"), ("/console/roles", "roles")):
        await page.goto(path)
        await screenshot(page, label)
        await keep(label)
    await page.goto("/console/teams")
    await page.get_by_role("link", name=team).click()
    await screenshot(page, "team")
    await keep("team")

    for label, html in visited.items():
        for value in (secret, old, new, admin_token):
            assert value not in html, f"a secret is in the {label} page"
    assert violations == [], violations
