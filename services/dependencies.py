"""What command handlers are given by the composition root: the store and the deployment's policy."""

import msgspec

from services.ports import EventStore
from services.roles.catalogue import RoleCatalogue
from services.tokens.model import TokenPolicy


class Dependencies(msgspec.Struct, frozen=True, kw_only=True):
    store: EventStore
    catalogue: RoleCatalogue
    token_policy: TokenPolicy
    pepper: bytes
    organization_id: str
