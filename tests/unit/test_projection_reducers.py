"""The read models' reducers without a database: which statements an event produces, with which
arguments, and what the in-memory folds make of short histories. (That the folds and the statements
agree row for row is proven against PostgreSQL in tests/integration/test_projection_properties.py.)"""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from events import Event, Metadata, RecordedEvent
from events.accounts import (
    AccountCreated,
    AccountDeleted,
    AccountDisabled,
    AccountExpired,
    AccountExpiringSoon,
    AccountUpdated,
)
from events.federation import (
    ClaimCondition,
    FederatedCredentialCreated,
    FederatedCredentialDeleted,
    FederatedCredentialUpdated,
)
from events.organization import OrganizationCreated
from events.teams import TeamCreated, TeamDeleted, TeamMemberAdded, TeamRoleAssigned
from events.tokens import (
    TokenExpired,
    TokenExtended,
    TokenIssued,
    TokenRevoked,
    TokenRotated,
    TokenSecretRetired,
    TokenUsed,
)
from projections.accounts import AccountsProjection
from projections.base import Projection
from projections.catalogue import ALL_PROJECTIONS
from projections.federated_credentials import FederatedCredentialsProjection
from projections.fold import Foldable
from projections.role_assignments import RoleAssignmentsProjection
from projections.teams import TeamsProjection
from projections.token_secrets import TokenSecretsProjection
from projections.tokens import TokensProjection

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ACCOUNT = "0b9d5c36-3b0c-4a57-9d1c-8f2b8f1d0a01"
TOKEN = "5f0c2d44-1f7e-4b7a-9f55-2d3c4b5a6e02"
TEAM = "7c1e9a20-52d1-4c8e-b1b4-0e9f8d7c6b03"
ASSIGNMENT = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c05"
ENTITY = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b06"

_position = 0


def recorded(event: Event, at: datetime = T0) -> RecordedEvent:
    global _position
    _position += 1
    return RecordedEvent(
        global_position=_position,
        tx_id=1000 + _position,
        stream_id="s",
        stream_version=1,
        event_id=uuid.uuid4(),
        event=event,
        metadata=Metadata(occurred_at=at),
        recorded_at=at + timedelta(seconds=1),  # never used by a reducer
    )


def rows(projection: Projection, events: list[RecordedEvent], table: str) -> list[tuple[Any, ...]]:
    assert isinstance(projection, Foldable)
    fold = projection.fold()
    for event in events:
        fold.apply(event)
    return sorted(fold.tables()[table].rows)


def issued(**changes: Any) -> TokenIssued:
    fields: dict[str, Any] = {
        "token_id": TOKEN,
        "account_id": ACCOUNT,
        "name": "ci",
        "secret_hash": "h1",
        "expires_at": T0 + timedelta(days=30),
    }
    fields.update(changes)
    return TokenIssued(**fields)


def test_catalogue_names_tables_and_versions_are_sound() -> None:
    names = [p.name for p in ALL_PROJECTIONS]
    tables = [t for p in ALL_PROJECTIONS for t in p.tables]
    assert len(set(names)) == len(names)
    assert sorted(tables) == sorted(
        [
            "accounts",
            "tokens",
            "token_secrets",
            "role_assignments",
            "federated_credentials",
            "teams",
            "team_members",
            "token_deadlines",
            "rotation_periods",
            "account_deadlines",
        ]
    )
    for projection in ALL_PROJECTIONS:
        assert projection.version >= 1
        assert isinstance(projection, Foldable)
        ddl = " ".join(projection.ddl())
        for table in projection.tables:
            assert f"CREATE TABLE {{{table}}}" in ddl


@pytest.mark.parametrize("projection", ALL_PROJECTIONS, ids=lambda p: p.name)
def test_events_of_other_kinds_produce_nothing(projection: Projection) -> None:
    event = recorded(OrganizationCreated(organization_id=str(uuid.uuid4()), name="org"))
    assert list(projection.apply(event)) == []


def test_account_created_uses_the_event_time_not_now() -> None:
    (statement,) = AccountsProjection().apply(
        recorded(AccountCreated(account_id=ACCOUNT, name="bot", description="d", konnect_managed=True))
    )
    assert "INSERT INTO {accounts}" in statement.sql
    assert "ON CONFLICT (account_id) DO NOTHING" in statement.sql
    assert statement.args == (ACCOUNT, "bot", "d", True, T0, None, None)


def test_ids_are_normalised_and_non_uuids_are_refused() -> None:
    (statement,) = AccountsProjection().apply(recorded(AccountDeleted(account_id=ACCOUNT.upper())))
    assert statement.args == (ACCOUNT,)
    with pytest.raises(ValueError, match="badly formed"):
        AccountsProjection().apply(recorded(AccountDeleted(account_id="not-a-uuid")))


