"""Read model ``rm_token_deadlines``: the due index the scheduler works from, one row per pending
deadline of a token, so that a scheduler tick reads the deadlines that are due and never scans tokens.

Rows, keyed by ``(token_id, kind, ref)``:

- ``expiry`` (``ref`` 0): ``due_at`` is the token's ``expires_at`` (moved by ``token.extended``).
  ``warned_lead`` is the shortest lead, in seconds, of the ``token.expiring_soon`` recorded for that
  ``expires_at`` (``UNWARNED`` until then; an extension resets it). The lead times are the
  deployment's, so warnings are not rows: the scheduler finds them by ``(warned_lead, due_at)``.
- ``rotation`` (``ref`` 0): ``anchor_at`` is when the current secret was issued; ``due_at`` is
  ``anchor_at`` plus the account's own rotation period, or NULL when the account has none (the
  scheduler then adds the deployment's period to ``anchor_at``). Removed by ``token.rotation_due``,
  put back by the next ``token.rotated``.
- ``retirement`` (``ref`` = the previous secret version): ``due_at`` is the end of a rotation's grace
  period (``previous_valid_until``). Removed by ``token.secret_retired``.

``token.expired``, ``token.revoked`` and ``token.deleted`` remove every row of the token (an
account's deletion revokes each of its tokens, so it needs nothing here). ``rm_rotation_periods``
holds the accounts that set their own rotation period, for the rows of tokens issued later.

``rm_account_deadlines`` holds one row per live account with a lifetime: ``expires_at``; ``due_at``,
the same instant while ``account.expired`` is pending for it and NULL once it is recorded (an
update that keeps that lifetime, e.g. a rename, does not make it due again; a new lifetime does);
``warned_lead`` as for tokens (reset by a new lifetime). A lifetime cleared, or the account deleted,
removes the row.
Timestamps come from the events (``occurred_at`` for anchors), so a rebuild writes the same rows.
"""

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from events import Event, RecordedEvent
from events.accounts import (
    AccountCreated,
    AccountDeleted,
    AccountExpired,
    AccountExpiringSoon,
    AccountUpdated,
)
from events.tokens import (
    TokenDeleted,
    TokenExpired,
    TokenExpiringSoon,
    TokenExtended,
    TokenIssued,
    TokenRevoked,
    TokenRotated,
    TokenRotationDue,
    TokenSecretRetired,
)
from projections.base import Statement
from projections.fold import TableRows
from projections.rows import uid

EXPIRY, ROTATION, RETIREMENT = "expiry", "rotation", "retirement"
UNWARNED = 2**31 - 1
"""``warned_lead`` of an expiry no warning was recorded for (longer than any lead)."""

COLUMNS = ("token_id", "kind", "ref", "account_id", "due_at", "anchor_at", "warned_lead")
PERIOD_COLUMNS = ("account_id", "seconds")
ACCOUNT_COLUMNS = ("account_id", "expires_at", "due_at", "warned_lead")
_DUE, _ANCHOR, _WARNED = 4, 5, 6

