"""``Idempotency-Key`` for POST requests, with Stripe's semantics, stored in ``idempotency_keys``.

This module owns:

* ``idempotency_key(request)``: the validated header (1..255 characters) or None. Handlers derive
  deterministic ids from it; combine it with the principal, since keys are scoped per principal;
* ``request_fingerprint``: method + path and query + SHA-256 of the canonical body (JSON re-encoded with
  sorted keys; an empty body counts as ``{}``, as ``parsing.read_body`` reads it);
* ``IdempotencyStore``: the table (migration 0002). Bodies are stored sealed with AES-256-GCM under a key
  derived by HKDF-SHA256 (info ``tokenledger idempotency``) from the deployment pepper. All bodies are
  sealed, not only the token-secret ones, so none can be missed; the row's identity (principal, key,
  fingerprint, status, content type) is the associated data, so a sealed body cannot be moved to
  another row;
* ``idempotency_middleware(store_of, principal_of, to_problem=None)``.

The flow for a POST carrying the header, once the principal is known: the first request claims the key
(a pending row); its response, if 2xx/4xx except 429, is stored (status, Content-Type, body), else
(5xx, 429, an exception, a streamed response) the row is deleted so the client can retry. A retry with
the same fingerprint gets the stored response byte for byte plus ``Idempotent-Replayed: true`` and runs
nothing (a stored problem keeps the first request's ``instance``; ``X-Request-Id`` is the retry's own);
another fingerprint is a 422; a retry while the first is pending is a 409. Rows expire after ``ttl``
(24 h): an expired row is ignored and overwritten. A pending row older than ``pending_timeout`` (the
first request's process died) is taken over by a retry with the same fingerprint; the handlers'
deterministic ids keep such a second run harmless.

The seams: ``principal_of(request)`` returns the authenticated account id (the auth middleware, placed
before this one, sets it); None means no principal, and the request runs without idempotency (routes
needing auth reject it themselves). ``store_of(request)`` returns the store, or None while the service is
still starting (503).
"""

import hashlib
import logging
import os
import uuid
from collections.abc import Callable
from datetime import timedelta

import asyncpg
import msgspec
from aiohttp import web
from aiohttp.typedefs import Middleware
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from services.api.parsing import raw_body
from services.api.problems import (
    BadRequest,
    Conflict,
    Handler,
    InvalidParameter,
    ProblemError,
    ServiceUnavailable,
    UnprocessableEntity,
    as_problem,
    problem_response,
)

_log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
DEFAULT_TTL = timedelta(hours=24)
DEFAULT_PENDING_TIMEOUT = timedelta(minutes=1)
HKDF_INFO = b"tokenledger idempotency"
_SEALED_FORMAT = b"\x01"
_NONCE_BYTES = 12


