"""``Idempotency-Key`` on command requests: which request a key names, and who may retry it.

This module owns:

* ``idempotency_key(request)``: the validated header (1..255 printable characters) or None;
* ``request_fingerprint``: method + path and query + SHA-256 of the canonical body (JSON re-encoded with
  sorted keys; an empty body counts as ``{}``, as ``parsing.read_body`` reads it);
* ``IdempotencyStore``: the claims table (migrations 0002 and 0006), one row per (scope, key), where the
  scope is the credential (token id) that used the key, the method and the route;
* ``idempotency_middleware(store_of, credential_of, is_command)`` and ``command_scope(request)``.

What it does not do is answer for the handler. No response is stored and nothing is replayed from
here: every retry runs the route, so authorisation (the route's and the domain's) runs first, each
time, with the caller's rights of now. The answer to a retry comes from the log: under a key, the
handlers derive their ids and secrets from ``command_scope`` (credential, method, route, key and
request fingerprint), find their own events in the stream, and answer with the outcome folded up to
them, or refuse when it no longer holds (``services.commands.recorded``). A client thus gets the
original answer or a clear refusal, never a second decision, whether the first attempt's answer was
lost, its process died, or its key expired.

The flow for a command carrying the header, once the credential is known: the request claims the
key's row (pending) and runs; when it ends, however it ends, the row is completed. A retry with the
same fingerprint claims the completed row again and runs; another fingerprint under the same key
(and scope) is a 422; a retry while a run is pending is a 409, unless that run's claim is older than
``pending_timeout`` (its process died), when the retry takes it over. Rows expire after ``ttl``
(24 h): an expired row is overwritten by any request. Another credential never sees the row: its
scope differs, so for it the key names another request altogether.

Reads are not commands: ``is_command`` leaves them (GET, and POST reads such as introspection) alone,
so a key on them changes nothing and no answer about a token's state is ever kept.

The seams: ``credential_of(request)`` returns the authenticated token's id (the auth middleware,
placed before this one, sets it); None means no credential, and the request runs without idempotency
(routes needing auth reject it themselves). ``store_of(request)`` returns the store, or None while
the service is still starting (503).
"""

import hashlib
import logging
import uuid
from collections.abc import Callable
from datetime import timedelta

import asyncpg
import msgspec
from aiohttp import web
from aiohttp.typedefs import Middleware

from services.api.parsing import raw_body
from services.api.problems import (
    BadRequest,
    Conflict,
    Handler,
    InvalidParameter,
    ServiceUnavailable,
    UnprocessableEntity,
)

_log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
DEFAULT_TTL = timedelta(hours=24)
DEFAULT_PENDING_TIMEOUT = timedelta(minutes=1)
COMMAND_SCOPE = web.RequestKey("tokenledger.command_scope", str)
"""Set by the middleware on a command run under a key: what the handlers derive ids and secrets from."""


def idempotency_key(request: web.Request) -> str | None:
    """The ``Idempotency-Key`` header, or None when absent; 400 when blank, longer than 255
    characters, or holding a character that is not printable (control characters, bytes that are
    not UTF-8)."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not key.strip():
        problem = InvalidParameter(HEADER, "cannot be blank", "min_length", "header", minimum=1)
    elif len(key) > MAX_KEY_LENGTH:
        reason = f"must not have more than {MAX_KEY_LENGTH} characters"
        problem = InvalidParameter(HEADER, reason, "max_length", "header", maximum=MAX_KEY_LENGTH)
    elif not key.isprintable():
        reason = "must hold printable UTF-8 characters only"
        problem = InvalidParameter(HEADER, reason, "invalid", "header")
    else:
        return key
    raise BadRequest([problem])


def _digest(parts: tuple[str | bytes, ...]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part
        digest.update(len(data).to_bytes(4, "big") + data)
    return digest.hexdigest()


def request_fingerprint(method: str, path_qs: str, body: bytes) -> str:
    if not body.strip():
        body = b"{}"
    try:
        canonical = msgspec.json.encode(msgspec.json.decode(body), order="sorted")
    except (msgspec.DecodeError, RecursionError):
        # Not JSON, or nested too deep to re-encode: the bytes themselves are the request.
        canonical = body
    return _digest((method.upper(), path_qs, hashlib.sha256(canonical).digest()))


def command_scope(request: web.Request) -> str | None:
    """The idempotency scope of this command run (None without a key): a digest of the credential,
    method, route, key and request fingerprint, the same on every retry of the same request."""
    return request.get(COMMAND_SCOPE)


class Claimed(msgspec.Struct, frozen=True):
    claim_id: uuid.UUID


class InProgress(msgspec.Struct, frozen=True):
    pass


class Mismatch(msgspec.Struct, frozen=True):
    pass


ClaimOutcome = Claimed | InProgress | Mismatch

_CLAIM = """
INSERT INTO idempotency_keys AS k (scope, key, request_fingerprint, state, claim_id)
VALUES ($1, $2, $3, 'pending', $4)
ON CONFLICT (scope, key) DO UPDATE
SET request_fingerprint = EXCLUDED.request_fingerprint, state = 'pending', claim_id = EXCLUDED.claim_id,
    claimed_at = now(), completed_at = NULL,
    created_at = CASE WHEN k.created_at <= now() - $5::interval THEN now() ELSE k.created_at END
