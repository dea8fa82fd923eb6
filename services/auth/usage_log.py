"""The usage log: one row per token verification, buffered in memory and appended with COPY.

What a row holds (table ``usage_log``, migration 0005): ``position`` (drawn by the database, in
commit order), ``occurred_at`` (the verification's ``now``), ``outcome`` (``accepted`` or
``rejected``), ``reason`` (for rejections: a ``Rejection`` value — ``malformed``, ``unknown``,
``revoked``, ``expired``, ``disabled``, ``rotated_out``, ``stale`` — or, for a genuine token refused a
right the request needs, ``out_of_scope`` (its account holds the right, its scopes exclude it) or
``no_right`` (its account does not hold the right)), ``token_id`` and ``account_id``
when the presented secret belongs to a token, ``presented_hash`` otherwise, ``operation`` (route
or ``introspect``), ``client_address`` and ``user_agent`` (made recordable, see below), ``recorded_at``.

A refused token exchange (``append_refused_exchange``, operation ``token_exchange``, migration 0009)
is a row of its own kind: rejected, its ``reason`` the exchange's precise internal one (``wrong
issuer``, ``expired``, ``replayed_jti``, ...: never told to the client), no token, the keyed hash of
the presented id-token, and the ``account_id``, ``federated_credential_id`` and claimed ``issuer``
when the exchange knew them (null otherwise, and on every other row).

Never the presented value: a secret that names no token is kept as ``presented_hash`` =
HMAC-SHA256 under a key derived from the deployment pepper for this use only
(``HMAC(pepper, "tokenledger usage_log presented_hash v1")``). Repeated attempts with one value can
be correlated, the value cannot be recovered without the pepper, and the hash can never be matched
against the ``secret_hash`` lookup keys of the token read model (a different key).

Off the verification path: ``append`` is synchronous, does no I/O and costs a tuple (and, for
an unknown secret, one HMAC). ``flush`` (run by ``UsageRecorder``'s background task every flush
interval, ``TOKENLEDGER_USAGE_FLUSH_SECONDS``, default 1 s, and on stop) takes what is buffered in
batches of at most ``max_batch`` rows and stores each with ONE ``COPY`` in a transaction that also
records the batch id in ``usage_log_batches``: a batch whose commit succeeded but whose answer was
lost is retried as it is and recognised, never stored twice. A batch that failed for want of the
database (a lost connection, a timeout) is retried before anything newer.

Client text is made storable on the way in: ``operation`` (the raw path of a request no route
matches), ``client_address`` and ``user_agent`` go through ``services.client_text.recordable``
(secrets redacted, NUL, controls, undecodable bytes and other non-printing characters escaped,
bounded), so no request can write a row PostgreSQL refuses. Should a row still be refused for its
content (a Python encoding error, or a PostgreSQL data or constraint error: storing it again would
fail the same way), the batch is split in halves, each stored on its own, until the refused rows
stand alone: each of them is set aside (``metrics.set_aside``, logged once, the latest
``MAX_SET_ASIDE`` kept in ``set_aside`` for inspection) and every other row is stored. A bad row
never blocks the rows behind it.

Bounded memory: at most ``max_buffered`` rows wait in the buffer, plus one batch being stored
(``max_batch`` rows, perhaps split), plus ``MAX_SET_ASIDE`` set-aside rows. When the buffer is
full the OLDEST row is dropped and counted (``metrics.dropped``): during an outage the log keeps
the latest activity, the one an incident responder looks at first, and an attacker cannot hide new
attempts by flooding early.

Durability bound: a row is durable once the flush that took it commits. A crash (kill -9, power
loss) loses the rows recorded since the last flush took its batch: at most one flush interval of
verifications, plus the duration of the flush then in progress, while the database accepts writes
(during an outage, what is buffered, at most ``max_buffered`` rows). A clean stop flushes
everything.
"""

import asyncio
import hashlib
import hmac
import logging
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services import metrics
from services.auth.principal import Principal, Rejection, Verification
from services.client_text import recordable

_log = logging.getLogger(__name__)

ACCEPTED = "accepted"
REJECTED = "rejected"
OUT_OF_SCOPE = "out_of_scope"
NO_RIGHT = "no_right"
REFUSALS = (OUT_OF_SCOPE, NO_RIGHT)
"""Why a genuine token was refused a right."""
REASONS = (*(reason.value for reason in Rejection), *REFUSALS)
"""Every ``reason`` a rejected row may carry."""

MAX_OPERATION = 200
MAX_USER_AGENT = 256
MAX_CLIENT_ADDRESS = 64
MAX_ISSUER = 255
MAX_REASON = 200
EXCHANGE_OPERATION = "token_exchange"
"""The operation of a refused token exchange's row."""
MAX_SET_ASIDE = 1000
"""How many set-aside rows (refused for their content) are kept in memory for inspection."""

