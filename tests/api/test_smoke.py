"""The wired service answers over real HTTP: a first end-to-end pass through every layer."""

from tests.api_fixture import ApiClient, unique


async def test_create_then_get_account(api: ApiClient) -> None:
    created = await api.post("/v3/system-accounts", {"name": unique("smoke"), "description": "d"})
    assert created.status == 201, created.body
    fetched = await api.get(f"/v3/system-accounts/{created.body['id']}")
    assert fetched.status == 200
    assert fetched.body == created.body
