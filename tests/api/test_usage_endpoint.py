"""GET /v3/system-accounts/{accountId}/access-tokens/{tokenId}/usage over real HTTP: what the API's own
authentication and introspection record, cursor pagination, filters, authorisation and errors."""

from typing import Any

from services.composition import Runtime
from tests.api.helpers import account_with_token, assert_problem, issue_token, new_account
from tests.api_fixture import ApiClient

USER_AGENT = "usage-test/1.0"


def usage_path(account_id: str, token_id: str) -> str:
    return f"/v3/system-accounts/{account_id}/access-tokens/{token_id}/usage"


async def viewer_with_history(api: ApiClient, runtime: Runtime) -> tuple[str, str, str]:
    """A Viewer's token used once for a read (accepted), once for a write (no right), introspected
    once, then revoked and used again (revoked); every verification flushed. Returns the account id,
    the token id and the secret."""
    account, secret = await account_with_token(api, runtime, "Viewer")
    [token] = (await api.get(f"/v3/system-accounts/{account['id']}/access-tokens")).body["data"]
    headers = {"User-Agent": USER_AGENT}
    assert (await api.get("/v3/system-accounts", token=secret, headers=headers)).status == 200
    forbidden = await api.post("/v3/system-accounts", {"name": "x"}, token=secret, headers=headers)
    assert forbidden.status == 403
    introspected = await api.post("/v3/tokens/introspect", {"token": secret})
    assert introspected.body["active"] is True
    revoke = f"/v3/system-accounts/{account['id']}/access-tokens/{token['id']}/revoke"
    assert (await api.patch(revoke)).status == 200
    assert (await api.get("/v3/system-accounts", token=secret, headers=headers)).status == 401
    assert await runtime.usage.flush()
    return account["id"], token["id"], secret


async def test_the_timeline_of_a_token(api: ApiClient, api_runtime: Runtime) -> None:
    account_id, token_id, secret = await viewer_with_history(api, api_runtime)
    reply = await api.get(usage_path(account_id, token_id) + "?page[size]=100")
    assert reply.status == 200, reply.body
    timeline = [(item["outcome"], item["reason"], item["operation"]) for item in reply.body["data"]]
    assert timeline == [
        ("accepted", None, "GET /v3/system-accounts"),
        ("rejected", "no_right", "POST /v3/system-accounts"),
        ("accepted", None, "introspect"),
        ("rejected", "revoked", "GET /v3/system-accounts"),
    ]
    first = reply.body["data"][0]
    assert first["client_address"] == "127.0.0.1" and first["user_agent"] == USER_AGENT
    assert first["occurred_at"].endswith("Z")
    positions = [item["position"] for item in reply.body["data"]]
    assert positions == sorted(positions)
    assert reply.body["meta"]["page"] == {
        "size": 100,
        "first": usage_path(account_id, token_id) + "?page[size]=100",
        "next": None,
        "previous": None,
    }
    stored = await api_runtime.pool.fetchval(
        "SELECT count(*) FROM usage_log u WHERE strpos(u::text, $1) > 0", secret
    )
    assert stored == 0


async def test_pages_follow_the_next_cursor(api: ApiClient, api_runtime: Runtime) -> None:
    account_id, token_id, _secret = await viewer_with_history(api, api_runtime)
    everything = (await api.get(usage_path(account_id, token_id) + "?page[size]=100")).body["data"]
    accepted = [item for item in everything if item["outcome"] == "accepted"]
    seen: list[dict[str, Any]] = []
    path: str | None = usage_path(account_id, token_id) + "?page[size]=1"
    pages = 0
    while path is not None:
        reply = await api.get(path)
        assert reply.status == 200, reply.body
        seen.extend(reply.body["data"])
        path = reply.body["meta"]["page"]["next"]
        pages += 1
    assert seen == everything and pages == len(everything)

    filtered = await api.get(usage_path(account_id, token_id) + "?filter[outcome]=accepted&page[size]=1")
    assert filtered.body["data"] == accepted[:1]
    following = await api.get(filtered.body["meta"]["page"]["next"])
    assert following.body["data"] == accepted[1:2]
    assert following.body["meta"]["page"]["next"] is None


async def reasons(api: ApiClient, runtime: Runtime, account: dict[str, Any]) -> list[tuple[Any, ...]]:
    """(outcome, reason, operation) of each verification of the account's one token, flushed."""
    assert await runtime.usage.flush()
    [token] = (await api.get(f"/v3/system-accounts/{account['id']}/access-tokens")).body["data"]
    timeline = (await api.get(usage_path(account["id"], token["id"]) + "?page[size]=100")).body["data"]
    return [(item["outcome"], item["reason"], item["operation"]) for item in timeline]


