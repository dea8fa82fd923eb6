"""The audit API over HTTP: the log as pages stable under appends, who may read it, and the state
of an account at a past instant folded from the log."""

from datetime import UTC, datetime

from services.composition import Runtime
from tests.api.helpers import (
    account_with_token,
    assert_problem,
    grant_identity_role,
    issue_token,
    new_account,
)
from tests.api_fixture import ApiClient


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


async def test_events_of_an_account_page_by_page(api: ApiClient) -> None:
    account = await new_account(api)
    tokens = [await issue_token(api, account["id"]) for _ in range(3)]
    await api.patch(f"/v3/system-accounts/{account['id']}/access-tokens/{tokens[0]['id']}/revoke")
    seen: list[dict[str, object]] = []
    path = f"/v3/audit/events?filter[account_id]={account['id']}&page[size]=2"
    while path:
        page = await api.get(path)
        assert page.status == 200, page.body
        seen += page.body["data"]
        path = page.body["meta"]["page"]["next"]
    types = [event["type"] for event in seen]
    assert types == ["account.created", "token.issued", "token.issued", "token.issued", "token.revoked"]
    assert all("secret_hash" not in event["data"] for event in seen)
    assert seen[1]["actor"]["account_id"] is not None
    positions = [event["position"] for event in seen]
    assert len(set(positions)) == len(positions)


async def test_filters_and_bad_parameters(api: ApiClient) -> None:
    account = await new_account(api)
    token = await issue_token(api, account["id"])
    by_token = await api.get(f"/v3/audit/events?filter[token_id]={token['id']}&filter[type]=token.issued")
    assert [e["data"]["token_id"] for e in by_token.body["data"]] == [token["id"]]
    later = await api.get(
        f"/v3/audit/events?filter[account_id]={account['id']}&filter[occurred_at][gte]={_now()}"
    )
    assert later.body["data"] == []
    assert_problem(
        await api.get("/v3/audit/events?filter[occurred_at][gte]=yesterday"), 400, "filter[occurred_at][gte]"
    )
    assert_problem(await api.get("/v3/audit/events?page[after]=x"), 400, "page[after]")
    assert_problem(await api.get("/v3/audit/events?sort=type"), 400, "sort")


async def test_only_auditors_and_admins_read_it(api: ApiClient, api_runtime: Runtime) -> None:
    _, viewer = await account_with_token(api, api_runtime, "Viewer")
    assert_problem(await api.get("/v3/audit/events", token=viewer), 403)
    _, auditor = await account_with_token(api, api_runtime, "Auditor")
    assert (await api.get("/v3/audit/events", token=auditor)).status == 200


async def test_state_as_of_a_past_instant(api: ApiClient, api_runtime: Runtime) -> None:
    account = await new_account(api)
    before_role = _now()
    await grant_identity_role(api, api_runtime, account["id"], "Viewer")
    token = await issue_token(api, account["id"])
    before_rename = _now()
    await api.patch(f"/v3/system-accounts/{account['id']}", {"name": account["name"] + "-renamed"})
    await api.patch(f"/v3/system-accounts/{account['id']}/access-tokens/{token['id']}/revoke")
    base = f"/v3/system-accounts/{account['id']}"

    then = await api.get(f"{base}?as_of={before_rename}")
    assert then.status == 200 and then.body["name"] == account["name"]
    assert (await api.get(base)).body["name"] == account["name"] + "-renamed"
    roles_then = await api.get(f"{base}/assigned-roles?as_of={before_role}")
    assert roles_then.body["data"] == []
    roles_later = await api.get(f"{base}/assigned-roles?as_of={before_rename}")
    assert [(r["role_name"], r["source"]) for r in roles_later.body["data"]] == [("Viewer", "direct")]
    token_then = await api.get(f"{base}/access-tokens/{token['id']}?as_of={before_rename}")
    assert token_then.body["state"] == "ACTIVE"
    assert (await api.get(f"{base}/access-tokens/{token['id']}")).body["state"] == "REVOKED"
    listed = await api.get(f"{base}/access-tokens?as_of={before_role}")
    assert listed.body["data"] == []
    teams = await api.get(f"{base}/teams?as_of={before_rename}")
    assert teams.status == 200 and teams.body["data"] == []
    assert_problem(await api.get(f"{base}?as_of=1999-01-01T00:00:00Z"), 404)
    assert_problem(await api.get(f"{base}?as_of=soon"), 400, "as_of")
