"""Events of the system-account aggregate (stream ``account-<id>``): lifecycle and direct roles."""

from events.base import Event


class AccountCreated(Event, frozen=True, tag="account.created"):
    account_id: str
    name: str
    description: str = ""
    konnect_managed: bool = False
    rotation_period_seconds: int | None = None
    """How old a token's secret may get before ``token.rotation_due`` (None: the deployment's period)."""


class AccountUpdated(Event, frozen=True, tag="account.updated"):
    """Carries the full new name, description and rotation period, so readers need no earlier state."""

    account_id: str
    name: str
    description: str
    rotation_period_seconds: int | None = None


class AccountDisabled(Event, frozen=True, tag="account.disabled"):
    account_id: str


class AccountEnabled(Event, frozen=True, tag="account.enabled"):
    account_id: str


class AccountDeleted(Event, frozen=True, tag="account.deleted"):
    account_id: str


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
)