# SQL literals: 'expiry' and 'rotation' are EXPIRY and ROTATION, 2147483647 is UNWARNED.
_INSERT = (
    "INSERT INTO {token_deadlines} (token_id, kind, ref, account_id, due_at, anchor_at, warned_lead)"
    " VALUES ($1, $2, $3, $4, $5, NULL, 2147483647) ON CONFLICT (token_id, kind, ref) DO NOTHING"
)
_PUT_ROTATION = (
    "INSERT INTO {token_deadlines} (token_id, kind, ref, account_id, due_at, anchor_at, warned_lead)"
    " SELECT $1::uuid, 'rotation', 0, $2::uuid, $3::timestamptz + p.seconds * interval '1 second',"
    " $3::timestamptz, 2147483647"
    " FROM (SELECT 1) AS one LEFT JOIN {rotation_periods} p ON p.account_id = $2::uuid"
    " ON CONFLICT (token_id, kind, ref)"
    " DO UPDATE SET anchor_at = EXCLUDED.anchor_at, due_at = EXCLUDED.due_at"
)
_EXTEND = (
    "UPDATE {token_deadlines} SET due_at = $2, warned_lead = 2147483647"
    " WHERE token_id = $1 AND kind = 'expiry'"
)
_RECORD_WARNING = (
    "UPDATE {token_deadlines} SET warned_lead = least(warned_lead, $3)"
    " WHERE token_id = $1 AND kind = 'expiry' AND due_at = $2"
)
_REMOVE_KIND = "DELETE FROM {token_deadlines} WHERE token_id = $1 AND kind = $2 AND ref = $3"
_FORGET_DEADLINES = "DELETE FROM {token_deadlines} WHERE token_id = $1"
_SET_PERIOD = (
    "INSERT INTO {rotation_periods} (account_id, seconds) VALUES ($1, $2)"
    " ON CONFLICT (account_id) DO UPDATE SET seconds = EXCLUDED.seconds"
)
_CLEAR_PERIOD = "DELETE FROM {rotation_periods} WHERE account_id = $1"
_RESCHEDULE_ROTATIONS = (
    "UPDATE {token_deadlines} SET due_at = anchor_at + $2::int * interval '1 second'"
    " WHERE account_id = $1 AND kind = 'rotation'"
)
_UNSCHEDULE_ROTATIONS = (
    "UPDATE {token_deadlines} SET due_at = NULL WHERE account_id = $1 AND kind = 'rotation'"
)
_PUT_LIFETIME = (
    "INSERT INTO {account_deadlines} AS d (account_id, expires_at, due_at, warned_lead)"
    " VALUES ($1, $2, $2, 2147483647) ON CONFLICT (account_id) DO UPDATE SET"
    " expires_at = EXCLUDED.expires_at,"
    " due_at = CASE WHEN d.expires_at = EXCLUDED.expires_at THEN d.due_at ELSE EXCLUDED.due_at END,"
    " warned_lead = CASE WHEN d.expires_at = EXCLUDED.expires_at THEN d.warned_lead ELSE 2147483647 END"
)
_FORGET_LIFETIME = "DELETE FROM {account_deadlines} WHERE account_id = $1"
_LIFETIME_EXPIRED = "UPDATE {account_deadlines} SET due_at = NULL WHERE account_id = $1 AND expires_at = $2"
_LIFETIME_WARNED = (
    "UPDATE {account_deadlines} SET warned_lead = least(warned_lead, $3)"
    " WHERE account_id = $1 AND expires_at = $2"
)


class DeadlinesProjection:
    name: str = "token_deadlines"
    version: int = 2  # 2: account_deadlines
    tables: Sequence[str] = ("token_deadlines", "rotation_periods", "account_deadlines")

    def ddl(self) -> Sequence[str]:
        return (
            "CREATE TABLE {token_deadlines} ("
            " token_id uuid NOT NULL,"
            " kind text NOT NULL,"
            " ref int NOT NULL,"
            " account_id uuid NOT NULL,"
            " due_at timestamptz,"
            " anchor_at timestamptz,"
            " warned_lead int NOT NULL,"
            " PRIMARY KEY (token_id, kind, ref))",
            "CREATE INDEX {token_deadlines}_due ON {token_deadlines} (due_at) WHERE due_at IS NOT NULL",
            "CREATE INDEX {token_deadlines}_warnings ON {token_deadlines} (warned_lead, due_at)"
            " WHERE kind = 'expiry'",
            "CREATE INDEX {token_deadlines}_default_rotation ON {token_deadlines} (anchor_at)"
            " WHERE kind = 'rotation' AND due_at IS NULL",
            "CREATE INDEX {token_deadlines}_account ON {token_deadlines} (account_id)"
            " WHERE kind = 'rotation'",
            "CREATE TABLE {rotation_periods} (account_id uuid PRIMARY KEY, seconds int NOT NULL)",
            "CREATE TABLE {account_deadlines} ("
            " account_id uuid PRIMARY KEY,"
            " expires_at timestamptz NOT NULL,"
            " due_at timestamptz,"
            " warned_lead int NOT NULL)",
            "CREATE INDEX {account_deadlines}_due ON {account_deadlines} (due_at) WHERE due_at IS NOT NULL",
        )

    def apply(self, event: RecordedEvent) -> Sequence[Statement]:
        body = event.event
        match body:
            case TokenIssued():
                token_id, account_id = uid(body.token_id), uid(body.account_id)
                rotation = Statement(_PUT_ROTATION, (token_id, account_id, event.metadata.occurred_at))
                if body.expires_at is None:
                    return (rotation,)
                expiry = Statement(_INSERT, (token_id, EXPIRY, 0, account_id, body.expires_at))
                return (expiry, rotation)
            case TokenRotated():
                token_id, account_id = uid(body.token_id), uid(body.account_id)
                rotation = Statement(_PUT_ROTATION, (token_id, account_id, event.metadata.occurred_at))
                if body.previous_valid_until is None:
                    return (rotation,)
                args = (token_id, RETIREMENT, body.secret_version - 1, account_id, body.previous_valid_until)
                return (rotation, Statement(_INSERT, args))
            case TokenExtended():
                return (Statement(_EXTEND, (uid(body.token_id), body.expires_at)),)
            case TokenExpiringSoon():
                return (Statement(_RECORD_WARNING, (uid(body.token_id), body.expires_at, body.lead_seconds)),)
            case TokenRotationDue():
                return (Statement(_REMOVE_KIND, (uid(body.token_id), ROTATION, 0)),)
            case TokenSecretRetired():
                return (Statement(_REMOVE_KIND, (uid(body.token_id), RETIREMENT, body.secret_version)),)
            case TokenExpired() | TokenRevoked() | TokenDeleted():
                return (Statement(_FORGET_DEADLINES, (uid(body.token_id),)),)
            case AccountCreated() | AccountUpdated():
                return (*_rotation_period(body), *_lifetime(body))
            case AccountExpired():
                return (Statement(_LIFETIME_EXPIRED, (uid(body.account_id), body.expires_at)),)
            case AccountExpiringSoon():
                warned = (uid(body.account_id), body.expires_at, body.lead_seconds)
                return (Statement(_LIFETIME_WARNED, warned),)
            case AccountDeleted():
                account_id = uid(body.account_id)
                return (Statement(_CLEAR_PERIOD, (account_id,)), Statement(_FORGET_LIFETIME, (account_id,)))
        return ()

    def fold(self) -> "DeadlinesFold":
        return DeadlinesFold()


