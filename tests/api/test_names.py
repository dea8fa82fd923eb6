"""Names that look alike are one name: account, token and team names are stored in normal form
(NFC, trimmed), uniqueness is claimed on it, and names holding invisible, control or format
characters are refused with a 400 naming the field and nothing written."""

import unicodedata

import pytest

from services.composition import Runtime
from tests.api.helpers import in_days, issue_token, new_account
from tests.api.identity_support import assert_problem, create_team, nothing_written
from tests.api_fixture import ApiClient, unique

INVISIBLE = ("\u200b", "\u200d", "\ufeff", "\u202e", "\u00ad", "\u2060", "\x07", "\x1b", "\u2028", "\u3164")
SPACES = ("\u00a0", "\u2003", "\u3000")


@pytest.mark.parametrize("character", [*INVISIBLE, *SPACES])
async def test_a_name_with_an_invisible_character_is_refused(
    api: ApiClient, api_runtime: Runtime, character: str
) -> None:
    name = unique("ad") + character + "min"
    async with nothing_written(api_runtime):
        reply = await api.post("/v3/system-accounts", {"name": name, "description": "d"})
        assert_problem(reply, 400, "name", "invalid")
        assert_problem(await api.post("/v3/teams", {"name": name}), 400, "name", "invalid")


async def test_look_alike_account_names_are_one_name(api: ApiClient, api_runtime: Runtime) -> None:
    name = unique("admin")
    first = await api.post("/v3/system-accounts", {"name": name, "description": "d"})
    assert first.status == 201, first.body
    async with nothing_written(api_runtime):
        for look_alike in (f"{name} ", f"  {name}\t", f"\n{name}"):
            reply = await api.post("/v3/system-accounts", {"name": look_alike, "description": "d"})
            assert_problem(reply, 409)


async def test_names_are_stored_in_nfc_and_trimmed(api: ApiClient) -> None:
    decomposed = unique("cafe") + "e\u0301"
    reply = await api.post("/v3/system-accounts", {"name": f"  {decomposed} ", "description": "d"})
    assert reply.status == 201, reply.body
    assert reply.body["name"] == unicodedata.normalize("NFC", decomposed)
    again = await api.post(
        "/v3/system-accounts", {"name": unicodedata.normalize("NFC", decomposed), "description": "d"}
    )
    assert_problem(again, 409)


async def test_names_keep_their_case(api: ApiClient) -> None:
    name = unique("Case")
    for variant in (name, name.lower(), name.upper()):
        reply = await api.post("/v3/system-accounts", {"name": variant, "description": "d"})
        assert reply.status == 201, reply.body
        assert reply.body["name"] == variant


async def test_a_blank_name_is_refused_on_create_and_rename(api: ApiClient, api_runtime: Runtime) -> None:
    account = await new_account(api, "blank")
    token = await issue_token(api, account["id"])
    team = await create_team(api, "blank")
    async with nothing_written(api_runtime):
        assert_problem(
            await api.post("/v3/system-accounts", {"name": " \t ", "description": "d"}),
            400,
            "name",
            "min_length",
        )
        assert_problem(await api.patch(f"/v3/system-accounts/{account['id']}", {"name": "  "}), 400, "name")
        token_path = f"/v3/system-accounts/{account['id']}/access-tokens"
        assert_problem(await api.patch(f"{token_path}/{token['id']}", {"name": " "}), 400, "name")
        assert_problem(await api.patch(f"/v3/teams/{team['id']}", {"name": "\u3000"}), 400, "name")
        blank_token = {"name": "\u200b", "expires_at": in_days(1)}
        assert_problem(await api.post(token_path, blank_token), 400, "name")


async def test_look_alike_token_names_are_one_name(api: ApiClient, api_runtime: Runtime) -> None:
    account = await new_account(api, "tokens")
    token = await issue_token(api, account["id"])
    path = f"/v3/system-accounts/{account['id']}/access-tokens"
    async with nothing_written(api_runtime):
        reply = await api.post(path, {"name": f" {token['name']} ", "expires_at": in_days(1)})
        assert_problem(reply, 409)
        renamed = await api.patch(f"{path}/{token['id']}", {"name": f"{token['name']}  "})
        assert renamed.status == 200, renamed.body
        assert renamed.body["name"] == token["name"]