def test_account_fold_follows_updates_and_removes_deleted_accounts() -> None:
    later = T0 + timedelta(hours=1)
    history = [
        recorded(AccountCreated(account_id=ACCOUNT, name="bot")),
        recorded(AccountUpdated(account_id=ACCOUNT, name="bot2", description="x"), later),
        recorded(AccountDisabled(account_id=ACCOUNT), later + timedelta(hours=1)),
    ]
    assert rows(AccountsProjection(), history, "accounts") == [
        (ACCOUNT, "bot2", "x", False, False, T0, later + timedelta(hours=1), None, None)
    ]
    history.append(recorded(AccountDeleted(account_id=ACCOUNT)))
    assert rows(AccountsProjection(), history, "accounts") == []


def test_an_account_lifetime_shows_and_its_expiry_disables_the_account() -> None:
    lifetime, renewed = T0 + timedelta(days=365), T0 + timedelta(days=400)
    expired_at = lifetime + timedelta(seconds=2)
    history = [
        recorded(AccountCreated(account_id=ACCOUNT, name="bot", expires_at=lifetime)),
        recorded(AccountExpiringSoon(account_id=ACCOUNT, expires_at=lifetime, lead_seconds=86400), lifetime),
        recorded(AccountExpired(account_id=ACCOUNT, expires_at=lifetime), expired_at),
    ]
    assert rows(AccountsProjection(), history, "accounts") == [
        (ACCOUNT, "bot", "", False, False, T0, expired_at, None, lifetime)
    ]
    (statement,) = AccountsProjection().apply(history[2])
    assert statement.args == (ACCOUNT, False, expired_at)
    assert list(AccountsProjection().apply(history[1])) == []
    history.append(
        recorded(AccountUpdated(account_id=ACCOUNT, name="bot", description="", expires_at=renewed))
    )
    ((*_, shown),) = rows(AccountsProjection(), history, "accounts")
    assert shown == renewed


def test_token_used_keeps_the_latest_use_whatever_the_order() -> None:
    (statement,) = TokensProjection().apply(
        recorded(TokenUsed(token_id=TOKEN, account_id=ACCOUNT, used_at=T0))
    )
    assert "greatest(last_used_at, $2)" in statement.sql
    history = [
        recorded(issued()),
        recorded(TokenUsed(token_id=TOKEN, account_id=ACCOUNT, used_at=T0 + timedelta(minutes=5))),
        recorded(TokenUsed(token_id=TOKEN, account_id=ACCOUNT, used_at=T0 + timedelta(minutes=1))),
    ]
    (row,) = rows(TokensProjection(), history, "tokens")
    assert row[12] == T0 + timedelta(minutes=5)


def test_an_extension_moves_expires_at_and_updated_at_a_use_does_not() -> None:
    extended_at, expires_at = T0 + timedelta(minutes=5), T0 + timedelta(days=2)
    history = [
        recorded(issued()),
        recorded(TokenExtended(token_id=TOKEN, account_id=ACCOUNT, expires_at=expires_at), extended_at),
        recorded(TokenUsed(token_id=TOKEN, account_id=ACCOUNT, used_at=T0 + timedelta(hours=1))),
    ]
    (row,) = rows(TokensProjection(), history, "tokens")
    assert (row[5], row[6]) == (extended_at, expires_at)
    (statement,) = TokensProjection().apply(history[1])
    assert statement.args[1:] == (expires_at, extended_at) and "updated_at = $3" in statement.sql


def test_token_expiry_never_overrides_a_revocation() -> None:
    revoked_at = T0 + timedelta(hours=2)
    history = [
        recorded(issued()),
        recorded(TokenRevoked(token_id=TOKEN, account_id=ACCOUNT, reason="leaked"), revoked_at),
        recorded(TokenExpired(token_id=TOKEN, account_id=ACCOUNT, expires_at=T0 + timedelta(days=30))),
    ]
    (row,) = rows(TokensProjection(), history, "tokens")
    assert (row[3], row[10], row[11], row[5]) == ("REVOKED", revoked_at, "leaked", revoked_at)
    (statement,) = TokensProjection().apply(history[2])
    assert "state <> 'REVOKED'" in statement.sql


def test_events_for_missing_rows_are_harmless() -> None:
    history = [
        recorded(TokenUsed(token_id=TOKEN, account_id=ACCOUNT, used_at=T0)),
        recorded(TokenRevoked(token_id=TOKEN, account_id=ACCOUNT, reason="x")),
        recorded(TokenSecretRetired(token_id=TOKEN, account_id=ACCOUNT, secret_version=1)),
        recorded(TeamDeleted(team_id=TEAM)),
        recorded(AccountDeleted(account_id=ACCOUNT)),
    ]
    for projection in ALL_PROJECTIONS:
        for table in projection.tables:
            assert rows(projection, history, table) == []


