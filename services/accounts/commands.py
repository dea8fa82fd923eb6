"""The commands on system accounts and their roles, as data: what a caller asks, nothing more.

Each has one handler (``services.accounts.handlers``), reached only through
``services.dispatch.Dispatcher``, which authorises the actor first.
"""

import msgspec

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


class UpdateAccount(msgspec.Struct, frozen=True, kw_only=True, tag="account.update"):
    """None keeps a field; ``rotation_period_seconds`` 0 returns to the deployment's period."""

    account_id: str
    name: str | None = None
    description: str | None = None
    enabled: bool | None = None
    rotation_period_seconds: int | None = None


class DeleteAccount(msgspec.Struct, frozen=True, kw_only=True, tag="account.delete"):
    account_id: str
