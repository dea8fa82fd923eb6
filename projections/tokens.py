"""Read model ``rm_tokens``: one row per access token ever issued (deleted ones are flagged, not removed).

Semantics per event (timestamps are the events' ``occurred_at``):

- ``token.issued``: a new ACTIVE row, ``secret_version`` 1; ``federated_credential_id`` for a token
  obtained by the OIDC token exchange (null for the others).
- ``token.renamed``: new name; bumps ``updated_at``.
- ``token.rotated``: ``secret_version`` of the event; bumps ``updated_at``.
- ``token.extended``: new ``expires_at`` (sliding expiry); bumps ``updated_at``.
- ``token.revoked``: state REVOKED, ``revoked_at``, ``revoke_reason``; bumps ``updated_at``.
- ``token.expired``: state EXPIRED, unless REVOKED (a revoked token stays revoked).
- ``token.deleted``: ``deleted = true`` (listings hide it); bumps ``updated_at``.
- ``token.used``: ``last_used_at = greatest(last_used_at, used_at)``, so late or repeated usage events
  never move it back.
- ``account.deleted`` does not touch tokens: each of the account's tokens gets its own
  ``token.revoked`` in the same append.

Usage and expiry bookkeeping (``used``, ``expired``) do not move ``updated_at``: it tracks changes a
client can see in the token's fields (``expires_at`` included, so an extension moves it).
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from events import Event, RecordedEvent
from events.tokens import (
    TokenDeleted,
    TokenExpired,
    TokenExtended,
    TokenIssued,
    TokenRenamed,
    TokenRevoked,
    TokenRotated,
    TokenUsed,
)
from projections.base import Statement
from projections.fold import TableRows
from projections.rows import later, uid

COLUMNS = (
    "token_id",
    "account_id",
    "name",
    "state",
    "created_at",
    "updated_at",
    "expires_at",
    "max_expires_at",
    "auto_extend_seconds",
    "scopes",
    "revoked_at",
    "revoke_reason",
    "last_used_at",
    "secret_version",
    "deleted",
    "federated_credential_id",
)
_ACCOUNT, _NAME, _STATE, _UPDATED, _EXPIRES = 1, 2, 3, 5, 6
_REVOKED_AT, _REASON, _LAST_USED, _SECRET_VERSION, _DELETED = 10, 11, 12, 13, 14

ACTIVE, REVOKED, EXPIRED = "ACTIVE", "REVOKED", "EXPIRED"

_INSERT = (
    "INSERT INTO {tokens} (token_id, account_id, name, state, created_at, updated_at, expires_at,"
    " max_expires_at, auto_extend_seconds, scopes, revoked_at, revoke_reason, last_used_at,"
    " secret_version, deleted, federated_credential_id)"
    " VALUES ($1, $2, $3, 'ACTIVE', $4, $4, $5, $6, $7, $8, NULL, NULL, NULL, 1, false, $9)"
    " ON CONFLICT (token_id) DO NOTHING"
)
_RENAME = "UPDATE {tokens} SET name = $2, updated_at = $3 WHERE token_id = $1"
_ROTATE = "UPDATE {tokens} SET secret_version = $2, updated_at = $3 WHERE token_id = $1"
_EXTEND = "UPDATE {tokens} SET expires_at = $2, updated_at = $3 WHERE token_id = $1"
_REVOKE = (
    "UPDATE {tokens} SET state = 'REVOKED', revoked_at = $2, revoke_reason = $3, updated_at = $2"
    " WHERE token_id = $1"
)
_EXPIRE = "UPDATE {tokens} SET state = 'EXPIRED' WHERE token_id = $1 AND state <> 'REVOKED'"
_DELETE = "UPDATE {tokens} SET deleted = true, updated_at = $2 WHERE token_id = $1"
_USED = "UPDATE {tokens} SET last_used_at = greatest(last_used_at, $2) WHERE token_id = $1"


def _federated_credential(body: TokenIssued) -> str | None:
    return None if body.federated is None else uid(body.federated.credential_id)


class TokensProjection:
    name: str = "tokens"
    version: int = 3  # 2: token.extended moves updated_at; 3: federated_credential_id
    tables: Sequence[str] = ("tokens",)

    def ddl(self) -> Sequence[str]:
        return (
            "CREATE TABLE {tokens} ("
            " token_id uuid PRIMARY KEY,"
            " account_id uuid NOT NULL,"
            " name text NOT NULL,"
            " state text NOT NULL,"
            " created_at timestamptz NOT NULL,"
            " updated_at timestamptz NOT NULL,"
            " expires_at timestamptz,"
            " max_expires_at timestamptz,"
            " auto_extend_seconds int,"
            " scopes text[],"
            " revoked_at timestamptz,"
            " revoke_reason text,"
            " last_used_at timestamptz,"
            " secret_version int NOT NULL,"
            " deleted bool NOT NULL,"
            " federated_credential_id uuid)",
            "CREATE INDEX {tokens}_account ON {tokens} (account_id, created_at)",
            "CREATE INDEX {tokens}_active_expiry ON {tokens} (expires_at) WHERE state = 'ACTIVE'",
        )

    def apply(self, event: RecordedEvent) -> Sequence[Statement]:
        body = event.event
        at = event.metadata.occurred_at
        match body:
            case TokenUsed():
                return (Statement(_USED, (uid(body.token_id), body.used_at)),)
            case TokenIssued():
                args = (
                    uid(body.token_id),
                    uid(body.account_id),
                    body.name,
                    at,
                    body.expires_at,
                    body.max_expires_at,
                    body.auto_extend_seconds,
                    body.scopes,
                    _federated_credential(body),
                )
                return (Statement(_INSERT, args),)
            case TokenRenamed():
                return (Statement(_RENAME, (uid(body.token_id), body.name, at)),)
            case TokenRotated():
                return (Statement(_ROTATE, (uid(body.token_id), body.secret_version, at)),)
            case TokenExtended():
                return (Statement(_EXTEND, (uid(body.token_id), body.expires_at, at)),)
            case TokenRevoked():
                return (Statement(_REVOKE, (uid(body.token_id), at, body.reason)),)
            case TokenExpired():
                return (Statement(_EXPIRE, (uid(body.token_id),)),)
            case TokenDeleted():
                return (Statement(_DELETE, (uid(body.token_id), at)),)
        return ()

    def fold(self) -> "TokensFold":
        return TokensFold()


class TokensFold:
    """``TokensProjection.apply`` over a dict of rows (lists in ``COLUMNS`` order)."""

    def __init__(self) -> None:
        self._rows: dict[str, list[Any]] = {}
        self._handlers: dict[type[Event], Callable[[Any, RecordedEvent], None]] = {
            TokenUsed: self._used,
            TokenIssued: self._issued,
            TokenRenamed: self._renamed,
            TokenRotated: self._rotated,
            TokenExtended: self._extended,
            TokenRevoked: self._revoked,
            TokenExpired: self._expired,
            TokenDeleted: self._deleted,
        }

    def apply(self, event: RecordedEvent) -> None:
        handler = self._handlers.get(type(event.event))
        if handler is not None:
            handler(event.event, event)

    def tables(self) -> Mapping[str, TableRows]:
        return {"tokens": TableRows(COLUMNS, (tuple(row) for row in self._rows.values()))}

    def __len__(self) -> int:
        return len(self._rows)

    def _used(self, body: TokenUsed, _event: RecordedEvent) -> None:
        row = self._rows.get(uid(body.token_id))
        if row is not None:
            row[_LAST_USED] = later(row[_LAST_USED], body.used_at)

    def _issued(self, body: TokenIssued, event: RecordedEvent) -> None:
        token_id = uid(body.token_id)
        account_id = uid(body.account_id)
        if token_id in self._rows:
            return
        at = event.metadata.occurred_at
        self._rows[token_id] = [
            token_id,
            account_id,
            body.name,
            ACTIVE,
            at,
            at,
            body.expires_at,
            body.max_expires_at,
            body.auto_extend_seconds,
            None if body.scopes is None else list(body.scopes),
            None,
            None,
            None,
            1,
            False,
            _federated_credential(body),
        ]

    def _renamed(self, body: TokenRenamed, event: RecordedEvent) -> None:
        row = self._rows.get(uid(body.token_id))
        if row is not None:
            row[_NAME] = body.name
            row[_UPDATED] = event.metadata.occurred_at

    def _rotated(self, body: TokenRotated, event: RecordedEvent) -> None:
        row = self._rows.get(uid(body.token_id))
        if row is not None:
            row[_SECRET_VERSION] = body.secret_version
            row[_UPDATED] = event.metadata.occurred_at

    def _extended(self, body: TokenExtended, event: RecordedEvent) -> None:
        row = self._rows.get(uid(body.token_id))
        if row is not None:
            row[_EXPIRES] = body.expires_at
            row[_UPDATED] = event.metadata.occurred_at

    def _revoked(self, body: TokenRevoked, event: RecordedEvent) -> None:
        row = self._rows.get(uid(body.token_id))
        if row is not None:
            at = event.metadata.occurred_at
            row[_STATE] = REVOKED
            row[_REVOKED_AT] = at
            row[_REASON] = body.reason
            row[_UPDATED] = at

    def _expired(self, body: TokenExpired, _event: RecordedEvent) -> None:
        row = self._rows.get(uid(body.token_id))
        if row is not None and row[_STATE] != REVOKED:
            row[_STATE] = EXPIRED

    def _deleted(self, body: TokenDeleted, event: RecordedEvent) -> None:
        row = self._rows.get(uid(body.token_id))
        if row is not None:
            row[_DELETED] = True
            row[_UPDATED] = event.metadata.occurred_at
