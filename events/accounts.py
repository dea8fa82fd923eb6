"""Events of the system-account aggregate (stream ``account-<id>``): lifecycle and direct roles."""

from datetime import datetime

from events.base import Event


class AccountCreated(Event, frozen=True, tag="account.created"):
    account_id: str
    name: str
    description: str = ""
    konnect_managed: bool = False
    rotation_period_seconds: int | None = None
    """How old a token's secret may get before ``token.rotation_due`` (None: the deployment's period)."""
    expires_at: datetime | None = None
    """The end of the account's lifetime (None: it has none): ``account.expired`` disables it then."""


class AccountUpdated(Event, frozen=True, tag="account.updated"):
    """Carries the full new name, description, rotation period and lifetime, so readers need no
    earlier state."""

    account_id: str
    name: str
    description: str
    rotation_period_seconds: int | None = None
    expires_at: datetime | None = None


class AccountDisabled(Event, frozen=True, tag="account.disabled"):
    account_id: str


class AccountEnabled(Event, frozen=True, tag="account.enabled"):
    account_id: str


class AccountDeleted(Event, frozen=True, tag="account.deleted"):
    account_id: str


class AccountExpired(Event, frozen=True, tag="account.expired"):
    """The account's lifetime ended at ``expires_at``: it is disabled (its tokens stop working)
    until an admin enables it again with a new lifetime or none."""

    account_id: str
    expires_at: datetime


class AccountExpiringSoon(Event, frozen=True, tag="account.expiring_soon"):
    account_id: str
    expires_at: datetime
    lead_seconds: int


class AccountRoleAssigned(Event, frozen=True, tag="account.role_assigned"):
    account_id: str
    assignment_id: str
    role_name: str
    entity_id: str
    entity_type_name: str
    entity_region: str


class AccountRoleUnassigned(Event, frozen=True, tag="account.role_unassigned"):
    account_id: str
    assignment_id: str


ACCOUNT_EVENTS: tuple[type[Event], ...] = (
    AccountCreated,
    AccountUpdated,
    AccountDisabled,
    AccountEnabled,
    AccountDeleted,
    AccountRoleAssigned,
    AccountRoleUnassigned,
    AccountExpired,
    AccountExpiringSoon,
)
