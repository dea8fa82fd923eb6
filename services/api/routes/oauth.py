"""``POST /v3/oauth/token``: the OIDC token exchange (RFC 8693), a door of the command side.

No bearer token: the client presents an id-token of an external issuer (``subject_token``). The door
bounds the request, finds the federated credentials that may trust the token's claimed issuer (only
issuers some credential names are ever fetched; at most ``MAX_CANDIDATES``, those the claimed
audience and subject fit first), verifies the id-token (``services.oidc``), picks
the one credential whose audience, subject and conditions it satisfies (``audience`` or ``resource``
may name the account or the credential, and must when several match), and sends
``ExchangeFederatedToken`` as that credential's ``FederatedActor``; the handler decides on the
account's stream. Errors are RFC 6749 §5.2 objects whose ``error`` is all the client learns
(``invalid_request``, ``invalid_grant``, ``invalid_target``, ``invalid_scope``,
``unsupported_grant_type``, ``temporarily_unavailable``); why, with the issuer, subject and
``jti``, goes to the process log, and every refusal is recorded in the usage log (operation
``token_exchange``: the precise reason, the keyed hash of the presented token, the claimed
issuer, the client's address and user agent, and the account and federated credential the
refusal concerns: of the credentials trusting the issuer, those the token's audience, then its
subject, single out (as the token claims them when it did not verify); the account when they are
all of one account, the credential when it is one, and neither when several accounts remain).
A refusal appends no event.

Rate-limited per process and client address (``RATE`` a second, ``BURST`` at once, as the process
sees the address: behind a proxy, all clients share one): beyond, 429 ``temporarily_unavailable``
with ``Retry-After``, recorded (reason ``rate_limited``) before the body is read.
"""

import json
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qsl

import asyncpg
import msgspec
from aiohttp import web

from events import FrozenMap
from services import federation
from services.api.context import service, settle
from services.api.parsing import decode_body
from services.api.problems import REQUEST_ID, ProblemError
from services.api.rate_limit import RateLimit
from services.api.state import CLOCK, DISPATCHER, MAX_ID_TOKEN_AGE, OIDC_KEYS, READ_POOL, USAGE
from services.authorization import FederatedActor
from services.client_text import log_field
from services.commands import CommandContext, Conflict, DomainError, Invalid, NotFound
from services.federation import FederatedCredential
from services.oidc import verification
from services.oidc.verification import IdTokenRefused
from services.tokens.commands import ExchangeFederatedToken
from services.tokens.exchange import ExchangeRefused, ReplayedIdToken

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
SUBJECT_TOKEN_TYPES = frozenset(
    {"urn:ietf:params:oauth:token-type:jwt", "urn:ietf:params:oauth:token-type:id_token"}
)
ISSUED_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 (a type name)
MAX_BODY_BYTES = 32 * 1024
MAX_SCOPES = 16
RATE, BURST = 50.0, 200.0
LIMIT = web.AppKey("tokenledger.exchange_limit", RateLimit)
_log = logging.getLogger(__name__)

MAX_CANDIDATES = 32
_SUBJECT_AS_LIKE = (
    "replace(replace(replace(replace(replace(subject, '\\', '\\\\'), '%', '\\%'), '_', '\\_'),"
    " '*', '%'), '?', '_')"
)
"""A credential's subject glob as a LIKE pattern (``*`` any run, ``?`` one character, the rest
itself): the same language, so it matches exactly the subjects ``federation.glob_match`` does."""
_CANDIDATES_SQL = (
    "SELECT * FROM rm_federated_credentials WHERE issuer = $1"  # noqa: S608 (a constant expression)
    " AND ($2::uuid IS NULL OR account_id = $2::uuid OR credential_id = $2::uuid)"
    f" ORDER BY (audiences && $3::text[] AND $4::text LIKE {_SUBJECT_AS_LIKE}) IS TRUE DESC,"
    f" created_at, credential_id LIMIT {MAX_CANDIDATES}"
)
"""The credentials trusting the issuer, those the token's claimed audience and subject fit first:
of many accounts trusting one issuer (GitHub's), the one the token is for is never left out."""