TABLE = "usage_log"
COLUMNS = (
    "occurred_at",
    "outcome",
    "reason",
    "token_id",
    "account_id",
    "presented_hash",
    "operation",
    "client_address",
    "user_agent",
    "federated_credential_id",
    "issuer",
)
Row = tuple[
    datetime,
    str,
    str | None,
    str | None,
    str | None,
    bytes | None,
    str,
    str | None,
    str | None,
    str | None,
    str | None,
]

_HASH_KEY_LABEL = b"tokenledger usage_log presented_hash v1"
# Two-key advisory lock (never the event store's one-key stream locks): writers draw positions in turn.
_LOCK_SQL = "SELECT pg_advisory_xact_lock(1953264993, 1)"
_ROW_ERRORS = (ValueError, TypeError, asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)
"""Errors caused by what the rows hold (Python's encoding and type errors, PostgreSQL's classes 22
and 23): storing the same rows again fails the same way. Anything else is the database's state."""
_BATCH_SQL = (
    "INSERT INTO usage_log_batches (batch_id, row_count) VALUES ($1, $2)"
    " ON CONFLICT (batch_id) DO NOTHING RETURNING batch_id"
)


class PresentedHasher:
    """The keyed hash of a presented value that names no token (see the module docstring)."""

    def __init__(self, pepper: bytes) -> None:
        if not pepper:
            raise ValueError("the pepper must not be empty")
        key = hmac.new(pepper, _HASH_KEY_LABEL, hashlib.sha256).digest()
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)

    def __call__(self, presented: str) -> bytes:
        mac = self._keyed.copy()
        mac.update(presented.encode("utf-8", "surrogatepass"))
        return mac.digest()


@dataclass
class UsageLogMetrics:
    appended: int = 0
    dropped: int = 0
    """Rows dropped (the oldest) because the buffer was full."""
    flushes: int = 0
    flushed_rows: int = 0
    flush_errors: int = 0
    retried_batches: int = 0
    """Batches found already stored on a retry (the answer of their commit was lost)."""
    refused_batches: int = 0
    """Batches refused for their content, split to find the refused rows."""
    set_aside: int = 0
    """Rows refused for their content, set aside so the rows behind them are stored."""


@dataclass(frozen=True, slots=True)
class _Batch:
    batch_id: uuid.UUID
    rows: list[Row]


