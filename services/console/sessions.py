"""The console's server-side sessions, in PostgreSQL (``console_sessions``, migration 0008).

A session is opened by signing in with a token the verifier accepts. The browser keeps a random id
(256 bits, in an ``HttpOnly``, ``SameSite=Strict`` cookie, ``Secure`` over TLS); the row keeps only
the id's SHA-256 and the token's secret hash (the HMAC under the pepper the read model holds
already), never the secret. A session ends when it has been idle longer than ``SessionPolicy.idle``,
at ``SessionPolicy.lifetime`` after sign-in whatever its use, at sign-out, and as soon as the
verifier rejects its token (revoked, expired, rotated out, account disabled or deleted): the console
checks the token on every request (``services.console.guard``).

The CSRF token of a session is derived from its id (an HMAC keyed by it), so it needs no column and
only the holder of the cookie can know it.
"""

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta

import asyncpg
import msgspec

SESSION_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")
"""``secrets.token_urlsafe(32)``: anything else in the cookie is no session."""
_CSRF_LABEL = b"tokenledger console csrf"

_OPEN_SQL = """
INSERT INTO console_sessions
    (id_hash, token_id, account_id, secret_hash, created_at, last_seen_at, expires_at)
VALUES ($1, $2::uuid, $3::uuid, $4, $5, $5, $6)
"""
_FIND_SQL = """
UPDATE console_sessions SET last_seen_at = $2
WHERE id_hash = $1 AND expires_at > $2 AND last_seen_at > $2 - $3::interval
RETURNING token_id::text, account_id::text, secret_hash, created_at, expires_at
"""
_END_SQL = "DELETE FROM console_sessions WHERE id_hash = $1"
_PURGE_SQL = "DELETE FROM console_sessions WHERE expires_at <= $1 OR last_seen_at <= $1 - $2::interval"


class SessionPolicy(msgspec.Struct, frozen=True, kw_only=True):
    idle: timedelta = timedelta(minutes=30)
    """A session unused this long is over."""
    lifetime: timedelta = timedelta(hours=12)
    """A session is over this long after sign-in, however much it is used."""


class Session(msgspec.Struct, frozen=True, kw_only=True):
    session_id: str
    token_id: str
    account_id: str
    secret_hash: str
    created_at: datetime
    expires_at: datetime

    @property
    def csrf(self) -> str:
        return csrf_token(self.session_id)


def csrf_token(session_id: str) -> str:
    return hmac.new(session_id.encode(), _CSRF_LABEL, hashlib.sha256).hexdigest()


def csrf_matches(session_id: str, presented: str) -> bool:
    return hmac.compare_digest(csrf_token(session_id).encode(), presented.encode())


def _id_hash(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


class SessionStore:
    def __init__(self, pool: asyncpg.Pool, policy: SessionPolicy) -> None:
        self._pool = pool
        self.policy = policy

    async def open(self, token_id: str, account_id: str, secret_hash: str, now: datetime) -> str:
        """A new session of the token; returns the id for the cookie. Sessions already over are
        purged on the way (sign-in is rare, so the table never grows with abandoned sessions)."""
        session_id = secrets.token_urlsafe(32)
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(_PURGE_SQL, now, self.policy.idle)
            await connection.execute(
                _OPEN_SQL,
                _id_hash(session_id),
                token_id,
                account_id,
                secret_hash,
                now,
                now + self.policy.lifetime,
            )
        return session_id

    async def find(self, session_id: str, now: datetime) -> Session | None:
        """The live session of ``session_id`` (its use now noted), or None: unknown, malformed, idle
        too long or past its lifetime (such a row is deleted)."""
        if not SESSION_ID_PATTERN.fullmatch(session_id):
            return None
        row = await self._pool.fetchrow(_FIND_SQL, _id_hash(session_id), now, self.policy.idle)
        if row is None:
            await self.end(session_id)
            return None
        return Session(session_id=session_id, **dict(row))

    async def end(self, session_id: str) -> None:
        if SESSION_ID_PATTERN.fullmatch(session_id):
            await self._pool.execute(_END_SQL, _id_hash(session_id))
