"""What each event invalidates for the token verifier, and which read-model checkpoint a row must come
from to be trusted (the *dirty cursors*; the reasoning is in ``services.auth.verifier``).

``Invalidations.apply(event, cursor)`` is the reducer: it records the dirty cursor the event sets (per
token, per account, per secret hash, or one global one for team role changes and unknown events) and
returns what the cache must drop (a ``Drop``) or, for ``token.extended``, the ``Extended`` expiry to
move cached entries to. ``required(entry)`` is the checkpoint a row must be at or past to be used;
``prune(checkpoint)`` forgets what a checkpoint already reflects, and ``pruned_upto`` remembers how
far that went, so rows older than it are never used.

It also keeps the sliding-expiry extensions the read model may not hold yet (``overlay``).
"""

from datetime import datetime

import msgspec

from events import Event, LogCursor
from events import accounts as account_events
from events import teams as team_events
from events import tokens as token_events
from events.envelope import LOG_START
from events.organization import OrganizationCreated
from services.auth.evaluation import Entry


class Drop(msgspec.Struct, frozen=True, kw_only=True):
    """Cached entries to drop: the unknown entry of a hash, a token's, an account's, or everything."""

    unknown_hash: str | None = None
    token_id: str | None = None
    account_id: str | None = None
    everything: bool = False


class Extended(msgspec.Struct, frozen=True, kw_only=True):
    """A ``token.extended`` the cache should apply: move the token's cached expiry to ``expires_at``."""

    token_id: str
    expires_at: datetime


NOTHING = Drop()
EVERYTHING = Drop(everything=True)


class Invalidations:
    def __init__(self) -> None:
        self._tokens: dict[str, LogCursor] = {}
        self._accounts: dict[str, LogCursor] = {}
        self._hashes: dict[str, LogCursor] = {}
        self._global = LOG_START
        self.pruned_upto = LOG_START
        """No row from a checkpoint before this is used: set to the log head at start-up (the
        events before it were not watched) and raised by ``prune``."""
        self._extensions: dict[str, tuple[LogCursor | None, datetime]] = {}
        """Sliding-expiry extensions the read model may not hold yet: token -> (cursor of the
        event, None while it is still being appended by this node; new expires_at)."""

    @property
    def pending(self) -> bool:
        """Something waits for the projections to pass it (worth polling their checkpoint for)."""
        return bool(self._tokens or self._accounts or self._hashes or self._extensions)

    def apply(self, event: Event, cursor: LogCursor) -> Drop | Extended:
        match event:
            case (
                token_events.TokenUsed() | token_events.TokenExpiringSoon() | token_events.TokenRotationDue()
            ):
                return NOTHING
            case token_events.TokenExtended(token_id=token_id, expires_at=expires_at):
                self._extended(token_id, expires_at, cursor)
                return Extended(token_id=token_id, expires_at=expires_at)
            case (
                token_events.TokenIssued(secret_hash=hashed, token_id=token_id)
                | token_events.TokenRotated(secret_hash=hashed, token_id=token_id)
            ):
                self._hashes[hashed] = max(self._hashes.get(hashed, LOG_START), cursor)
                self._tokens[token_id] = max(self._tokens.get(token_id, LOG_START), cursor)
                return Drop(unknown_hash=hashed, token_id=token_id)
            case (
                token_events.TokenRenamed(token_id=token_id)
                | token_events.TokenSecretRetired(token_id=token_id)
                | token_events.TokenRevoked(token_id=token_id)
                | token_events.TokenDeleted(token_id=token_id)
                | token_events.TokenExpired(token_id=token_id)
            ):
                return self.token_changed(token_id, cursor)
            case (
                account_events.AccountCreated()
                | account_events.AccountExpiringSoon()
                | team_events.TeamCreated()
                | team_events.TeamUpdated()
            ):
                return NOTHING
            case (
                account_events.AccountUpdated(account_id=account_id)
                | account_events.AccountDisabled(account_id=account_id)
                | account_events.AccountEnabled(account_id=account_id)
                | account_events.AccountExpired(account_id=account_id)
                | account_events.AccountDeleted(account_id=account_id)
                | account_events.AccountRoleAssigned(account_id=account_id)
                | account_events.AccountRoleUnassigned(account_id=account_id)
                | team_events.TeamMemberAdded(account_id=account_id)
                | team_events.TeamMemberRemoved(account_id=account_id)
            ):
                self._accounts[account_id] = max(self._accounts.get(account_id, LOG_START), cursor)
                return Drop(account_id=account_id)
            case (
                team_events.TeamRoleAssigned() | team_events.TeamRoleUnassigned() | team_events.TeamDeleted()
            ):
                self._global = max(self._global, cursor)
                return EVERYTHING
            case OrganizationCreated():
                return NOTHING
            case _:
                # An event this code does not know to be harmless: assume it changes anything.
                self._global = max(self._global, cursor)
                return EVERYTHING

    def token_changed(self, token_id: str, cursor: LogCursor) -> Drop:
        """The token's rows are stale until a checkpoint at or past ``cursor``."""
        self._tokens[token_id] = max(self._tokens.get(token_id, LOG_START), cursor)
        return Drop(token_id=token_id)

    def required(self, entry: Entry) -> LogCursor:
        """The checkpoint a read must have reached for ``entry`` to be trusted now."""
        required = max(self.pruned_upto, self._hashes.get(entry.secret_hash, LOG_START))
        principal = entry.principal
        if principal is not None:
            required = max(
                required,
                self._global,
                self._tokens.get(principal.token_id, LOG_START),
                self._accounts.get(principal.account_id, LOG_START),
            )
        return required

    def prune(self, checkpoint: LogCursor) -> None:
        """Forgets what a read at ``checkpoint`` (or later) already reflects."""
        pruned = False
        for dirty in (self._tokens, self._accounts, self._hashes):
            stale = [key for key, cursor in dirty.items() if cursor <= checkpoint]
            for key in stale:
                del dirty[key]
            pruned = pruned or bool(stale)
        if pruned:
            self.pruned_upto = max(self.pruned_upto, checkpoint)
        applied = [
            t for t, (cursor, _) in self._extensions.items() if cursor is not None and cursor <= checkpoint
        ]
        for token_id in applied:
            del self._extensions[token_id]

    # -- sliding expiry --------------------------------------------------------------------------

    def overlay(self, token_id: str, checkpoint: LogCursor) -> datetime | None:
        """The expiry a row read at ``checkpoint`` should show for the token instead of its own (the
        later of the two wins), when an extension is not in the read model yet."""
        extension = self._extensions.get(token_id)
        if extension is None:
            return None
        cursor, extended_to = extension
        return extended_to if cursor is None or cursor > checkpoint else None

    def extending(self, token_id: str, expires_at: datetime) -> None:
        """This node has decided to extend the token (its ``token.extended`` is being appended)."""
        current = self._extensions.get(token_id)
        if current is None or expires_at > current[1]:
            self._extensions[token_id] = (None, expires_at)

    def abandon(self, token_id: str, expires_at: datetime) -> Drop:
        """The extension could not be recorded: forget it (reload the token from the read model)."""
        current = self._extensions.get(token_id)
        if current is not None and current[0] is None and current[1] == expires_at:
            del self._extensions[token_id]
        return Drop(token_id=token_id)

    def _extended(self, token_id: str, expires_at: datetime, cursor: LogCursor) -> None:
        current = self._extensions.get(token_id)
        if current is None or expires_at >= current[1]:
            self._extensions[token_id] = (cursor, expires_at)
        elif current[0] is not None and cursor > current[0]:
            self._extensions[token_id] = (cursor, current[1])