WHERE k.created_at <= now() - $5::interval
   OR (k.request_fingerprint = EXCLUDED.request_fingerprint
       AND (k.state = 'completed' OR k.claimed_at <= now() - $6::interval))
RETURNING k.claim_id
"""
_EXISTING = """
SELECT request_fingerprint FROM idempotency_keys
WHERE scope = $1 AND key = $2 AND created_at > now() - $3::interval
"""
_COMPLETE = """
UPDATE idempotency_keys SET state = 'completed', completed_at = now()
WHERE scope = $1 AND key = $2 AND claim_id = $3 AND state = 'pending'
"""
_PURGE = "DELETE FROM idempotency_keys WHERE created_at <= now() - $1::interval"


class IdempotencyStore:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        ttl: timedelta = DEFAULT_TTL,
        pending_timeout: timedelta = DEFAULT_PENDING_TIMEOUT,
    ) -> None:
        self._pool = pool
        self._ttl = ttl
        self._pending_timeout = pending_timeout

    async def claim(self, scope: str, key: str, fingerprint: str) -> ClaimOutcome:
        """Takes the key for this run, or says why not (another request, a run in progress)."""
        for _ in range(3):  # the row may expire between the two statements
            claim_id = uuid.uuid4()
            won = await self._pool.fetchval(
                _CLAIM, scope, key, fingerprint, claim_id, self._ttl, self._pending_timeout
            )
            if won == claim_id:
                return Claimed(claim_id)
            stored = await self._pool.fetchval(_EXISTING, scope, key, self._ttl)
            if stored is None:
                continue
            return Mismatch() if stored != fingerprint else InProgress()
        return InProgress()

    async def complete(self, scope: str, key: str, claim: Claimed) -> bool:
        """Ends the run; False when its claim was lost (taken over after ``pending_timeout``)."""
        result: str = await self._pool.execute(_COMPLETE, scope, key, claim.claim_id)
        return result == "UPDATE 1"

    async def purge_expired(self) -> int:
        """Deletes expired rows (for a periodic job); returns how many."""
        result: str = await self._pool.execute(_PURGE, self._ttl)
        return int(result.rsplit(" ", 1)[1])


_DATABASE_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


def _route(request: web.Request) -> str:
    """The matched route's template (never the client's raw path: a constant, safe to store)."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else ""


def idempotency_middleware(
    store_of: Callable[[web.Request], IdempotencyStore | None],
    credential_of: Callable[[web.Request], str | None],
    is_command: Callable[[web.Request], bool],
) -> Middleware:
    """Install after ``problem_middleware`` and after authentication."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not is_command(request):
            return await handler(request)
        key = idempotency_key(request)
        credential = credential_of(request) if key is not None else None
        if key is None or credential is None:
            return await handler(request)
        store = store_of(request)
        if store is None:
            raise ServiceUnavailable(retry_after_seconds=1)
        scope = f"{credential} {request.method} {_route(request)}"
        fingerprint = request_fingerprint(request.method, request.path_qs, await raw_body(request))
        outcome = await store.claim(scope, key, fingerprint)
        if isinstance(outcome, Mismatch):
            raise UnprocessableEntity(
                f"The {HEADER} header was already used with a different request",
                [InvalidParameter(HEADER, "was already used with a different request", "invalid", "header")],
            )
        if isinstance(outcome, InProgress):
            raise Conflict(f"a request with this {HEADER} is in progress", headers={"Retry-After": "1"})
        request[COMMAND_SCOPE] = _digest((scope, key, fingerprint))
        try:
            return await handler(request)
        finally:
            try:
                if not await store.complete(scope, key, outcome):
                    _log.warning("an idempotency claim was taken over before its run ended")
            except _DATABASE_ERRORS:
                _log.exception(
                    "could not complete an idempotency claim; it frees itself after pending_timeout"
                )

    return middleware
