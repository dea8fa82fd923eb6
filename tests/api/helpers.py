"""Small scenario steps the API tests share: make an account, give it a role, issue it a token."""

from datetime import UTC, datetime, timedelta
from typing import Any

from services.composition import Runtime
from tests.api.identity_support import assert_problem, log_head
from tests.api.identity_support import create_account as new_account
from tests.api_fixture import ApiClient, unique

__all__ = [
    "account_with_token",
    "assert_problem",
    "grant_identity_role",
    "in_days",
    "issue_token",
    "log_head",
    "new_account",
]


def in_days(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat().replace("+00:00", "Z")


async def issue_token(api: ApiClient, account_id: str, **fields: Any) -> dict[str, Any]:
    body = {"name": unique("token"), "expires_at": in_days(30), **fields}
    reply = await api.post(f"/v3/system-accounts/{account_id}/access-tokens", body)
    assert reply.status == 201, reply.body
    issued: dict[str, Any] = reply.body
    return issued


async def grant_identity_role(api: ApiClient, runtime: Runtime, account_id: str, role: str) -> None:
    reply = await api.post(
        f"/v3/system-accounts/{account_id}/assigned-roles",
        {
            "role_name": role,
            "entity_id": runtime.organization.organization_id,
            "entity_type_name": "Identity",
            "entity_region": "*",
        },
    )
    assert reply.status == 201, reply.body


async def account_with_token(
    api: ApiClient, runtime: Runtime, role: str | None, **token_fields: Any
) -> tuple[dict[str, Any], str]:
    """A new account holding ``role`` on the organization (or none), and a secret of a new token."""
    account = await new_account(api, (role or "norole").lower())
    if role is not None:
        await grant_identity_role(api, runtime, account["id"], role)
    issued = await issue_token(api, account["id"], **token_fields)
    return account, issued["token"]
