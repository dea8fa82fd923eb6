"""Events of an account's federated credentials (in the account's stream, ``account-<id>``): the
external OIDC identities trusted to exchange their id-tokens for short-lived tokens of the account.

A definition event (created, updated) carries the whole credential, so a reader needs no earlier
state; ``account.deleted`` ends every credential of the account.
"""

from typing import Literal

import msgspec

from events.base import Event

ConditionOperator = Literal["equals", "one_of", "glob"]


class ClaimCondition(msgspec.Struct, frozen=True, kw_only=True):
    """A condition on one claim of the id-token: ``equals`` its one value, ``one_of`` the values,
    or matches the ``glob`` (``*`` any run of characters, ``?`` one character)."""

    claim: str
    operator: ConditionOperator
    values: tuple[str, ...]


class FederatedCredentialDefined(Event, frozen=True, kw_only=True):
    """What a credential trusts, as created or as it became."""

    account_id: str
    credential_id: str
    name: str
    issuer: str
    audiences: tuple[str, ...]
    subject: str
    conditions: tuple[ClaimCondition, ...] = ()
    required_claims: tuple[str, ...] = ()
    max_token_lifetime_seconds: int
    preset: str | None = None


class FederatedCredentialCreated(
    FederatedCredentialDefined, frozen=True, tag="account.federated_credential_created"
):
    pass


class FederatedCredentialUpdated(
    FederatedCredentialDefined, frozen=True, tag="account.federated_credential_updated"
):
    pass


class FederatedCredentialDeleted(Event, frozen=True, tag="account.federated_credential_deleted"):
    account_id: str
    credential_id: str


FEDERATION_EVENTS: tuple[type[Event], ...] = (
    FederatedCredentialCreated,
    FederatedCredentialUpdated,
    FederatedCredentialDeleted,
)
