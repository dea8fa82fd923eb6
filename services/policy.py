"""The deployment's policy for tokens, as the command side obeys it (``TOKENLEDGER_MAX_TOKEN_LIFETIME_DAYS``,
``TOKENLEDGER_ALLOW_NON_EXPIRING_TOKENS``)."""

from datetime import timedelta

import msgspec


class TokenPolicy(msgspec.Struct, frozen=True, kw_only=True):
    max_lifetime: timedelta
    allow_non_expiring: bool