async def test_a_right_the_scopes_exclude_is_out_of_scope_one_the_account_lacks_is_no_right(
    api: ApiClient, api_runtime: Runtime
) -> None:
    """An Admin's token scoped to reading accounts: a write is excluded by its scopes (out_of_scope);
    an unscoped token of an account holding no role: every right is one its account lacks (no_right)."""
    admin, narrowed = await account_with_token(api, api_runtime, "Admin", scopes=["accounts:read"])
    assert (await api.get("/v3/system-accounts", token=narrowed)).status == 200
    refused = await api.post("/v3/system-accounts", {"name": "x", "description": ""}, token=narrowed)
    assert_problem(refused, 403)
    assert "accounts:write" in refused.body["detail"] and "scopes exclude" in refused.body["detail"]
    assert_problem(await api.get("/v3/teams", token=narrowed), 403)
    assert await reasons(api, api_runtime, admin) == [
        ("accepted", None, "GET /v3/system-accounts"),
        ("rejected", "out_of_scope", "POST /v3/system-accounts"),
        ("rejected", "out_of_scope", "GET /v3/teams"),
    ]

    nobody, unscoped = await account_with_token(api, api_runtime, None)
    lacking = await api.get("/v3/system-accounts", token=unscoped)
    assert_problem(lacking, 403)
    assert "does not hold" in lacking.body["detail"]
    assert_problem(await api.post("/v3/tokens/introspect", {"token": narrowed}, token=unscoped), 403)
    assert await reasons(api, api_runtime, nobody) == [
        ("rejected", "no_right", "GET /v3/system-accounts"),
        ("rejected", "no_right", "POST /v3/tokens/introspect"),
    ]


async def test_time_filters(api: ApiClient, api_runtime: Runtime) -> None:
    account_id, token_id, _secret = await viewer_with_history(api, api_runtime)
    path = usage_path(account_id, token_id)
    everything = (await api.get(path + "?page[size]=100")).body["data"]
    third = everything[2]["occurred_at"]
    since = await api.get(f"{path}?page[size]=100&filter[occurred_at][gte]={third}")
    assert all(item["occurred_at"] >= third for item in since.body["data"])
    assert everything[2] in since.body["data"] and everything[0] not in since.body["data"]
    before = await api.get(f"{path}?page[size]=100&filter[occurred_at][lt]={everything[0]['occurred_at']}")
    assert before.body["data"] == []
    after_all = await api.get(f"{path}?page[after]={everything[-1]['position']}")
    assert after_all.status == 200 and after_all.body["data"] == []


async def test_readable_by_auditors_and_admins_only(api: ApiClient, api_runtime: Runtime) -> None:
    account_id, token_id, _secret = await viewer_with_history(api, api_runtime)
    path = usage_path(account_id, token_id)
    _, auditor = await account_with_token(api, api_runtime, "Auditor")
    _, viewer = await account_with_token(api, api_runtime, "Viewer")
    assert (await api.get(path, token=auditor)).status == 200
    assert (await api.get(path)).status == 200  # the session admin
    assert_problem(await api.get(path, token=viewer), 403)
    assert_problem(await api.get(path, token=""), 401)


async def test_unknown_tokens_and_other_accounts_are_404(api: ApiClient, api_runtime: Runtime) -> None:
    account_id, token_id, _secret = await viewer_with_history(api, api_runtime)
    other = await new_account(api)
    await issue_token(api, other["id"])
    assert_problem(await api.get(usage_path(other["id"], token_id)), 404)
    assert_problem(await api.get(usage_path(account_id, "7d6c1e2a-0000-4000-8000-000000000000")), 404)
    assert_problem(await api.get(usage_path(account_id, "not-an-id")), 404)


async def test_bad_parameters_are_400_naming_each(api: ApiClient, api_runtime: Runtime) -> None:
    account_id, token_id, _secret = await viewer_with_history(api, api_runtime)
    path = usage_path(account_id, token_id)
    for query, field in (
        ("page[size]=0", "page[size]"),
        ("page[size]=101", "page[size]"),
        ("page[after]=abc", "page[after]"),
        ("page[after]=-1", "page[after]"),
        ("filter[outcome]=maybe", "filter[outcome]"),
        ("filter[occurred_at][gte]=yesterday", "filter[occurred_at][gte]"),
        ("filter[occurred_at][lt]=2025-01-01T00:00:00", "filter[occurred_at][lt]"),
        ("filter[reason]=revoked", "filter[reason]"),
        ("page[number]=2", "page[number]"),
    ):
        assert_problem(await api.get(f"{path}?{query}"), 400, field)
    both = await api.get(f"{path}?page[size]=0&filter[outcome]=maybe")
    assert {p["field"] for p in both.body["invalid_parameters"]} == {"page[size]", "filter[outcome]"}


async def test_unknown_secrets_are_recorded_by_hash_only(api: ApiClient, api_runtime: Runtime) -> None:
    presented = "spat_this-is-not-a-token-" + "q" * 20
    assert (await api.get("/v3/system-accounts", token=presented)).status == 401
    assert (await api.post("/v3/tokens/introspect", {"token": presented})).body == {"active": False}
    assert await api_runtime.usage.flush()
    log = api_runtime.usage.log
    assert log is not None
    rows = await api_runtime.pool.fetch(
        "SELECT operation, reason, token_id FROM usage_log WHERE presented_hash = $1 ORDER BY position",
        log.hash_of(presented),
    )
    assert [tuple(row) for row in rows] == [
        ("GET /v3/system-accounts", "malformed", None),
        ("introspect", "malformed", None),
    ]
    stored = await api_runtime.pool.fetchval(
        "SELECT count(*) FROM usage_log u WHERE strpos(u::text, $1) > 0", presented
    )
    assert stored == 0