def _rotation_period(body: AccountCreated | AccountUpdated) -> tuple[Statement, ...]:
    account_id, seconds = uid(body.account_id), body.rotation_period_seconds
    if isinstance(body, AccountCreated):
        return () if seconds is None else (Statement(_SET_PERIOD, (account_id, seconds)),)
    if seconds is None:
        return (Statement(_CLEAR_PERIOD, (account_id,)), Statement(_UNSCHEDULE_ROTATIONS, (account_id,)))
    return (
        Statement(_SET_PERIOD, (account_id, seconds)),
        Statement(_RESCHEDULE_ROTATIONS, (account_id, seconds)),
    )


def _lifetime(body: AccountCreated | AccountUpdated) -> tuple[Statement, ...]:
    account_id = uid(body.account_id)
    if body.expires_at is not None:
        return (Statement(_PUT_LIFETIME, (account_id, body.expires_at)),)
    if isinstance(body, AccountUpdated):
        return (Statement(_FORGET_LIFETIME, (account_id,)),)
    return ()


_Key = tuple[str, str, int]


class DeadlinesFold:
    """``DeadlinesProjection.apply`` over dicts of rows, with indexes by token and by account."""

    def __init__(self) -> None:
        self._rows: dict[_Key, list[Any]] = {}
        self._periods: dict[str, int] = {}
        self._lifetimes: dict[str, list[Any]] = {}
        self._by_token: dict[str, set[_Key]] = {}
        self._rotations_by_account: dict[str, set[_Key]] = {}
        self._handlers: dict[type[Event], Callable[[Any, RecordedEvent], None]] = {
            TokenIssued: self._issued,
            TokenRotated: self._rotated,
            TokenExtended: self._extended,
            TokenExpiringSoon: self._warned,
            TokenRotationDue: self._rotation_due,
            TokenSecretRetired: self._retired,
            TokenExpired: self._token_gone,
            TokenRevoked: self._token_gone,
            TokenDeleted: self._token_gone,
            AccountCreated: self._account_created,
            AccountUpdated: self._account_updated,
            AccountExpired: self._account_expired,
            AccountExpiringSoon: self._account_warned,
            AccountDeleted: self._account_deleted,
        }

    def apply(self, event: RecordedEvent) -> None:
        handler = self._handlers.get(type(event.event))
        if handler is not None:
            handler(event.event, event)

    def tables(self) -> Mapping[str, TableRows]:
        return {
            "token_deadlines": TableRows(COLUMNS, (tuple(row) for row in self._rows.values())),
            "rotation_periods": TableRows(PERIOD_COLUMNS, self._periods.items()),
            "account_deadlines": TableRows(ACCOUNT_COLUMNS, (tuple(row) for row in self._lifetimes.values())),
        }

    def __len__(self) -> int:
        return len(self._rows) + len(self._periods) + len(self._lifetimes)

    def _insert(self, key: _Key, account_id: str, due_at: datetime | None) -> None:
        if key not in self._rows:
            self._rows[key] = [*key, account_id, due_at, None, UNWARNED]
            self._by_token.setdefault(key[0], set()).add(key)

    def _remove(self, key: _Key) -> None:
        row = self._rows.pop(key, None)
        if row is not None:
            self._by_token[key[0]].discard(key)
            self._rotations_by_account.get(row[3], set()).discard(key)

    def _put_rotation(self, token_id: str, account_id: str, anchor_at: datetime) -> None:
        key = (token_id, ROTATION, 0)
        seconds = self._periods.get(account_id)
        due_at = None if seconds is None else anchor_at + timedelta(seconds=seconds)
        self._insert(key, account_id, due_at)
        row = self._rows[key]
        row[_DUE], row[_ANCHOR] = due_at, anchor_at
        self._rotations_by_account.setdefault(row[3], set()).add(key)

    def _issued(self, body: TokenIssued, event: RecordedEvent) -> None:
        token_id, account_id = uid(body.token_id), uid(body.account_id)
        if body.expires_at is not None:
            self._insert((token_id, EXPIRY, 0), account_id, body.expires_at)
        self._put_rotation(token_id, account_id, event.metadata.occurred_at)

    def _rotated(self, body: TokenRotated, event: RecordedEvent) -> None:
        token_id, account_id = uid(body.token_id), uid(body.account_id)
        self._put_rotation(token_id, account_id, event.metadata.occurred_at)
        if body.previous_valid_until is not None:
            key = (token_id, RETIREMENT, body.secret_version - 1)
            self._insert(key, account_id, body.previous_valid_until)

    def _extended(self, body: TokenExtended, _event: RecordedEvent) -> None:
        row = self._rows.get((uid(body.token_id), EXPIRY, 0))
        if row is not None:
            row[_DUE], row[_WARNED] = body.expires_at, UNWARNED

    def _warned(self, body: TokenExpiringSoon, _event: RecordedEvent) -> None:
        row = self._rows.get((uid(body.token_id), EXPIRY, 0))
        if row is not None and row[_DUE] == body.expires_at:
            row[_WARNED] = min(row[_WARNED], body.lead_seconds)

    def _rotation_due(self, body: TokenRotationDue, _event: RecordedEvent) -> None:
        self._remove((uid(body.token_id), ROTATION, 0))

    def _retired(self, body: TokenSecretRetired, _event: RecordedEvent) -> None:
        self._remove((uid(body.token_id), RETIREMENT, body.secret_version))

    def _token_gone(self, body: TokenExpired | TokenRevoked | TokenDeleted, _event: RecordedEvent) -> None:
        token_id = uid(body.token_id)
        for key in list(self._by_token.get(token_id, ())):
            self._remove(key)
        self._by_token.pop(token_id, None)

    def _put_lifetime(self, body: AccountCreated | AccountUpdated) -> None:
        account_id = uid(body.account_id)
        if body.expires_at is None:
            self._lifetimes.pop(account_id, None)
            return
        row = self._lifetimes.get(account_id)
        if row is None or row[1] != body.expires_at:
            self._lifetimes[account_id] = [account_id, body.expires_at, body.expires_at, UNWARNED]

    def _account_created(self, body: AccountCreated, _event: RecordedEvent) -> None:
        if body.rotation_period_seconds is not None:
            self._periods[uid(body.account_id)] = body.rotation_period_seconds
        self._put_lifetime(body)

    def _account_updated(self, body: AccountUpdated, _event: RecordedEvent) -> None:
        account_id = uid(body.account_id)
        seconds = body.rotation_period_seconds
        if seconds is None:
            self._periods.pop(account_id, None)
        else:
            self._periods[account_id] = seconds
        for key in self._rotations_by_account.get(account_id, ()):
            row = self._rows[key]
            row[_DUE] = None if seconds is None else row[_ANCHOR] + timedelta(seconds=seconds)
        self._put_lifetime(body)

    def _account_expired(self, body: AccountExpired, _event: RecordedEvent) -> None:
        row = self._lifetimes.get(uid(body.account_id))
        if row is not None and row[1] == body.expires_at:
            row[2] = None

    def _account_warned(self, body: AccountExpiringSoon, _event: RecordedEvent) -> None:
        row = self._lifetimes.get(uid(body.account_id))
        if row is not None and row[1] == body.expires_at:
            row[3] = min(row[3], body.lead_seconds)

    def _account_deleted(self, body: AccountDeleted, _event: RecordedEvent) -> None:
        self._periods.pop(uid(body.account_id), None)
        self._lifetimes.pop(uid(body.account_id), None)