class OAuthError(Exception):
    def __init__(self, error: str, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.error, self.reason, self.status = error, reason, status


Candidate = tuple[str, FederatedCredential]
"""A federated credential that may trust the presented id-token, and its account's id."""


@dataclass(slots=True)
class _Known:
    """What an exchange has learnt so far, for the usage log row should it be refused."""

    presented: str = ""
    issuer: str | None = None
    account_id: str | None = None
    credential_id: str | None = None

    def concerns(self, candidates: Sequence[Candidate]) -> None:
        """Names the account when every candidate is of one account, the credential when there is
        one candidate (a row has one of each: several are named by none)."""
        accounts = {account for account, _ in candidates}
        self.account_id = accounts.pop() if len(accounts) == 1 else None
        self.credential_id = candidates[0][1].credential_id if len(candidates) == 1 else None


def _concerning(
    candidates: Sequence[Candidate], audience: Sequence[str], claims: Mapping[str, object]
) -> Sequence[Candidate]:
    """The candidates a refused id-token was meant for, as far as its audience, then its subject,
    narrow them (a step that would leave none is not taken)."""
    steps: tuple[Callable[[FederatedCredential], bool], ...] = (
        lambda credential: not set(credential.audiences).isdisjoint(audience),
        lambda credential: federation.mismatch(credential, claims) != "subject_mismatch",
    )
    for keep in steps:
        narrowed = [(account, credential) for account, credential in candidates if keep(credential)]
        if narrowed:
            candidates = narrowed
    return candidates


def _answer(body: dict[str, Any], status: int = 200) -> web.Response:
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if status == 429:
        headers["Retry-After"] = "1"
    return web.json_response(body, status=status, headers=headers)


Text = Annotated[str, msgspec.Meta(max_length=255)]


class ExchangeRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The parameters, each once (a grant type other than the exchange's is answered
    ``unsupported_grant_type``, so it is not refused here)."""

    grant_type: Text
    subject_token: Annotated[str, msgspec.Meta(max_length=verification.MAX_TOKEN_BYTES)]
    subject_token_type: Text
    scope: Annotated[str, msgspec.Meta(max_length=1024)] | msgspec.UnsetType = msgspec.UNSET
    requested_lifetime: Annotated[str, msgspec.Meta(pattern="^[0-9]{2,6}$")] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    audience: Text | msgspec.UnsetType = msgspec.UNSET
    resource: Text | msgspec.UnsetType = msgspec.UNSET


async def _request(request: web.Request) -> ExchangeRequest:
    """The request's parameters, form-encoded (RFC 6749) or a JSON object of strings."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise OAuthError("invalid_request", "oversized")
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise OAuthError("invalid_request", "oversized")
    if request.content_type == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=bool(raw))
        except ValueError:
            raise OAuthError("invalid_request", "bad_form") from None
        if len(dict(pairs)) != len(pairs):
            raise OAuthError("invalid_request", "repeated_parameter")
        raw = msgspec.json.encode(dict(pairs))
    elif request.content_type != "application/json":
        raise OAuthError("invalid_request", "content_type")
    try:
        return decode_body(raw, ExchangeRequest)
    except ProblemError as refused:
        raise OAuthError("invalid_request", str(refused)) from None


def _given(value: str | msgspec.UnsetType) -> str | None:
    return None if isinstance(value, msgspec.UnsetType) else value