def idempotency_key(request: web.Request) -> str | None:
    """The ``Idempotency-Key`` header, or None when absent; 400 when empty or longer than 255."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not key.strip():
        problem = InvalidParameter(HEADER, "cannot be blank", "min_length", "header", minimum=1)
    elif len(key) > MAX_KEY_LENGTH:
        reason = f"must not have more than {MAX_KEY_LENGTH} characters"
        problem = InvalidParameter(HEADER, reason, "max_length", "header", maximum=MAX_KEY_LENGTH)
    else:
        return key
    raise BadRequest([problem])


def request_fingerprint(method: str, path_qs: str, body: bytes) -> str:
    if not body.strip():
        body = b"{}"
    try:
        canonical = msgspec.json.encode(msgspec.json.decode(body), order="sorted")
    except msgspec.DecodeError:
        canonical = body
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path_qs.encode(), hashlib.sha256(canonical).digest()):
        digest.update(len(part).to_bytes(4, "big") + part)
    return digest.hexdigest()


class StoredResponse(msgspec.Struct, frozen=True):
    status: int
    content_type: str | None
    body: bytes


class Claimed(msgspec.Struct, frozen=True):
    claim_id: uuid.UUID


class InProgress(msgspec.Struct, frozen=True):
    pass


class Mismatch(msgspec.Struct, frozen=True):
    pass


class Replay(msgspec.Struct, frozen=True):
    response: StoredResponse


ClaimOutcome = Claimed | InProgress | Mismatch | Replay


class ResponseCipher:
    """AES-256-GCM under a key derived from the pepper; sealed = format byte, nonce, ciphertext+tag."""

    def __init__(self, pepper: bytes) -> None:
        if not pepper:
            raise ValueError("the idempotency store needs a non-empty pepper")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(pepper)
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, associated: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return _SEALED_FORMAT + nonce + self._aead.encrypt(nonce, plaintext, associated)

    def open(self, sealed: bytes, associated: bytes) -> bytes:
        if sealed[:1] != _SEALED_FORMAT:
            raise ValueError("unknown sealed response format")
        nonce = sealed[1 : 1 + _NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, sealed[1 + _NONCE_BYTES :], associated)
        except InvalidTag:
            raise ValueError("the stored response does not belong to this row or this pepper") from None


def _associated(principal: str, key: str, fingerprint: str, status: int, content_type: str | None) -> bytes:
    return msgspec.json.encode([principal, key, fingerprint, status, content_type])


_CLAIM = """
INSERT INTO idempotency_keys AS k (principal, key, request_fingerprint, state, claim_id)
VALUES ($1, $2, $3, 'pending', $4)
ON CONFLICT (principal, key) DO UPDATE
SET request_fingerprint = EXCLUDED.request_fingerprint, state = 'pending', claim_id = EXCLUDED.claim_id,
    response_status = NULL, response_content_type = NULL, response_body = NULL,
    created_at = now(), completed_at = NULL
WHERE k.created_at <= now() - $5::interval
   OR (k.state = 'pending' AND k.request_fingerprint = EXCLUDED.request_fingerprint
       AND k.created_at <= now() - $6::interval)
RETURNING k.claim_id
"""
_EXISTING = """
SELECT request_fingerprint, state, response_status, response_content_type, response_body
FROM idempotency_keys
WHERE principal = $1 AND key = $2 AND created_at > now() - $3::interval
"""
_COMPLETE = """
UPDATE idempotency_keys
SET state = 'completed', response_status = $4, response_content_type = $5, response_body = $6,
    completed_at = now()
