"""Every other form of the console, clicked in Chromium, and what the API then says: edit an account,
issue a scoped token with sliding expiry on a date, rename and delete tokens, unassign roles, leave
and join teams from both sides, edit a team's labels, and delete a team and an account (each only
after typing its name)."""

from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import Page, expect

from tests.api_fixture import ApiClient, unique
from tests.console.conftest import new_account, sign_in

pytestmark = pytest.mark.slow  # a real browser: about half a minute


async def test_the_account_forms(page: Page, api: ApiClient, admin_token: str) -> None:
    account_id, _ = await new_account(api, "Viewer")
    team = await api.post("/v3/teams", {"name": unique("forms-team")})
    team_id = team.body["id"]
    assert (await api.post(f"/v3/teams/{team_id}/system-accounts", {"id": account_id})).status == 201
    await sign_in(page, admin_token)
    await page.goto(f"/console/accounts/{account_id}")

    renamed = unique("renamed")
    await page.locator("summary", has_text="Edit").click()
    await page.locator("#edit-name").fill(renamed)
    await page.locator("#edit-description").fill("a new description")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("heading", name=renamed)).to_be_visible()
    account = (await api.get(f"/v3/system-accounts/{account_id}")).body
    assert (account["name"], account["description"]) == (renamed, "a new description")

    on = (datetime.now(UTC) + timedelta(days=20)).date()
    await page.locator("summary", has_text="Issue a token").click()
    await page.locator("#token-name").fill("scoped")
    await page.locator("#token-expiry").select_option("date")
    await page.locator("#token-expires-on").fill(on.isoformat())
    await page.get_by_label("identity:read").check()
    await page.locator("#token-slide").fill("7")
    await page.locator("#token-max").fill((on + timedelta(days=30)).isoformat())
    await page.get_by_role("button", name="Issue token").click()
    await expect(page.locator(".secret-panel")).to_contain_text("scoped")
    tokens = {
        t["name"]: t for t in (await api.get(f"/v3/system-accounts/{account_id}/access-tokens")).body["data"]
    }
    scoped = tokens["scoped"]
    assert scoped["scopes"] == ["identity:read"] and scoped["auto_extend_seconds"] == 7 * 86400
    assert scoped["expires_at"].startswith(on.isoformat())
    row = page.locator("tbody tr", has_text="scoped")
    await expect(row).to_contain_text("identity:read")
    await expect(row).to_contain_text("7 days")

    await row.locator("summary", has_text="Manage").click()
    await row.locator("input[name=name]").fill("scoped-renamed")
    await row.get_by_role("button", name="Rename").click()
    await expect(page.get_by_role("status")).to_contain_text("The token was renamed.")
    row = page.locator("tbody tr", has_text="scoped-renamed")
    await row.locator("summary", has_text="Manage").click()
    await row.get_by_role("button", name="Delete").click()
    await expect(page.get_by_role("status")).to_contain_text("The token was deleted.")
    await expect(page.locator("tbody tr", has_text="scoped-renamed")).to_have_count(0)

    await page.get_by_role("button", name="Unassign Viewer").click()
    await expect(page.get_by_role("status")).to_contain_text("The role was unassigned.")
    await page.get_by_role("button", name="Remove from").click()
    await expect(page.get_by_role("status")).to_contain_text("removed from the team")
    assert (await api.get(f"/v3/system-accounts/{account_id}/assigned-roles")).body["data"] == []
    assert (await api.get(f"/v3/system-accounts/{account_id}/teams")).body["data"] == []

    await page.locator("summary", has_text="Delete account").click()
    await page.locator("#confirm-delete").fill("not the name")
    await page.get_by_role("button", name="Delete account").click()
    await expect(page.get_by_role("alert")).to_contain_text("confirm")
    assert (await api.get(f"/v3/system-accounts/{account_id}")).status == 200
    await page.get_by_role("link", name="Go back").click()
    await page.locator("summary", has_text="Delete account").click()
    await page.locator("#confirm-delete").fill(renamed)
    await page.get_by_role("button", name="Delete account").click()
    await expect(page.get_by_role("status")).to_contain_text("The account was deleted.")
    assert (await api.get(f"/v3/system-accounts/{account_id}")).status == 404


async def test_the_team_forms(page: Page, api: ApiClient, admin_token: str) -> None:
    member_id, _ = await new_account(api, None)
    member = (await api.get(f"/v3/system-accounts/{member_id}")).body["name"]
    team = await api.post("/v3/teams", {"name": unique("crew"), "labels": {"env": "prod", "tier": "1"}})
    team_id = team.body["id"]
    await sign_in(page, admin_token)
    await page.goto(f"/console/teams/{team_id}")

    await page.locator("#add-member").select_option(label=member)
    await page.get_by_role("button", name="Add member").click()
    await expect(page.get_by_role("status")).to_contain_text("The account was added.")
    await expect(page.get_by_role("link", name=member)).to_be_visible()
    await page.locator("summary", has_text="Assign a role").click()
    await page.locator("#assign-role").select_option("Identity/Viewer")
    await page.get_by_role("button", name="Assign role").click()
    await expect(page.get_by_role("status")).to_contain_text("The role was assigned.")

    renamed = unique("crew-renamed")
    await page.locator("summary", has_text="Edit").click()
    await page.locator("#edit-name").fill(renamed)
    await page.locator("#edit-labels").fill("env=staging\nowner=payments")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("heading", name=renamed)).to_be_visible()
    shown = (await api.get(f"/v3/teams/{team_id}")).body
    assert shown["labels"] == {"env": "staging", "owner": "payments"}

    await page.get_by_role("button", name="Unassign").click()
    await expect(page.get_by_role("status")).to_contain_text("The role was unassigned.")
    await page.get_by_role("button", name=f"Remove {member}").click()
    await expect(page.get_by_role("status")).to_contain_text("The account was removed.")
    assert (await api.get(f"/v3/teams/{team_id}/system-accounts")).body["data"] == []
    assert (await api.get(f"/v3/teams/{team_id}/assigned-roles")).body["data"] == []

    await page.locator("summary", has_text="Delete team").click()
    await page.locator("#confirm-delete").fill(renamed)
    await page.get_by_role("button", name="Delete team").click()
    await expect(page.get_by_role("status")).to_contain_text("The team was deleted.")
    assert (await api.get(f"/v3/teams/{team_id}")).status == 404
