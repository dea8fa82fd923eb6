"""What a command needs to know of streams other than its own, as a port: the aggregates
(accounts, tokens, teams) never import one another; a handler asks this ``Directory`` instead, and
the composition root gives it the one that folds the streams (``services.directory``).

Every answer is folded from the log (never a read model that may lag), and carries what the
handler needs to make its append conditional on it (an account's stream and version).
"""

from datetime import datetime
from typing import Protocol

import msgspec

from events import FrozenMap
from services.commands import CommandContext, Conflict, Forbidden, NotFound
from services.federation import FederatedCredential
from services.ports import Claim, StreamAppend
from services.roles.assignment import RoleAssignment


class AccountFacts(msgspec.Struct, frozen=True, kw_only=True):
    """One system account as another aggregate's command sees it."""

    account_id: str
    stream_id: str
    version: int
    live: bool
    konnect_managed: bool
    rotation_period_seconds: int | None
    enabled: bool = True
    expires_at: datetime | None = None
    """The end of the account's lifetime (None: it has none)."""
    federated_credentials: FrozenMap[str, FederatedCredential] = FrozenMap()

    def require_live(self) -> "AccountFacts":
        if not self.live:
            raise NotFound("system account not found")
        return self

    def require_usable(self, now: datetime) -> "AccountFacts":
        """A new credential is made only for an account that can use it now: not one disabled or
        past its lifetime (both can be undone, and a secret is shown once)."""
        if self.expires_at is not None and self.expires_at <= now:
            raise Conflict(
                f"the system account's lifetime ended at {self.expires_at.isoformat()}: update it with"
                " enabled true and a new expires_at (or null) before issuing it a token"
            )
        if not self.enabled:
            raise Conflict("the system account is disabled: enable it before issuing it a token")
        return self

    def require_unmanaged(self) -> "AccountFacts":
        if self.konnect_managed:
            raise Forbidden("konnect-managed system accounts cannot be changed through the API")
        return self

    def unchanged(self) -> StreamAppend:
        """A condition for an append: the account stream is still where it was read."""
        return StreamAppend(self.stream_id, (), self.version)


class Holdings(msgspec.Struct, frozen=True):
    """What an account holds: its own role assignments and its teams', and whether it is the
    organization admin (konnect-managed: made only by bootstrap); with the account itself, as read."""

    account: AccountFacts
    grants: tuple[RoleAssignment, ...]
    organization_admin: bool


class Cascade(msgspec.Struct, frozen=True):
    """What an account's deletion takes with it: appends to other streams, and the claims released."""

    appends: tuple[StreamAppend, ...]
    releases: tuple[str, ...]


class Joining(msgspec.Struct, frozen=True):
    """A new account's memberships, for the append that creates it: the team appends (each
    conditional on the team as read), the membership claims, and the roles the teams confer."""

    appends: tuple[StreamAppend, ...]
    claims: tuple[Claim, ...]
    grants: tuple[RoleAssignment, ...]


class Directory(Protocol):
    async def account(self, account_id: str) -> AccountFacts: ...

    async def holdings(self, account_id: str) -> Holdings:
        """What the live account ``account_id`` holds (NotFound when it is not live)."""
        ...

    async def deletion_cascade(self, ctx: CommandContext, account_id: str) -> Cascade:
        """Revocations of the account's live tokens and removals of its memberships."""
        ...

    async def joining(self, ctx: CommandContext, account_id: str, team_ids: tuple[str, ...]) -> Joining:
        """The new account ``account_id`` joining each of ``team_ids``; ``Invalid`` naming
        ``team_ids[n]`` for one that is not a live team or is repeated."""
        ...
