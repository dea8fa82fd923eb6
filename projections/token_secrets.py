"""Read model ``rm_token_secrets``: what the token verifier looks a presented secret up by.

One row per secret hash. ``token.issued`` adds version 1; ``token.rotated`` adds the new version and
ends the previous version's validity at ``previous_valid_until`` (when the event has none, the old
secret stopped working at once: ``valid_until`` is the rotation's ``occurred_at``);
``token.secret_retired`` marks a version retired. Only the latest rotation's previous version can be
in a grace period: the verifier refuses any secret two or more versions behind the token's current
one, whatever its row says. Whether the token itself is usable (revoked, expired,
deleted) is ``rm_tokens``' business: the verifier reads both.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from events import Event, RecordedEvent
from events.tokens import TokenIssued, TokenRotated, TokenSecretRetired
from projections.base import Statement
from projections.fold import TableRows
from projections.rows import uid

COLUMNS = ("secret_hash", "token_id", "secret_version", "valid_until", "retired")
_VALID_UNTIL, _RETIRED = 3, 4

_INSERT = (
    "INSERT INTO {token_secrets} (secret_hash, token_id, secret_version, valid_until, retired)"
    " VALUES ($1, $2, $3, NULL, false) ON CONFLICT (secret_hash) DO NOTHING"
)
_END_VALIDITY = "UPDATE {token_secrets} SET valid_until = $3 WHERE token_id = $1 AND secret_version = $2"
_RETIRE = "UPDATE {token_secrets} SET retired = true WHERE token_id = $1 AND secret_version = $2"


class TokenSecretsProjection:
    name: str = "token_secrets"
    version: int = 1
    tables: Sequence[str] = ("token_secrets",)

    def ddl(self) -> Sequence[str]:
        return (
            "CREATE TABLE {token_secrets} ("
            " secret_hash text PRIMARY KEY,"
            " token_id uuid NOT NULL,"
            " secret_version int NOT NULL,"
            " valid_until timestamptz,"
            " retired bool NOT NULL)",
            "CREATE INDEX {token_secrets}_token ON {token_secrets} (token_id, secret_version)",
        )

    def apply(self, event: RecordedEvent) -> Sequence[Statement]:
        body = event.event
        match body:
            case TokenIssued():
                return (Statement(_INSERT, (body.secret_hash, uid(body.token_id), 1)),)
            case TokenRotated():
                token_id = uid(body.token_id)
                until = body.previous_valid_until or event.metadata.occurred_at
                return (
                    Statement(_INSERT, (body.secret_hash, token_id, body.secret_version)),
                    Statement(_END_VALIDITY, (token_id, body.secret_version - 1, until)),
                )
            case TokenSecretRetired():
                return (Statement(_RETIRE, (uid(body.token_id), body.secret_version)),)
        return ()

    def fold(self) -> "TokenSecretsFold":
        return TokenSecretsFold()


class TokenSecretsFold:
    """``TokenSecretsProjection.apply`` over a dict of rows, with an index by (token, version)."""

    def __init__(self) -> None:
        self._rows: dict[str, list[Any]] = {}
        self._by_version: dict[tuple[str, int], list[list[Any]]] = {}
        self._handlers: dict[type[Event], Callable[[Any, RecordedEvent], None]] = {
            TokenIssued: self._issued,
            TokenRotated: self._rotated,
            TokenSecretRetired: self._retired,
        }

    def apply(self, event: RecordedEvent) -> None:
        handler = self._handlers.get(type(event.event))
        if handler is not None:
            handler(event.event, event)

    def tables(self) -> Mapping[str, TableRows]:
        return {"token_secrets": TableRows(COLUMNS, (tuple(row) for row in self._rows.values()))}

    def __len__(self) -> int:
        return len(self._rows)

    def _insert(self, secret_hash: str, token_id: str, version: int) -> None:
        if secret_hash not in self._rows:
            row: list[Any] = [secret_hash, token_id, version, None, False]
            self._rows[secret_hash] = row
            self._by_version.setdefault((token_id, version), []).append(row)

    def _issued(self, body: TokenIssued, _event: RecordedEvent) -> None:
        self._insert(body.secret_hash, uid(body.token_id), 1)

    def _rotated(self, body: TokenRotated, event: RecordedEvent) -> None:
        token_id = uid(body.token_id)
        self._insert(body.secret_hash, token_id, body.secret_version)
        until = body.previous_valid_until or event.metadata.occurred_at
        for row in self._by_version.get((token_id, body.secret_version - 1), ()):
            row[_VALID_UNTIL] = until

    def _retired(self, body: TokenSecretRetired, _event: RecordedEvent) -> None:
        for row in self._by_version.get((uid(body.token_id), body.secret_version), ()):
            row[_RETIRED] = True
