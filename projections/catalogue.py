"""Every read model this code maintains: what the composition root hands to ``projections.runtime``."""

from projections.accounts import AccountsProjection
from projections.base import Projection
from projections.deadlines import DeadlinesProjection
from projections.federated_credentials import FederatedCredentialsProjection
from projections.role_assignments import RoleAssignmentsProjection
from projections.teams import TeamsProjection
from projections.token_secrets import TokenSecretsProjection
from projections.tokens import TokensProjection

ALL_PROJECTIONS: list[Projection] = [
    AccountsProjection(),
    TokensProjection(),
    TokenSecretsProjection(),
    RoleAssignmentsProjection(),
    FederatedCredentialsProjection(),
    TeamsProjection(),
    DeadlinesProjection(),
]