class UsageLog:
    """Buffers verification rows and stores them in batches. ``flush`` is called by its owner."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        pepper: bytes,
        *,
        max_buffered: int = 50_000,
        max_batch: int = 10_000,
        flush_timeout: float = 30.0,
    ) -> None:
        if max_buffered <= 0 or max_batch <= 0:
            raise ValueError("max_buffered and max_batch must be positive")
        self._pool = pool
        self._hash = PresentedHasher(pepper)
        self._buffer: deque[Row] = deque(maxlen=max_buffered)
        self._max_batch = max_batch
        self._flush_timeout = flush_timeout
        self._retained: deque[_Batch] = deque()
        """Batches taken from the buffer and not stored yet, oldest first: after the database
        failed, retried as they are before anything newer."""
        self._set_aside: deque[Row] = deque(maxlen=MAX_SET_ASIDE)
        self._lock = asyncio.Lock()
        self.metrics = UsageLogMetrics()

    def hash_of(self, presented: str) -> bytes:
        """The ``presented_hash`` a presented value is recorded under (to look up whether a leaked
        or suspicious value was tried)."""
        return self._hash(presented)

    @property
    def pending(self) -> int:
        """Rows held in memory to be stored: buffered, plus the batches being stored."""
        return len(self._buffer) + sum(len(batch.rows) for batch in self._retained)

    @property
    def set_aside(self) -> list[Row]:
        """The latest rows refused for their content (at most ``MAX_SET_ASIDE``), oldest first."""
        return list(self._set_aside)

    def append(
        self,
        verification: Verification,
        now: datetime,
        operation: str,
        *,
        presented: str = "",
        client_address: str | None = None,
        user_agent: str | None = None,
        refusal: str | None = None,
    ) -> None:
        """Buffers one verification. ``presented`` is needed (and only hashed) when the
        verification names no token; ``refusal`` (one of ``REFUSALS``) marks a genuine token
        refused a right."""
        if refusal is not None and refusal not in REFUSALS:
            raise ValueError(f"not a refusal: {refusal!r}")
        verdict = verification.verdict
        if isinstance(verdict, Principal):
            outcome, reason = (REJECTED, refusal) if refusal is not None else (ACCEPTED, None)
        else:
            outcome, reason = REJECTED, verdict.value
        token_id = verification.token_id
        row: Row = (
            now,
            outcome,
            reason,
            token_id,
            verification.account_id,
            None if token_id is not None else self._hash(presented),
            recordable(operation, MAX_OPERATION) or "",
            recordable(client_address, MAX_CLIENT_ADDRESS),
            recordable(user_agent, MAX_USER_AGENT),
            None,
            None,
        )
        self._buffered(row)

    def append_refused_exchange(
        self,
        now: datetime,
        reason: str,
        *,
        presented: str,
        account_id: str | None = None,
        credential_id: str | None = None,
        issuer: str | None = None,
        client_address: str | None = None,
        user_agent: str | None = None,
    ) -> None:
        """Buffers one refused token exchange (operation ``EXCHANGE_OPERATION``): ``reason`` is the
        precise internal one the client is never told; ``presented`` (the id-token, or whatever
        came as one) is only hashed; the account, federated credential and claimed issuer when the
        exchange got as far as knowing them."""
        row: Row = (
            now,
            REJECTED,
            recordable(reason, MAX_REASON) or "unknown",
            None,
            account_id,
            self._hash(presented),
            EXCHANGE_OPERATION,
            recordable(client_address, MAX_CLIENT_ADDRESS),
            recordable(user_agent, MAX_USER_AGENT),
            credential_id,
            recordable(issuer, MAX_ISSUER),
        )
        self._buffered(row)

    def _buffered(self, row: Row) -> None:
        if len(self._buffer) == self._buffer.maxlen:
            self.metrics.dropped += 1  # the deque drops the oldest row
            metrics.USAGE_DROPPED.inc()
        self._buffer.append(row)
        self.metrics.appended += 1

    async def flush(self) -> bool:
        """Stores the retained batches, then what was buffered when the call began. True when every
        row was stored or set aside; False when the database failed (what is left is retained, in
        order, for the next call)."""
        async with self._lock:
            remaining = len(self._buffer)
            while True:
                if not self._retained:
                    taken = min(remaining, self._max_batch, len(self._buffer))
                    if taken == 0:
                        return True
                    remaining -= taken
                    rows = [self._buffer.popleft() for _ in range(taken)]
                    self._retained.append(_Batch(uuid.uuid4(), rows))
                if not await self._store(self._retained[0]):
                    return False

    async def _store(self, batch: _Batch) -> bool:
        """Stores the oldest retained batch and takes it off (or, refused for its content, puts its
        halves or sets its row aside). False when the database failed: the batch stays first."""
        try:
            async with asyncio.timeout(self._flush_timeout):
                with metrics.USAGE_FLUSH_LATENCY.time():
                    stored_before = await self._copy(batch)
        except asyncio.CancelledError:
            raise
        except _ROW_ERRORS as error:
            self._retained.popleft()
            self._refused(batch, error)
            return True
        except Exception as error:
            self.metrics.flush_errors += 1
            metrics.USAGE_FLUSH_ERRORS.inc()
            _log.warning("could not store %d usage log row(s) (%s); retrying", len(batch.rows), error)
            return False
        self._retained.popleft()
        if stored_before:
            self.metrics.retried_batches += 1
        else:
            self.metrics.flushes += 1
            self.metrics.flushed_rows += len(batch.rows)
            metrics.USAGE_STORED.inc(len(batch.rows))
        return True

    def _refused(self, batch: _Batch, error: Exception) -> None:
        """A batch refused for what its rows hold (nothing of it was stored: the error ends its
        transaction): its halves go first, each a batch of its own; a single row is set aside."""
        if len(batch.rows) > 1:
            self.metrics.refused_batches += 1
            middle = len(batch.rows) // 2
            self._retained.appendleft(_Batch(uuid.uuid4(), batch.rows[middle:]))
            self._retained.appendleft(_Batch(uuid.uuid4(), batch.rows[:middle]))
            return
        [row] = batch.rows
        self.metrics.set_aside += 1
        metrics.USAGE_SET_ASIDE.inc()
        self._set_aside.append(row)
        _log.warning("usage log row refused (%s), set aside: %s", ascii(str(error)), ascii(row))

    async def _copy(self, batch: _Batch) -> bool:
        """Stores the batch in one transaction; True when it was stored already (a retry)."""
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(_LOCK_SQL)
            if await connection.fetchval(_BATCH_SQL, batch.batch_id, len(batch.rows)) is None:
                return True
            await connection.copy_records_to_table(TABLE, records=batch.rows, columns=COLUMNS)
            return False

    async def close(self, *, attempts: int = 3) -> None:
        """Flushes what is left (a few attempts); logs what could not be stored."""
        for _ in range(attempts):
            if not self.pending:
                return
            await self.flush()
        if self.pending:
            _log.warning("stopping with %d usage log row(s) not stored", self.pending)
