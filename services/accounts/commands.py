"""The commands on system accounts and their roles, as data: what a caller asks, nothing more, and
the scheduler's time-driven ones on an account's lifetime (expire it, warn that it ends soon).

Each has one handler (``services.accounts.handlers``), reached only through
``services.dispatch.Dispatcher``, which authorises the actor first; the time-driven commands are
tokenledger's own and refused to any caller.
"""

from datetime import datetime, timedelta
from typing import Any

import msgspec

from events import FrozenMap
from services.federation import Definition
from services.roles.assignment import Role


class CreateAccount(msgspec.Struct, frozen=True, kw_only=True, tag="account.create"):
    """``assigned_roles`` and ``team_ids`` are given to the new account in the append that creates
    it, under the rules of assigning each role and adding it to each team."""

    name: str
    description: str
    konnect_managed: bool = False
    rotation_period_seconds: int | None = None
    assigned_roles: tuple[Role, ...] = ()
    team_ids: tuple[str, ...] = ()
    expires_at: datetime | None = None
    """The end of the account's lifetime (None: none)."""


class UpdateAccount(msgspec.Struct, frozen=True, kw_only=True, tag="account.update"):
    """None keeps a field; ``rotation_period_seconds`` 0 returns to the deployment's period.
    ``expires_at`` unset keeps the lifetime, None clears it."""

    account_id: str
    name: str | None = None
    description: str | None = None
    enabled: bool | None = None
    rotation_period_seconds: int | None = None
    expires_at: datetime | msgspec.UnsetType | None = msgspec.UNSET


class DeleteAccount(msgspec.Struct, frozen=True, kw_only=True, tag="account.delete"):
    account_id: str


class ExpireAccount(msgspec.Struct, frozen=True, kw_only=True, tag="account.expire"):
    account_id: str


class WarnAccountExpiring(msgspec.Struct, frozen=True, kw_only=True, tag="account.warn_expiring"):
    account_id: str
    leads: tuple[timedelta, ...]
    """The warning leads configured."""


class CreateFederatedCredential(
    msgspec.Struct, frozen=True, kw_only=True, tag="account.federated_credential.create"
):
    """Trust an external OIDC identity to obtain tokens of the account (``services.federation``)."""

    account_id: str
    definition: Definition


class UpdateFederatedCredential(
    msgspec.Struct, frozen=True, kw_only=True, tag="account.federated_credential.update"
):
    """``changes`` holds the definition's fields the caller sends; the others keep their value."""

    account_id: str
    credential_id: str
    changes: FrozenMap[str, Any]


class DeleteFederatedCredential(
    msgspec.Struct, frozen=True, kw_only=True, tag="account.federated_credential.delete"
):
    account_id: str
    credential_id: str
