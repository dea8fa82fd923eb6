"""50 concurrent requests issue a token with the same name on one account: one wins, one event."""

import asyncio

from services.composition import Runtime
from tests.api.helpers import in_days, new_account
from tests.api_fixture import ApiClient, unique


async def test_fifty_concurrent_same_name_requests(api: ApiClient, api_runtime: Runtime) -> None:
    account = await new_account(api)
    body = {"name": unique("contested"), "expires_at": in_days(1)}
    path = f"/v3/system-accounts/{account['id']}/access-tokens"
    replies = await asyncio.gather(*(api.post(path, body) for _ in range(50)))
    statuses = sorted(reply.status for reply in replies)
    assert statuses == [201] + [409] * 49, statuses
    issued = await api_runtime.pool.fetchval(
        "SELECT count(*) FROM events WHERE type = 'token.issued' AND data->>'account_id' = $1", account["id"]
    )
    assert issued == 1