def _lifetime(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 6 or int(value) < 60:
        raise OAuthError("invalid_request", "requested_lifetime")
    return int(value)


def _scopes(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    scopes = tuple(dict.fromkeys(value.split()))
    if not scopes or len(scopes) > MAX_SCOPES or any(len(s) > 64 for s in scopes):
        raise OAuthError("invalid_scope", "scope")
    return scopes


def _target(body: ExchangeRequest) -> str | None:
    named = _given(body.audience) or _given(body.resource)
    if named is None:
        return None
    try:
        return str(uuid.UUID(named))
    except ValueError:
        raise OAuthError("invalid_target", "target_not_an_id") from None


def _credential(row: asyncpg.Record) -> FederatedCredential:
    conditions = row["conditions"]
    return msgspec.convert(
        {
            "credential_id": str(row["credential_id"]),
            "name": row["name"],
            "issuer": row["issuer"],
            "audiences": list(row["audiences"]),
            "subject": row["subject"],
            "conditions": json.loads(conditions) if isinstance(conditions, str) else conditions,
            "required_claims": list(row["required_claims"]),
            "max_token_lifetime_seconds": row["max_token_lifetime_seconds"],
        },
        FederatedCredential,
    )


async def _exchange(request: web.Request, body: ExchangeRequest, known: _Known) -> web.Response:
    known.presented = body.subject_token
    if body.grant_type != GRANT_TYPE:
        raise OAuthError("unsupported_grant_type", "grant_type")
    token = body.subject_token
    if not token or body.subject_token_type not in SUBJECT_TOKEN_TYPES:
        raise OAuthError("invalid_request", "subject_token")
    lifetime, scopes = _lifetime(_given(body.requested_lifetime)), _scopes(_given(body.scope))
    target = _target(body)
    try:
        claimed = verification.unverified(token)
    except IdTokenRefused as refused:
        raise OAuthError("invalid_grant", refused.reason) from None
    issuer = known.issuer = claimed.issuer
    rows = await service(request, READ_POOL).fetch(
        _CANDIDATES_SQL, issuer, target, list(claimed.audience), claimed.subject
    )
    if not rows:
        raise OAuthError("invalid_target" if target else "invalid_grant", "no_credential_trusts_the_issuer")
    candidates = [(str(row["account_id"]), _credential(row)) for row in rows]
    known.concerns(_concerning(candidates, claimed.audience, {"sub": claimed.subject}))
    audiences = {audience for _, credential in candidates for audience in credential.audiences}
    wanted = {c.claim for _, cr in candidates for c in cr.conditions} | {
        n for _, cr in candidates for n in cr.required_claims
    }
    clock = service(request, CLOCK)
    try:
        verified = await verification.verify(
            token,
            issuer,
            audiences,
            service(request, OIDC_KEYS),
            clock(),
            wanted,
            max_age=request.app[MAX_ID_TOKEN_AGE],
        )
    except IdTokenRefused as refused:
        raise OAuthError("invalid_grant", refused.reason) from None
    fitting = [
        (account, credential)
        for account, credential in candidates
        if set(credential.audiences) & set(verified.audience)
        and federation.mismatch(credential, verified.claims) is None
    ]
    if not fitting:
        concerned = _concerning(candidates, verified.audience, verified.claims)
        known.concerns(concerned)
        reasons = {federation.mismatch(c, verified.claims) or "wrong_audience" for _, c in concerned}
        raise OAuthError("invalid_grant", ",".join(sorted(reasons)))
    known.concerns(fitting)
    if len(fitting) > 1:
        raise OAuthError("invalid_target", "several_credentials_match")
    account_id, credential = fitting[0]
    actor = FederatedActor(
        account_id=account_id,
        credential_id=credential.credential_id,
        issuer=issuer,
        subject=verified.claims["sub"],
    )
    command = ExchangeFederatedToken(
        account_id=account_id,
        credential_id=credential.credential_id,
        issuer=issuer,
        jti=verified.jti,
        id_token_expires_at=verified.expires_at,
        claims=FrozenMap(verified.claims),
        scopes=scopes,
        requested_lifetime_seconds=lifetime,
    )
    ctx = CommandContext(
        now=clock(), actor=f"federated:{credential.credential_id}", correlation_id=request.get(REQUEST_ID)
    )
    try:
        outcome = await service(request, DISPATCHER).dispatch(command, actor, ctx)
    except ReplayedIdToken:
        raise OAuthError("invalid_grant", "replayed_jti") from None
    except ExchangeRefused as refused:
        raise OAuthError("invalid_grant", refused.reason) from None
    except Invalid as invalid:
        error = "invalid_scope" if invalid.field == "scopes" else "invalid_request"
        raise OAuthError(error, invalid.field) from None
    except (NotFound, Conflict) as refused:
        raise OAuthError("invalid_grant", type(refused).__name__) from None
    except DomainError as refused:
        raise OAuthError("invalid_grant", type(refused).__name__) from None
    await settle(request, outcome.cursor)
    issued = outcome.state
    _log.info(
        "token exchange: issued token %s of account %s through federated credential %s"
        " (issuer %s, subject %s, jti %s)",
        issued.token.token_id,
        account_id,
        credential.credential_id,
        log_field(issuer, 255),
        log_field(verified.claims["sub"], 255),
        log_field(verified.jti, 255),
    )
    assert issued.token.expires_at is not None
    answer: dict[str, Any] = {
        "access_token": issued.secret,
        "issued_token_type": ISSUED_TOKEN_TYPE,
        "token_type": "Bearer",
        "expires_in": int((issued.token.expires_at - ctx.now).total_seconds()),
    }
    if issued.token.scopes is not None:
        answer["scope"] = " ".join(issued.token.scopes)
    return _answer(answer)


async def token(request: web.Request) -> web.Response:
    known = _Known()
    try:
        if not request.app[LIMIT].take(request.remote or ""):
            raise OAuthError("temporarily_unavailable", "rate_limited", status=429)
        return await _exchange(request, await _request(request), known)
    except OAuthError as refused:
        _log.warning("token exchange refused: %s (%s)", refused.error, log_field(refused.reason, 255))
        service(request, USAGE).record_refused_exchange(
            service(request, CLOCK)(),
            refused.reason,
            presented=known.presented,
            account_id=known.account_id,
            credential_id=known.credential_id,
            issuer=known.issuer,
            client_address=request.remote,
            user_agent=request.headers.get("User-Agent"),
        )
        return _answer({"error": refused.error}, refused.status)


def add_routes(app: web.Application) -> None:
    app[LIMIT] = RateLimit(RATE, BURST)
    app.router.add_post("/v3/oauth/token", token)
