"""Bad input to the console gets the API's problem as a 4xx page and changes nothing; the accounts
list's filters select what they say; a form sent twice is carried out once and answered alike."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.api_fixture import ApiClient, unique
from tests.console.conftest import account_named, csrf_of, new_account, sign_in

pytestmark = pytest.mark.slow  # a real browser: about half a minute


async def log_head(api: ApiClient) -> int:
    events = await api.get("/v3/audit/events?page[size]=1")
    return len(events.body["data"])


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("page=abc", "page"),
        ("page=0", "page"),
        ("team=not-a-team", "team"),
        ("enabled=maybe", "enabled"),
        ("managed=perhaps", "managed"),
        ("q=a%00b", "q"),
        ("q=" + "x" * 1100, "q"),
    ],
)
async def test_a_bad_list_query_is_a_400_page_naming_the_parameter(
    page: Page, admin_token: str, query: str, named: str
) -> None:
    await sign_in(page, admin_token)
    response = await page.goto(f"/console/accounts?{query}")
    assert response is not None and response.status == 400
    await expect(page.get_by_role("alert")).to_contain_text(named)


async def test_a_refused_form_changes_nothing_and_says_why(
    page: Page, api: ApiClient, admin_token: str
) -> None:
    await sign_in(page, admin_token)
    csrf = await csrf_of(page)
    invisible = unique("ad\u200bmin")
    refused = await page.request.post("/console/accounts", form={"csrf": csrf, "name": invisible})
    assert refused.status == 400
    assert "<code>name</code>" in await refused.text()
    assert await account_named(api, invisible) == []

    account_id, _ = await new_account(api, None)
    base = f"/console/accounts/{account_id}"
    for path, form, field in (
        (base + "/tokens", {"name": "t", "expiry": "never"}, "expires_at"),
        (base + "/tokens", {"name": "t", "expiry": "forever"}, "expiry"),
        (
            base + "/tokens",
            {"name": "t", "expiry": "30", "expiry_from": "2001-01-01T00:00:00+00:00"},
            "expiry_from",
        ),
        (base + "/tokens", {"name": "t", "expiry": "date", "expires_on": "2020-13-01"}, "expires_on"),
        (base + "/tokens", {"name": "t", "expiry": "30", "scopes": "root"}, "scopes"),
        (base + "/tokens", {"name": "t", "expiry": "30", "auto_extend_days": "-1"}, "auto_extend_days"),
        (base + "/roles", {"role": "Identity/Owner", "entity_id": "x"}, "entity_id"),
        (base + "/enabled", {"enabled": "perhaps"}, "enabled"),
        (base + "/delete", {"confirm": "not its name"}, "confirm"),
        (base + "/teams", {"team_id": "nope"}, "team_id"),
    ):
        response = await page.request.post(path, form={"csrf": csrf, **form})
        assert 400 <= response.status < 500, (path, form, response.status)
        assert field in await response.text(), (path, form)
    tokens = await api.get(f"/v3/system-accounts/{account_id}/access-tokens")
    assert [token["name"] for token in tokens.body["data"]] == ["console"]
    assert (await api.get(f"/v3/system-accounts/{account_id}")).body["enabled"] is True
    missing = await page.request.get("/console/accounts/00000000-0000-0000-0000-000000000000")
    assert missing.status == 404


async def test_a_form_sent_twice_issues_one_token_and_answers_the_same_secret(
    page: Page, api: ApiClient, admin_token: str
) -> None:
    await sign_in(page, admin_token)
    account_id, _ = await new_account(api, None)
    form = {
        "csrf": await csrf_of(page),
        "idempotency_key": unique("key"),
        "expiry_from": datetime.now(UTC).isoformat(),
        "name": "twice",
        "expiry": "30",
    }
    first = await page.request.post(f"/console/accounts/{account_id}/tokens", form=form)
    second = await page.request.post(f"/console/accounts/{account_id}/tokens", form=form)
    assert first.status == second.status == 200

    async def secret_of(response: Any) -> str:
        text: str = await response.text()
        return text.split('id="new-secret">', 1)[1].split("<", 1)[0]

    assert await secret_of(first) == await secret_of(second)
    tokens = await api.get(f"/v3/system-accounts/{account_id}/access-tokens")
    assert sorted(token["name"] for token in tokens.body["data"]) == ["console", "twice"]


async def test_the_list_filters_select_what_they_say(page: Page, api: ApiClient, admin_token: str) -> None:
    prefix = unique("flt")
    soon = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    ids = {}
    for label in ("a", "b"):
        created = await api.post("/v3/system-accounts", {"name": f"{prefix}-{label}", "description": ""})
        ids[label] = created.body["id"]
    team = await api.post("/v3/teams", {"name": unique("flt-team")})
    assert (await api.post(f"/v3/teams/{team.body['id']}/system-accounts", {"id": ids["a"]})).status == 201
    issued = await api.post(
        f"/v3/system-accounts/{ids['a']}/access-tokens", {"name": "soon", "expires_at": soon}
    )
    assert issued.status == 201
    assert (await api.patch(f"/v3/system-accounts/{ids['a']}", {"enabled": False})).status == 200
    await sign_in(page, admin_token)

    async def listed(query: str) -> list[str]:
        await page.goto(f"/console/accounts?q={prefix}&{query}")
        return sorted(await page.locator("#accounts-list tbody tr td:first-child a").all_inner_texts())

    both = [f"{prefix}-a", f"{prefix}-b"]
    assert await listed("") == both
    assert await listed("enabled=disabled") == [f"{prefix}-a"]
    assert await listed("enabled=enabled") == [f"{prefix}-b"]
    assert await listed(f"team={team.body['id']}") == [f"{prefix}-a"]
    assert await listed("expiring=1") == [f"{prefix}-a"]
    assert await listed("unused=1") == both
    assert await listed("managed=yes") == []
    row = page.locator("#accounts-list tbody tr", has_text=f"{prefix}-b")
    await page.goto(f"/console/accounts?q={prefix}")
    await expect(row.locator("td.num").first).to_have_text("0")


async def test_a_hostile_body_is_a_4xx_never_a_500(page: Page, api: ApiClient, admin_token: str) -> None:
    await sign_in(page, admin_token)
    before = (await api.get("/v3/system-accounts?page[size]=1")).body["meta"]["page"]["total"]
    for content_type, body in (
        ("multipart/form-data; boundary=zz", b"--zz\r\ngarbage without headers"),
        ("application/x-www-form-urlencoded", b"name=\xff\xfe&csrf=\xc3"),
        ("application/x-www-form-urlencoded", b"name=" + b"a" * 70_000),
        ("application/json", b'{"name": "json is not a form"}'),
        ("text/plain", b"\x00\x01\x02"),
    ):
        response = await page.request.post(
            "/console/accounts", headers={"Content-Type": content_type}, data=body
        )
        assert 400 <= response.status < 500, (content_type, response.status)
    after = (await api.get("/v3/system-accounts?page[size]=1")).body["meta"]["page"]["total"]
    assert after == before


async def test_the_root_leads_to_the_console_and_each_token_to_what_it_may_see(
    page: Page, api: ApiClient
) -> None:
    _, auditor = await new_account(api, "Auditor")
    await page.goto("/")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.url.endswith("/console/sign-in")
    await page.get_by_label("Access token").fill(auditor)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="The audit log")).to_be_visible()
    response = await page.goto("/console/accounts")
    assert response is not None and response.status == 403
    await expect(page.get_by_role("alert")).to_contain_text("accounts:read")


async def test_the_list_pages_by_twenty(page: Page, api: ApiClient, admin_token: str) -> None:
    prefix = unique("pg")
    for n in range(23):
        assert (
            await api.post("/v3/system-accounts", {"name": f"{prefix}-{n:02}", "description": ""})
        ).status == 201
    await sign_in(page, admin_token)
    await page.goto(f"/console/accounts?q={prefix}")
    names = page.locator("#accounts-list tbody tr td:first-child a")
    await expect(names).to_have_count(20)
    await expect(page.locator(".pager")).to_contain_text("Page 1 of 2")
    await page.get_by_role("link", name="Next →").click()
    await expect(names).to_have_text([f"{prefix}-20", f"{prefix}-21", f"{prefix}-22"])
    await expect(page.get_by_role("link", name="← Previous")).to_be_visible()
    await page.goto(f"/console/accounts?q={prefix}&page=7")
    assert page.url.endswith(f"/console/accounts?q={prefix}&page=2")
    await expect(page.locator(".pager")).to_contain_text("Page 2 of 2")
    await expect(names).to_have_text([f"{prefix}-20", f"{prefix}-21", f"{prefix}-22"])


async def test_the_search_narrows_the_list_as_one_types(page: Page, api: ApiClient, admin_token: str) -> None:
    prefix = unique("typed")
    for label in ("north", "south"):
        assert (
            await api.post("/v3/system-accounts", {"name": f"{prefix}-{label}", "description": ""})
        ).status == 201
    await sign_in(page, admin_token)
    names = page.locator("#accounts-list tbody tr td:first-child a")
    await page.get_by_label("Search name or description").press_sequentially(prefix)
    await expect(names).to_have_text([f"{prefix}-north", f"{prefix}-south"])
    await page.get_by_label("Search name or description").press_sequentially("-so")
    await expect(names).to_have_text([f"{prefix}-south"])
    await expect(page).to_have_url(f"/console/accounts?q={prefix}-so&enabled=&managed=&team=")
    await page.get_by_label("Status").select_option("disabled")
    await expect(page.get_by_text("No account matches these filters.")).to_be_visible()