def test_rotation_ends_the_previous_secret_at_its_grace_or_at_once() -> None:
    grace = T0 + timedelta(hours=1)
    rotated_at = T0 + timedelta(minutes=10)
    second_rotation = T0 + timedelta(minutes=20)
    history = [
        recorded(issued(secret_hash="h1")),
        recorded(
            TokenRotated(
                token_id=TOKEN,
                account_id=ACCOUNT,
                secret_hash="h2",
                secret_version=2,
                previous_valid_until=grace,
            ),
            rotated_at,
        ),
        recorded(
            TokenRotated(token_id=TOKEN, account_id=ACCOUNT, secret_hash="h3", secret_version=3),
            second_rotation,
        ),
        recorded(TokenSecretRetired(token_id=TOKEN, account_id=ACCOUNT, secret_version=1)),
    ]
    assert rows(TokenSecretsProjection(), history, "token_secrets") == [
        ("h1", TOKEN, 1, grace, True),
        ("h2", TOKEN, 2, second_rotation, False),
        ("h3", TOKEN, 3, None, False),
    ]
    _insert, end = TokenSecretsProjection().apply(history[2])
    assert end.args == (TOKEN, 2, second_rotation)


def test_team_deletion_removes_members_and_team_roles() -> None:
    history = [
        recorded(TeamCreated(team_id=TEAM, name="ops", labels={"b": "2", "a": "1"})),
        recorded(TeamMemberAdded(team_id=TEAM, account_id=ACCOUNT)),
        recorded(
            TeamRoleAssigned(
                team_id=TEAM,
                assignment_id=ASSIGNMENT,
                role_name="Admin",
                entity_id=ENTITY,
                entity_type_name="Control Planes",
                entity_region="eu",
            )
        ),
    ]
    (team,) = rows(TeamsProjection(), history, "teams")
    assert team[3] == '{"a":"1","b":"2"}'
    assert rows(TeamsProjection(), history, "team_members") == [(TEAM, ACCOUNT, T0)]
    assert len(rows(RoleAssignmentsProjection(), history, "role_assignments")) == 1
    history.append(recorded(TeamDeleted(team_id=TEAM)))
    assert rows(TeamsProjection(), history, "teams") == []
    assert rows(TeamsProjection(), history, "team_members") == []
    assert rows(RoleAssignmentsProjection(), history, "role_assignments") == []
    statements = TeamsProjection().apply(history[-1])
    assert [s.sql.split(" WHERE")[0] for s in statements] == [
        "DELETE FROM {team_members}",
        "DELETE FROM {teams}",
    ]


def test_account_deletion_removes_memberships_and_roles_but_not_tokens() -> None:
    history = [
        recorded(issued()),
        recorded(TeamMemberAdded(team_id=TEAM, account_id=ACCOUNT)),
        recorded(AccountDeleted(account_id=ACCOUNT)),
    ]
    assert rows(TeamsProjection(), history, "team_members") == []
    (token,) = rows(TokensProjection(), history, "tokens")
    assert token[3] == "ACTIVE"
    assert list(TokensProjection().apply(history[-1])) == []


def test_federated_credentials_follow_their_definitions_and_end_with_the_account() -> None:
    credential = str(uuid.uuid4())
    definition: dict[str, Any] = {
        "account_id": ACCOUNT,
        "credential_id": credential,
        "name": "deploy",
        "issuer": "https://issuer.example",
        "audiences": ("urn:tokenledger:local",),
        "subject": "repo:acme/*",
        "conditions": (ClaimCondition(claim="environment", operator="one_of", values=("prod", "staging")),),
        "required_claims": ("repository_owner_id",),
        "max_token_lifetime_seconds": 900,
    }
    history = [recorded(FederatedCredentialCreated(**definition))]
    (row,) = rows(FederatedCredentialsProjection(), history, "federated_credentials")
    assert row[2:10] == (
        "deploy",
        "https://issuer.example",
        ["urn:tokenledger:local"],
        "repo:acme/*",
        '[{"claim":"environment","operator":"one_of","values":["prod","staging"]}]',
        ["repository_owner_id"],
        900,
        None,
    )
    later = T0 + timedelta(minutes=5)
    history.append(recorded(FederatedCredentialUpdated(**{**definition, "subject": "repo:acme/x"}), later))
    (row,) = rows(FederatedCredentialsProjection(), history, "federated_credentials")
    assert (row[5], row[10], row[11]) == ("repo:acme/x", T0, later)
    deleted = [*history, recorded(FederatedCredentialDeleted(account_id=ACCOUNT, credential_id=credential))]
    assert rows(FederatedCredentialsProjection(), deleted, "federated_credentials") == []
    gone = [*history, recorded(AccountDeleted(account_id=ACCOUNT))]
    assert rows(FederatedCredentialsProjection(), gone, "federated_credentials") == []
