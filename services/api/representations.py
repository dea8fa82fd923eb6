"""Write models and read-model rows as Konnect v3 JSON objects.

Every field of an object is always sent, a value that is absent as null: Konnect's documented token
responses carry ``expires_at`` and ``last_used_at`` whether or not the token expires or was used
(as its personal access tokens do, whose schema declares them nullable), a team's ``description``
is nullable in Konnect's schema, and our extensions (``revoked_at``, ``revoke_reason``, ``scopes``,
``auto_extend_seconds``, ``max_expires_at``, ``rotation_period_seconds``) follow the same rule, so a
client sees one shape per object. Extensions beyond Konnect are extra fields: Konnect's schemas
allow additional properties, so existing clients ignore them. Our OpenAPI document declares which
fields may be null.
"""

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from services.accounts.model import Account
from services.federation import FederatedCredential
from services.roles.assignment import RoleAssignment
from services.teams.model import Team
from services.tokens.model import Token


def timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _optional(value: datetime | None) -> str | None:
    return None if value is None else timestamp(value)


def account(state: Account, now: datetime) -> dict[str, Any]:
    """``enabled`` is false from the end of the account's lifetime on, as its tokens are refused
    then, before the scheduler has recorded ``account.expired``."""
    assert state.created_at is not None and state.updated_at is not None
    return {
        "id": state.account_id,
        "name": state.name,
        "description": state.description,
        "created_at": timestamp(state.created_at),
        "updated_at": timestamp(state.updated_at),
        "konnect_managed": state.konnect_managed,
        "enabled": state.enabled and not state.lapsed(now),
        "rotation_period_seconds": state.rotation_period_seconds,
        "expires_at": _optional(state.expires_at),
    }


def account_row(row: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    expires_at = row["expires_at"]
    return {
        "id": str(row["account_id"]),
        "name": row["name"],
        "description": row["description"],
        "created_at": timestamp(row["created_at"]),
        "updated_at": timestamp(row["updated_at"]),
        "konnect_managed": row["konnect_managed"],
        "enabled": row["enabled"] and (expires_at is None or expires_at > now),
        "rotation_period_seconds": row["rotation_period_seconds"],
        "expires_at": _optional(expires_at),
    }


def token(state: Token, now: datetime, last_used_at: datetime | None = None) -> dict[str, Any]:
    assert state.created_at is not None and state.updated_at is not None
    return {
        "id": state.token_id,
        "name": state.name,
        "created_at": timestamp(state.created_at),
        "updated_at": timestamp(state.updated_at),
        "expires_at": _optional(state.expires_at),
        "last_used_at": _optional(last_used_at),
        "state": state.state_at(now),
        "revoked_at": _optional(state.revoked_at),
        "revoke_reason": state.revoke_reason,
        "scopes": state.scopes,
        "auto_extend_seconds": state.auto_extend_seconds,
        "max_expires_at": _optional(state.max_expires_at),
        "federated_credential_id": state.federated.credential_id if state.federated is not None else None,
    }


def token_row(row: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    state = row["state"]
    expires_at = row["expires_at"]
    if state == "ACTIVE" and expires_at is not None and expires_at <= now:
        state = "EXPIRED"
    return {
        "id": str(row["token_id"]),
        "name": row["name"],
        "created_at": timestamp(row["created_at"]),
        "updated_at": timestamp(row["updated_at"]),
        "expires_at": _optional(expires_at),
        "last_used_at": _optional(row["last_used_at"]),
        "state": state,
        "revoked_at": _optional(row["revoked_at"]),
        "revoke_reason": row["revoke_reason"],
        "scopes": list(row["scopes"]) if row["scopes"] is not None else None,
        "auto_extend_seconds": row["auto_extend_seconds"],
        "max_expires_at": _optional(row["max_expires_at"]),
        "federated_credential_id": (
            str(row["federated_credential_id"]) if row["federated_credential_id"] is not None else None
        ),
    }


def assigned_role(grant: RoleAssignment) -> dict[str, Any]:
    return {
        "id": grant.assignment_id,
        "role_name": grant.role_name,
        "entity_id": grant.entity_id,
        "entity_type_name": grant.entity_type_name,
        "entity_region": grant.entity_region,
    }


def assigned_role_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["assignment_id"]),
        "role_name": row["role_name"],
        "entity_id": str(row["entity_id"]),
        "entity_type_name": row["entity_type_name"],
        "entity_region": row["entity_region"],
    }


def team(state: Team) -> dict[str, Any]:
    assert state.created_at is not None and state.updated_at is not None
    return {
        "id": state.team_id,
        "name": state.name,
        "description": state.description,
        "system_team": False,
        "labels": state.labels,
        "created_at": timestamp(state.created_at),
        "updated_at": timestamp(state.updated_at),
    }


def team_row(row: Mapping[str, Any]) -> dict[str, Any]:
    labels = row["labels"]
    return {
        "id": str(row["team_id"]),
        "name": row["name"],
        "description": row["description"] or None,  # team.created/updated carry "" for none
        "system_team": row["system_team"],
        "labels": labels if isinstance(labels, dict) else json.loads(labels),
        "created_at": timestamp(row["created_at"]),
        "updated_at": timestamp(row["updated_at"]),
    }


def federated_credential(state: FederatedCredential) -> dict[str, Any]:
    assert state.created_at is not None and state.updated_at is not None
    return {
        "id": state.credential_id,
        "name": state.name,
        "issuer": state.issuer,
        "audiences": list(state.audiences),
        "subject": state.subject,
        "conditions": [msgspec.structs.asdict(c) for c in state.conditions],
        "required_claims": list(state.required_claims),
        "max_token_lifetime": state.max_token_lifetime_seconds,
        "preset": state.preset,
        "created_at": timestamp(state.created_at),
        "updated_at": timestamp(state.updated_at),
    }


def federated_credential_row(row: Mapping[str, Any]) -> dict[str, Any]:
    conditions = row["conditions"]
    return {
        "id": str(row["credential_id"]),
        "name": row["name"],
        "issuer": row["issuer"],
        "audiences": list(row["audiences"]),
        "subject": row["subject"],
        "conditions": json.loads(conditions) if isinstance(conditions, str) else conditions,
        "required_claims": list(row["required_claims"]),
        "max_token_lifetime": row["max_token_lifetime_seconds"],
        "preset": row["preset"],
        "created_at": timestamp(row["created_at"]),
        "updated_at": timestamp(row["updated_at"]),
    }
