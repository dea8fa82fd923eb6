"""After a full scenario (issue, use, introspect, rotate, fail, revoke, delete), no secret shown to a
client appears anywhere: not in the event log, not in any table, not in the log output."""

import logging

import pytest

from services.composition import Runtime
from tests.api.helpers import grant_identity_role, in_days, issue_token, new_account
from tests.api_fixture import ApiClient, tampered, unique


async def _every_row_as_text(runtime: Runtime) -> str:
    tables = await runtime.pool.fetch(
        "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) AS name"
        " FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        " AND table_type = 'BASE TABLE'"
    )
    dumps = []
    for table in tables:
        rows = await runtime.pool.fetch(f"SELECT t::text AS row FROM {table['name']} t")
        dumps.extend(row["row"] for row in rows)
    return "\n".join(dumps)


async def test_no_secret_is_stored_or_logged(
    api: ApiClient, api_runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    account = await new_account(api)
    await grant_identity_role(api, api_runtime, account["id"], "Admin")
    path = f"/v3/system-accounts/{account['id']}/access-tokens"
    issued = await issue_token(api, account["id"], name=unique("secret"), expires_at=in_days(3))
    secrets = [issued["token"]]
    assert (await api.get("/v3/system-accounts", token=secrets[0])).status == 200
    introspected = await api.post("/v3/tokens/introspect", {"token": secrets[0]})
    assert introspected.status == 200 and introspected.body["active"] is True
    rotated = await api.post(
        f"{path}/{issued['id']}/rotate",
        {"grace_period_seconds": 60},
        headers={"Idempotency-Key": unique("k")},
    )
    secrets.append(rotated.body["token"])
    second = await issue_token(api, account["id"])
    secrets.append(second["token"])
    # A secret sent where it does not belong must not be echoed or logged either.
    await api.post("/v3/system-accounts", {"name": secrets[2], "description": secrets[2], "x": 1})
    await api.get(f"/v3/system-accounts?filter[name][eq]={secrets[2]}")
    assert (await api.get("/v3/system-accounts", token=tampered(secrets[1]))).status == 401
    assert (await api.patch(f"{path}/{issued['id']}/revoke")).status == 200
    assert (await api.delete(f"/v3/system-accounts/{account['id']}")).status == 204
    await api_runtime.usage.flush()

    stored = await _every_row_as_text(api_runtime)
    logged = "\n".join(record.getMessage() for record in caplog.records) + caplog.text
    for secret in secrets:
        random_part = secret.removeprefix("spat_")
        assert random_part not in stored
        assert random_part not in logged
