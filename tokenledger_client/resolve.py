"""Names or ids: whatever a person types where an account, a team or a token is meant.

A UUID is taken as the id; anything else is looked up by exact name (``filter[name][eq]``). No match
is "not found" (exit 3); a name shared by several (tokens of one account may share one) is bad input
(exit 2) listing the ids to choose from.
"""

import uuid
from typing import Any

from tokenledger_client.errors import ClientError, Exit
from tokenledger_client.http import Api

ACCOUNTS = "/v3/system-accounts"
TEAMS = "/v3/teams"


def is_id(reference: str) -> bool:
    try:
        uuid.UUID(reference)
    except ValueError:
        return False
    return True


def _by_name(api: Api, path: str, what: str, name: str) -> str:
    found: list[Any] = api.every(path, {"filter[name][eq]": name})
    if not found:
        raise ClientError(f"no {what} named {name!r}", Exit.NOT_FOUND)
    if len(found) > 1:
        ids = ", ".join(str(item["id"]) for item in found)
        raise ClientError(f"{len(found)} {what}s are named {name!r}: give an id ({ids})", Exit.BAD_INPUT)
    return str(found[0]["id"])


def account_id(api: Api, reference: str) -> str:
    return reference if is_id(reference) else _by_name(api, ACCOUNTS, "system account", reference)


def team_id(api: Api, reference: str) -> str:
    return reference if is_id(reference) else _by_name(api, TEAMS, "team", reference)


def tokens_path(account: str) -> str:
    return f"{ACCOUNTS}/{account}/access-tokens"


def token_id(api: Api, account: str, reference: str) -> str:
    return reference if is_id(reference) else _by_name(api, tokens_path(account), "access token", reference)
