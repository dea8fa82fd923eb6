"""The checks of an id-token presented to the token exchange, with PyJWT.

In order, each refusal with its reason (for the logs and the usage log; the client is told only
``invalid_grant``): at most ``MAX_TOKEN_BYTES``; a JWS whose header names an allowed asymmetric
algorithm (never ``none`` nor ``HS*``: an HMAC "signed" with an issuer's public key is refused
before any key is looked at) and a ``kid``; a key of the issuer with that id (``keys.IssuerKeys``);
the signature, with that one algorithm; ``iss`` exactly, ``aud`` one of the expected audiences,
``exp``, ``nbf`` and ``iat`` with ``LEEWAY_SECONDS``; ``exp - iat`` at most ``MAX_LIFETIME_SECONDS``;
``iat`` no older than the deployment's maximum age (``TOKENLEDGER_MAX_ID_TOKEN_AGE_SECONDS``, by
default ``DEFAULT_MAX_AGE``), with the leeway; ``sub`` and ``jti`` present.

The verified claims are kept as text, nested objects flattened with dots (Kubernetes'
``kubernetes.io.namespace``): ``sub``, the claims the audit trail keeps (``PROVENANCE_CLAIMS``), and
those a credential names.
"""

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import msgspec

from services.oidc.keys import IssuerKeys

ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
MAX_TOKEN_BYTES = 16 * 1024
LEEWAY_SECONDS = 60
MAX_LIFETIME_SECONDS = 24 * 3600
DEFAULT_MAX_AGE = timedelta(hours=1)
MAX_CLAIM_TEXT = 255
PROVENANCE_CLAIMS = frozenset(
    {
        "repository",
        "repository_id",
        "repository_owner",
        "repository_owner_id",
        "workflow_ref",
        "job_workflow_ref",
        "ref",
        "sha",
        "environment",
        "run_id",
        "run_attempt",
        "actor",
        "event_name",
        "kubernetes.io.namespace",
        "kubernetes.io.pod.name",
        "kubernetes.io.pod.uid",
        "kubernetes.io.serviceaccount.name",
        "kubernetes.io.serviceaccount.uid",
    }
)


class IdTokenRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class VerifiedIdToken(msgspec.Struct, frozen=True, kw_only=True):
    issuer: str
    audience: tuple[str, ...]
    jti: str
    expires_at: datetime
    claims: dict[str, str]
    """``sub`` and the other kept claims, as text."""


class ClaimedIdToken(msgspec.Struct, frozen=True, kw_only=True):
    """What an id-token says of itself, nothing verified: its issuer finds the credentials that may
    trust it, and its audience and subject say which of them a refusal concerns."""

    issuer: str
    audience: tuple[str, ...]
    subject: str | None


def unverified(token: str) -> ClaimedIdToken:
    """The ``iss``, ``aud`` and ``sub`` the token claims (nothing is trusted yet);
    ``IdTokenRefused`` for anything that is not a bounded JWS with a text ``iss``."""
    if len(token) > MAX_TOKEN_BYTES:
        raise IdTokenRefused("oversized")
    try:
        payload = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise IdTokenRefused("malformed") from None
    issuer = payload.get("iss")
    if not isinstance(issuer, str) or not 1 <= len(issuer) <= MAX_CLAIM_TEXT:
        raise IdTokenRefused("malformed")
    return ClaimedIdToken(
        issuer=issuer, audience=_audience(payload.get("aud")), subject=_text(payload.get("sub"))
    )


def _audience(value: Any) -> tuple[str, ...]:
    """``aud``, one text or a list of them, as a tuple of its texts."""
    values = value if isinstance(value, list) else [value]
    return tuple(text for text in map(_text, values) if text is not None)


def _flatten(claims: Mapping[str, Any], prefix: str = "", depth: int = 0) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in claims.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict) and depth < 3:
            flat.update(_flatten(value, f"{key}.", depth + 1))
        else:
            flat[key] = value
    return flat


def _text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int) and len(str(value)) <= MAX_CLAIM_TEXT:
        return str(value)
    return None


_REFUSALS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid"),
    (jwt.InvalidAudienceError, "wrong_audience"),
    (jwt.InvalidIssuerError, "wrong_issuer"),
    (jwt.InvalidIssuedAtError, "issued_in_the_future"),
    (jwt.MissingRequiredClaimError, "missing_claim"),
    (jwt.InvalidSignatureError, "bad_signature"),
)


async def verify(
    token: str,
    issuer: str,
    audiences: Iterable[str],
    keys: IssuerKeys,
    now: datetime,
    wanted: Iterable[str] = (),
    max_age: timedelta = DEFAULT_MAX_AGE,
) -> VerifiedIdToken:
    """The id-token's verified claims, or ``IdTokenRefused``. ``wanted``: the claims the candidate
    credentials name, kept besides ``PROVENANCE_CLAIMS``; ``max_age``: the oldest ``iat`` accepted."""
    if len(token) > MAX_TOKEN_BYTES:
        raise IdTokenRefused("oversized")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise IdTokenRefused("malformed") from None
    algorithm, kid = header.get("alg"), header.get("kid")
    if algorithm not in ALGORITHMS:
        raise IdTokenRefused("algorithm_refused")
    if not isinstance(kid, str) or not 1 <= len(kid) <= MAX_CLAIM_TEXT:
        raise IdTokenRefused("no_key_id")
    key = await keys.key(issuer, kid)
    if key is None:
        raise IdTokenRefused("unknown_key")
    try:
        claims = jwt.decode(
            token,
            key.key,
            algorithms=[algorithm],
            audience=list(audiences),
            issuer=issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": ["iss", "aud", "exp", "iat", "sub", "jti"]},
        )
    except jwt.PyJWTError as error:
        reason = next((r for kind, r in _REFUSALS if isinstance(error, kind)), "invalid")
        raise IdTokenRefused(reason) from None
    issued_at, expires_at = claims["iat"], claims["exp"]
    if not isinstance(issued_at, int | float) or not isinstance(expires_at, int | float):
        raise IdTokenRefused("invalid")
    if expires_at - issued_at > MAX_LIFETIME_SECONDS:
        raise IdTokenRefused("lifetime_over_cap")
    if issued_at < now.timestamp() - max_age.total_seconds() - LEEWAY_SECONDS:
        raise IdTokenRefused("issued_too_long_ago")
    jti, subject = _text(claims["jti"]), _text(claims["sub"])
    if not jti or not subject:
        raise IdTokenRefused("invalid")
    kept = PROVENANCE_CLAIMS | set(wanted)
    texts = {name: _text(value) for name, value in _flatten(claims).items() if name in kept}
    return VerifiedIdToken(
        issuer=issuer,
        audience=_audience(claims["aud"]),
        jti=jti,
        expires_at=datetime.fromtimestamp(expires_at, UTC),
        claims={"sub": subject, **{name: text for name, text in texts.items() if text is not None}},
    )
