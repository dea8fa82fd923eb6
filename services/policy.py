"""The deployment's policy for tokens, as the command side obeys it (``TOKENLEDGER_MAX_TOKEN_LIFETIME_DAYS``,
``TOKENLEDGER_ALLOW_NON_EXPIRING_TOKENS``)."""

from datetime import timedelta

import msgspec


class TokenPolicy(msgspec.Struct, frozen=True, kw_only=True):
    max_lifetime: timedelta
    allow_non_expiring: bool


class FederationPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """What federated credentials may trust (``TOKENLEDGER_DEPLOYMENT_URI``,
    ``TOKENLEDGER_MAX_FEDERATED_TOKEN_LIFETIME_SECONDS``): the audience a credential expects by
    default, and the longest lifetime a token obtained by an exchange may have."""

    audience: str = "urn:tokenledger:local"
    max_lifetime: timedelta = timedelta(hours=1)
