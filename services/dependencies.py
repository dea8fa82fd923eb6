"""What command handlers are given by the composition root: the event store, the directory of
other streams, and the deployment's policy."""

import msgspec

from services.lookups import Directory
from services.policy import FederationPolicy, TokenPolicy
from services.ports import EventStore
from services.roles.catalogue import RoleCatalogue


class Dependencies(msgspec.Struct, frozen=True, kw_only=True):
    store: EventStore
    directory: Directory
    catalogue: RoleCatalogue
    token_policy: TokenPolicy
    pepper: bytes
    organization_id: str
    federation: FederationPolicy = FederationPolicy()
