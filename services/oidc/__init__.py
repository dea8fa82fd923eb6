"""Verifying id-tokens of external OIDC issuers: their keys (``keys``) and the checks (``verification``)."""
