"""Read model ``rm_federated_credentials``: the federated credentials of live system accounts.

``account.federated_credential_created`` adds a row, ``..._updated`` replaces its definition (the
event carries all of it) and moves ``updated_at``, ``..._deleted`` removes it, and ``account.deleted``
removes every row of the account. ``conditions`` is the JSON of the event's conditions.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec

from events import Event, RecordedEvent
from events.accounts import AccountDeleted
from events.federation import (
    FederatedCredentialCreated,
    FederatedCredentialDeleted,
    FederatedCredentialUpdated,
)
from projections.base import Statement
from projections.fold import TableRows
from projections.rows import uid

COLUMNS = (
    "credential_id",
    "account_id",
    "name",
    "issuer",
    "audiences",
    "subject",
    "conditions",
    "required_claims",
    "max_token_lifetime_seconds",
    "preset",
    "created_at",
    "updated_at",
)
_CREATED_AT = 10

_INSERT = (
    "INSERT INTO {federated_credentials} (credential_id, account_id, name, issuer, audiences, subject,"
    " conditions, required_claims, max_token_lifetime_seconds, preset, created_at, updated_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (credential_id) DO NOTHING"
)
_UPDATE = (
    "UPDATE {federated_credentials} SET account_id = $2, name = $3, issuer = $4, audiences = $5,"
    " subject = $6, conditions = $7, required_claims = $8, max_token_lifetime_seconds = $9,"
    " preset = $10, updated_at = $11 WHERE credential_id = $1"
)
_DELETE = "DELETE FROM {federated_credentials} WHERE credential_id = $1"
_DELETE_ACCOUNT = "DELETE FROM {federated_credentials} WHERE account_id = $1"


def _row(
    body: FederatedCredentialCreated | FederatedCredentialUpdated, event: RecordedEvent
) -> tuple[Any, ...]:
    at = event.metadata.occurred_at
    return (
        uid(body.credential_id),
        uid(body.account_id),
        body.name,
        body.issuer,
        list(body.audiences),
        body.subject,
        msgspec.json.encode(body.conditions).decode(),
        list(body.required_claims),
        body.max_token_lifetime_seconds,
        body.preset,
        at,
        at,
    )


class FederatedCredentialsProjection:
    name: str = "federated_credentials"
    version: int = 1
    tables: Sequence[str] = ("federated_credentials",)

    def ddl(self) -> Sequence[str]:
        return (
            "CREATE TABLE {federated_credentials} ("
            " credential_id uuid PRIMARY KEY,"
            " account_id uuid NOT NULL,"
            " name text NOT NULL,"
            " issuer text NOT NULL,"
            " audiences text[] NOT NULL,"
            " subject text NOT NULL,"
            " conditions jsonb NOT NULL,"
            " required_claims text[] NOT NULL,"
            " max_token_lifetime_seconds integer NOT NULL,"
            " preset text,"
            " created_at timestamptz NOT NULL,"
            " updated_at timestamptz NOT NULL)",
            "CREATE INDEX {federated_credentials}_account ON {federated_credentials} (account_id)",
        )

    def apply(self, event: RecordedEvent) -> Sequence[Statement]:
        body = event.event
        match body:
            case FederatedCredentialCreated():
                return (Statement(_INSERT, _row(body, event)),)
            case FederatedCredentialUpdated():
                row = _row(body, event)
                return (Statement(_UPDATE, (*row[:_CREATED_AT], row[-1])),)
            case FederatedCredentialDeleted():
                return (Statement(_DELETE, (uid(body.credential_id),)),)
            case AccountDeleted():
                return (Statement(_DELETE_ACCOUNT, (uid(body.account_id),)),)
        return ()

    def fold(self) -> "FederatedCredentialsFold":
        return FederatedCredentialsFold()


class FederatedCredentialsFold:
    """``FederatedCredentialsProjection.apply`` over a dict of rows."""

    def __init__(self) -> None:
        self._rows: dict[str, tuple[Any, ...]] = {}
        self._handlers: dict[type[Event], Callable[[Any, RecordedEvent], None]] = {
            FederatedCredentialCreated: self._created,
            FederatedCredentialUpdated: self._updated,
            FederatedCredentialDeleted: self._deleted,
            AccountDeleted: self._account_deleted,
        }

    def apply(self, event: RecordedEvent) -> None:
        handler = self._handlers.get(type(event.event))
        if handler is not None:
            handler(event.event, event)

    def tables(self) -> Mapping[str, TableRows]:
        return {"federated_credentials": TableRows(COLUMNS, self._rows.values())}

    def __len__(self) -> int:
        return len(self._rows)

    def _created(self, body: FederatedCredentialCreated, event: RecordedEvent) -> None:
        row = _row(body, event)
        self._rows.setdefault(row[0], row)

    def _updated(self, body: FederatedCredentialUpdated, event: RecordedEvent) -> None:
        row = _row(body, event)
        earlier = self._rows.get(row[0])
        if earlier is not None:
            self._rows[row[0]] = (*row[:_CREATED_AT], earlier[_CREATED_AT], row[-1])

    def _deleted(self, body: FederatedCredentialDeleted, _event: RecordedEvent) -> None:
        self._rows.pop(uid(body.credential_id), None)

    def _account_deleted(self, body: AccountDeleted, _event: RecordedEvent) -> None:
        account = uid(body.account_id)
        for credential_id in [k for k, row in self._rows.items() if row[1] == account]:
            del self._rows[credential_id]
