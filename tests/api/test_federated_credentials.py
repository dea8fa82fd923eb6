"""Federated credentials over real HTTP: create (201, the defaults filled; the GitHub Actions
preset), get, list with filters and as_of, update, delete (204, then 404); every refusal a problem
that writes nothing; and the rule of issuing a token: a caller who could not obtain an unscoped
token of the account cannot make it obtainable by an id-token either."""

from datetime import UTC, datetime
from typing import Any

from services.composition import Runtime
from tests.api.identity_support import (
    account_with_roles,
    assert_problem,
    create_account,
    grant_identity_role,
    nothing_written,
)
from tests.api_fixture import ApiClient

ISSUER = "https://issuer.example"


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _body(**fields: Any) -> dict[str, Any]:
    return {"name": "deploy", "issuer": ISSUER, "subject": "system:serviceaccount:ci:deployer", **fields}


async def test_create_get_list_update_delete(api: ApiClient, api_runtime: Runtime) -> None:
    account = await create_account(api)
    base = f"/v3/system-accounts/{account['id']}/federated-credentials"
    before = _now()
    created = await api.post(
        base, _body(conditions=[{"claim": "kubernetes.io", "operator": "glob", "values": ["*"]}])
    )
    assert created.status == 201, created.body
    credential = created.body
    assert credential["audiences"] == ["urn:tokenledger:local"]
    assert credential["max_token_lifetime"] == 3600 and credential["preset"] is None
    assert (await api.get(f"{base}/{credential['id']}")).body == credential
    listed = await api.get(f"{base}?filter[issuer]={ISSUER}")
    assert listed.status == 200 and listed.body["data"] == [credential]
    assert (await api.get(f"{base}?filter[name]=other")).body["data"] == []
    after_create = _now()
    changed = await api.patch(f"{base}/{credential['id']}", {"subject": "system:serviceaccount:ci:*"})
    assert changed.status == 200 and changed.body["subject"] == "system:serviceaccount:ci:*"
    assert changed.body["conditions"] == credential["conditions"]
    assert (await api.get(f"{base}/{credential['id']}")).body == changed.body
    assert (await api.get(f"{base}?as_of={before}")).body["data"] == []
    then = await api.get(f"{base}?as_of={after_create}")
    assert then.status == 200 and [c["subject"] for c in then.body["data"]] == [credential["subject"]]
    assert (await api.delete(f"{base}/{credential['id']}")).status == 204
    assert_problem(await api.get(f"{base}/{credential['id']}"), 404)
    assert_problem(await api.delete(f"{base}/{credential['id']}"), 404)


async def test_the_github_actions_preset(api: ApiClient) -> None:
    account = await create_account(api)
    base = f"/v3/system-accounts/{account['id']}/federated-credentials"
    body = {"name": "gha", "github_actions": {"repository": "acme/deploy", "repository_owner_id": "4242"}}
    created = await api.post(base, body)
    assert created.status == 201, created.body
    assert created.body["issuer"] == "https://token.actions.githubusercontent.com"
    assert created.body["subject"] == "repo:acme/deploy:*"
    assert created.body["required_claims"] == ["repository", "repository_owner_id"]
    assert created.body["preset"] == "github-actions"
    with_issuer = {**body, "name": "gha2", "issuer": ISSUER}
    assert_problem(await api.post(base, with_issuer), 400, "issuer")


async def test_refusals_write_nothing(api: ApiClient, api_runtime: Runtime) -> None:
    account = await create_account(api)
    base = f"/v3/system-accounts/{account['id']}/federated-credentials"
    assert (await api.post(base, _body())).status == 201
    async with nothing_written(api_runtime):
        assert_problem(await api.post(base, _body(issuer="http://issuer.example", name="x")), 400, "issuer")
        assert_problem(await api.post(base, {"name": "x", "issuer": ISSUER}), 400, "subject")
        assert_problem(
            await api.post(base, _body(name="x", max_token_lifetime=86400)), 400, "max_token_lifetime"
        )
        assert_problem(await api.post(base, _body(name="x", surprise=1)), 400)
        bad_claim = [{"claim": "aud", "operator": "equals", "values": ["x"]}]
        assert_problem(
            await api.post(base, _body(name="x", conditions=bad_claim)), 400, "conditions[0].claim"
        )
        assert_problem(await api.post(base, _body()), 409)
        assert_problem(await api.post("/v3/system-accounts/nope/federated-credentials", _body()), 404)
        assert_problem(await api.patch(f"{base}/nope", {"name": "y"}), 404)


async def test_making_an_account_obtainable_needs_covering_it(api: ApiClient, api_runtime: Runtime) -> None:
    target = await create_account(api, "admin-target")
    await grant_identity_role(api, f"/v3/system-accounts/{target['id']}", "Admin")
    _, writer = await account_with_roles(api, "Admin", scopes=["tokens:write"])
    _, viewer = await account_with_roles(api, "Viewer")
    base = f"/v3/system-accounts/{target['id']}/federated-credentials"
    async with nothing_written(api_runtime):
        assert_problem(await api.post(base, _body(), token=writer), 403)
        assert_problem(await api.post(base, _body(), token=viewer), 403)
    assert (await api.get(base, token=viewer)).status == 200