WHERE principal = $1 AND key = $2 AND claim_id = $3 AND state = 'pending'
"""
_RELEASE = "DELETE FROM idempotency_keys WHERE principal = $1 AND key = $2 AND claim_id = $3"
_PURGE = "DELETE FROM idempotency_keys WHERE created_at <= now() - $1::interval"


class IdempotencyStore:
    def __init__(
        self,
        pool: asyncpg.Pool,
        pepper: bytes,
        *,
        ttl: timedelta = DEFAULT_TTL,
        pending_timeout: timedelta = DEFAULT_PENDING_TIMEOUT,
    ) -> None:
        self._pool = pool
        self._cipher = ResponseCipher(pepper)
        self._ttl = ttl
        self._pending_timeout = pending_timeout

    async def claim(self, principal: str, key: str, fingerprint: str) -> ClaimOutcome:
        """Takes the key for this request, or says why not (in progress, other request, stored)."""
        for _ in range(3):  # the row may be released or expire between the two statements
            claim_id = uuid.uuid4()
            won = await self._pool.fetchval(
                _CLAIM, principal, key, fingerprint, claim_id, self._ttl, self._pending_timeout
            )
            if won == claim_id:
                return Claimed(claim_id)
            row = await self._pool.fetchrow(_EXISTING, principal, key, self._ttl)
            if row is None:
                continue
            if row["request_fingerprint"] != fingerprint:
                return Mismatch()
            if row["state"] != "completed":
                return InProgress()
            status: int = row["response_status"]
            content_type: str | None = row["response_content_type"]
            associated = _associated(principal, key, fingerprint, status, content_type)
            body = self._cipher.open(row["response_body"], associated)
            return Replay(StoredResponse(status, content_type, body))
        return InProgress()

    async def complete(
        self, principal: str, key: str, fingerprint: str, claim: Claimed, response: StoredResponse
    ) -> bool:
        """Stores the response; False when the claim was lost (taken over after ``pending_timeout``)."""
        associated = _associated(principal, key, fingerprint, response.status, response.content_type)
        sealed = self._cipher.seal(response.body, associated)
        result: str = await self._pool.execute(
            _COMPLETE, principal, key, claim.claim_id, response.status, response.content_type, sealed
        )
        return result == "UPDATE 1"

    async def release(self, principal: str, key: str, claim: Claimed) -> None:
        await self._pool.execute(_RELEASE, principal, key, claim.claim_id)

    async def purge_expired(self) -> int:
        """Deletes expired rows (for a periodic job); returns how many."""
        result: str = await self._pool.execute(_PURGE, self._ttl)
        return int(result.rsplit(" ", 1)[1])


def _storable(response: web.StreamResponse) -> StoredResponse | None:
    if not isinstance(response, web.Response) or response.prepared:
        return None
    if not 200 <= response.status < 500 or response.status == 429:
        return None
    body = response.body
    if body is None:
        body = b""
    if not isinstance(body, bytes):
        return None
    return StoredResponse(response.status, response.headers.get("Content-Type"), body)


def _replay(stored: StoredResponse) -> web.Response:
    response = web.Response(status=stored.status, body=stored.body)
    if stored.content_type is not None:
        response.headers["Content-Type"] = stored.content_type
    response.headers[REPLAYED_HEADER] = "true"
    return response


ErrorMapper = Callable[[Exception], ProblemError | None]
_DATABASE_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


async def _release(store: IdempotencyStore, principal: str, key: str, claim: Claimed) -> None:
    """Frees the key for a retry; a failure here must not hide what is being answered."""
    try:
        await store.release(principal, key, claim)
    except _DATABASE_ERRORS:
        _log.exception("could not release an idempotency key; it frees itself after pending_timeout")


async def _run_claimed(
    request: web.Request,
    handler: Handler,
    store: IdempotencyStore,
    scope: tuple[str, str, str],
    claim: Claimed,
    to_problem: ErrorMapper | None,
) -> web.StreamResponse:
    principal, key, fingerprint = scope
    try:
        try:
            response = await handler(request)
        except Exception as error:
            problem = as_problem(request, error)
            if problem is None and to_problem is not None:
                problem = to_problem(error)
            if problem is None:
                raise
            response = problem_response(request, problem)
    except BaseException:
        await _release(store, principal, key, claim)
        raise
    stored = _storable(response)
    if stored is None:
        await _release(store, principal, key, claim)
        return response
    try:
        if not await store.complete(principal, key, fingerprint, claim, stored):
            _log.warning("idempotency claim was taken over before the response was stored")
    except _DATABASE_ERRORS:
        # The client still gets its response; the row stays pending until pending_timeout.
        _log.exception("could not store an idempotent response")
    return response


def idempotency_middleware(
    store_of: Callable[[web.Request], IdempotencyStore | None],
    principal_of: Callable[[web.Request], str | None],
    *,
    to_problem: ErrorMapper | None = None,
) -> Middleware:
    """Install after ``problem_middleware`` and after authentication. ``to_problem`` maps the domain
    exceptions that an outer middleware would turn into 4xx problems, so that they are stored and
    replayed like any 4xx (exceptions it maps to None are bugs: the claim is released)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method != "POST":
            return await handler(request)
        key = idempotency_key(request)
        principal = principal_of(request) if key is not None else None
        if key is None or principal is None:
            return await handler(request)
        store = store_of(request)
        if store is None:
            raise ServiceUnavailable(retry_after_seconds=1)
        fingerprint = request_fingerprint(request.method, request.path_qs, await raw_body(request))
        outcome = await store.claim(principal, key, fingerprint)
        if isinstance(outcome, Claimed):
            scope = (principal, key, fingerprint)
            return await _run_claimed(request, handler, store, scope, outcome, to_problem)
        if isinstance(outcome, Replay):
            return _replay(outcome.response)
        if isinstance(outcome, Mismatch):
            raise UnprocessableEntity(
                f"The {HEADER} header was already used with a different request",
                [InvalidParameter(HEADER, "was already used with a different request", "invalid", "header")],
            )
        raise Conflict(f"a request with this {HEADER} is in progress", headers={"Retry-After": "1"})

    return middleware
