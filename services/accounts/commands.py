"""The commands on system accounts and their roles, as data: what a caller asks, nothing more.

Each has one handler (``services.accounts.handlers``), reached only through
``services.dispatch.Dispatcher``, which authorises the actor first.
"""

import msgspec


class CreateAccount(msgspec.Struct, frozen=True, kw_only=True, tag="account.create"):
    name: str
    description: str
    konnect_managed: bool = False
    rotation_period_seconds: int | None = None


class UpdateAccount(msgspec.Struct, frozen=True, kw_only=True, tag="account.update"):
    """None keeps a field; ``rotation_period_seconds`` 0 returns to the deployment's period."""

    account_id: str
    name: str | None = None
    description: str | None = None
    enabled: bool | None = None
    rotation_period_seconds: int | None = None


class DeleteAccount(msgspec.Struct, frozen=True, kw_only=True, tag="account.delete"):
    account_id: str
