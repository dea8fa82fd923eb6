"""Read model ``rm_accounts``: one row per system account that exists; a deleted account's row is removed.

``updated_at`` moves with every change an API client can see (name, description, enabled, the
lifetime ``expires_at``). ``account.expired`` disables the account (and moves ``updated_at``);
``account.expiring_soon`` changes nothing here. Timestamps are the events' ``occurred_at``, so a
rebuild writes the same rows as the live projection did.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from events import Event, RecordedEvent
from events.accounts import (
    AccountCreated,
    AccountDeleted,
    AccountDisabled,
    AccountEnabled,
    AccountExpired,
    AccountUpdated,
)
from projections.base import Statement
from projections.fold import TableRows
from projections.rows import uid

COLUMNS = (
    "account_id",
    "name",
    "description",
    "konnect_managed",
    "enabled",
    "created_at",
    "updated_at",
    "rotation_period_seconds",
    "expires_at",
)

_INSERT = (
    "INSERT INTO {accounts} (account_id, name, description, konnect_managed, enabled, created_at,"
    " updated_at, rotation_period_seconds, expires_at) VALUES ($1, $2, $3, $4, true, $5, $5, $6, $7)"
    " ON CONFLICT (account_id) DO NOTHING"
)
_UPDATE = (
    "UPDATE {accounts} SET name = $2, description = $3, updated_at = $4, rotation_period_seconds = $5,"
    " expires_at = $6 WHERE account_id = $1"
)
_SET_ENABLED = "UPDATE {accounts} SET enabled = $2, updated_at = $3 WHERE account_id = $1"
_DELETE = "DELETE FROM {accounts} WHERE account_id = $1"


class AccountsProjection:
    name: str = "accounts"
    version: int = 3  # 2: rotation_period_seconds; 3: expires_at, account.expired
    tables: Sequence[str] = ("accounts",)

    def ddl(self) -> Sequence[str]:
        return (
            "CREATE TABLE {accounts} ("
            " account_id uuid PRIMARY KEY,"
            " name text NOT NULL,"
            " description text NOT NULL,"
            " konnect_managed bool NOT NULL,"
            " enabled bool NOT NULL,"
            " created_at timestamptz NOT NULL,"
            " updated_at timestamptz NOT NULL,"
            " rotation_period_seconds bigint,"
            " expires_at timestamptz)",
            "CREATE INDEX {accounts}_name ON {accounts} (name)",
            "CREATE INDEX {accounts}_lower_name ON {accounts} (lower(name))",
            "CREATE INDEX {accounts}_created ON {accounts} (created_at, account_id)",
        )

    def apply(self, event: RecordedEvent) -> Sequence[Statement]:
        body = event.event
        at = event.metadata.occurred_at
        match body:
            case AccountCreated():
                args = (
                    uid(body.account_id),
                    body.name,
                    body.description,
                    body.konnect_managed,
                    at,
                    body.rotation_period_seconds,
                    body.expires_at,
                )
                return (Statement(_INSERT, args),)
            case AccountUpdated():
                update = (
                    uid(body.account_id),
                    body.name,
                    body.description,
                    at,
                    body.rotation_period_seconds,
                    body.expires_at,
                )
                return (Statement(_UPDATE, update),)
            case AccountDisabled() | AccountExpired():
                return (Statement(_SET_ENABLED, (uid(body.account_id), False, at)),)
            case AccountEnabled():
                return (Statement(_SET_ENABLED, (uid(body.account_id), True, at)),)
            case AccountDeleted():
                return (Statement(_DELETE, (uid(body.account_id),)),)
        return ()

    def fold(self) -> "AccountsFold":
        return AccountsFold()


class AccountsFold:
    """``AccountsProjection.apply`` over a dict of rows (lists in ``COLUMNS`` order)."""

    def __init__(self) -> None:
        self._rows: dict[str, list[Any]] = {}
        self._handlers: dict[type[Event], Callable[[Any, RecordedEvent], None]] = {
            AccountCreated: self._created,
            AccountUpdated: self._updated,
            AccountDisabled: self._disabled,
            AccountEnabled: self._enabled,
            AccountExpired: self._disabled,
            AccountDeleted: self._deleted,
        }

    def apply(self, event: RecordedEvent) -> None:
        handler = self._handlers.get(type(event.event))
        if handler is not None:
            handler(event.event, event)

    def tables(self) -> Mapping[str, TableRows]:
        return {"accounts": TableRows(COLUMNS, (tuple(row) for row in self._rows.values()))}

    def __len__(self) -> int:
        return len(self._rows)

    def _created(self, body: AccountCreated, event: RecordedEvent) -> None:
        account_id = uid(body.account_id)
        if account_id not in self._rows:
            at = event.metadata.occurred_at
            self._rows[account_id] = [
                account_id,
                body.name,
                body.description,
                body.konnect_managed,
                True,
                at,
                at,
                body.rotation_period_seconds,
                body.expires_at,
            ]

    def _updated(self, body: AccountUpdated, event: RecordedEvent) -> None:
        row = self._rows.get(uid(body.account_id))
        if row is not None:
            row[1] = body.name
            row[2] = body.description
            row[6] = event.metadata.occurred_at
            row[7] = body.rotation_period_seconds
            row[8] = body.expires_at

    def _set_enabled(self, account_id: str, enabled: bool, event: RecordedEvent) -> None:
        row = self._rows.get(uid(account_id))
        if row is not None:
            row[4] = enabled
            row[6] = event.metadata.occurred_at

    def _disabled(self, body: AccountDisabled | AccountExpired, event: RecordedEvent) -> None:
        self._set_enabled(body.account_id, False, event)

    def _enabled(self, body: AccountEnabled, event: RecordedEvent) -> None:
        self._set_enabled(body.account_id, True, event)

    def _deleted(self, body: AccountDeleted, _event: RecordedEvent) -> None:
        self._rows.pop(uid(body.account_id), None)
