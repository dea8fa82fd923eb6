"""The usage log (real PostgreSQL): every verification recorded with its outcome, unknown secrets by a
keyed hash only, batches stored once, memory bounded, stop flushes, a crash loses at most the last
flush interval, the table is append-only, and the export streams it."""

import asyncio
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from events.accounts import AccountDisabled
from events.tokens import TokenRevoked, TokenRotated
from services.audit.usage_export import UsageExportFilter, export_usage_pages
from services.auth.principal import Principal, Rejection, Verification
from services.auth.usage import UsageRecorder
from services.auth.usage_log import PresentedHasher, UsageLog
from services.tokens.secrets import generate_secret, secret_hash
from tests.integration.test_verifier_support import PEPPER, World, dispatcher_over, open_world, utc_now

CRASH_SCRIPT = Path(__file__).with_name("usage_crash_recorder.py")
REPO = Path(__file__).resolve().parents[2]
CRASH_APPLICATION = "usage-crash"
CRASH_FLUSH_SECONDS = 0.25
CRASH_FLUSHES_BEFORE_KILL = 6
SCHEDULING_SLACK_SECONDS = 1.0
"""Allowance for a loaded machine: event-loop lateness and the duration of the flush in progress."""

ROWS_SQL = """
SELECT position, occurred_at, outcome, reason, token_id::text, account_id::text, presented_hash,
       operation, client_address, user_agent
FROM usage_log ORDER BY position
"""


@pytest.fixture
async def world(empty_database: str) -> AsyncIterator[World]:
    async with open_world(empty_database) as world:
        yield world


async def rows(world: World) -> list[asyncpg.Record]:
    found: list[asyncpg.Record] = await world.pool.fetch(ROWS_SQL)
    return found


# -- what is recorded --------------------------------------------------------------------------------


async def test_every_verification_is_recorded_with_its_outcome(world: World) -> None:
    verifier = await world.verifier()
    account = await world.account()
    disabled_account = await world.account()
    accepted = await world.issue(account)
    revoked = await world.issue(account)
    expired = await world.issue(account, expires_at=utc_now() - timedelta(seconds=1))
    disabled = await world.issue(disabled_account)
    rotated = await world.issue(account)
    await world.append(
        f"token-{revoked.token_id}", TokenRevoked(token_id=revoked.token_id, account_id=account, reason="x")
    )
    await world.append(f"account-{disabled_account}", AccountDisabled(account_id=disabled_account))
    await world.append(
        f"token-{rotated.token_id}",
        TokenRotated(
            token_id=rotated.token_id,
            account_id=account,
            secret_hash=secret_hash(generate_secret(), PEPPER),
            secret_version=2,
        ),
    )
    await world.settle(verifier)
    unknown, malformed = generate_secret(), "spat_not-a-token"

    log = UsageLog(world.pool, PEPPER)
    recorder = UsageRecorder(dispatcher_over(world.store), log=log)
    now = utc_now()
    cases = {
        "accepted": (accepted, accepted.secret),
        "revoked": (revoked, revoked.secret),
        "expired": (expired, expired.secret),
        "disabled": (disabled, disabled.secret),
        "rotated_out": (rotated, rotated.secret),
        "unknown": (None, unknown),
        "malformed": (None, malformed),
    }
    for case, (_token, presented) in cases.items():
        verification = await verifier.check(presented, now)
        recorder.record_verification(
            verification, now, case, presented=presented, client_address="10.0.0.9", user_agent="curl/8"
        )
    genuine = await verifier.check(accepted.secret, now)
    for refusal in ("out_of_scope", "no_right"):
        recorder.record_verification(genuine, now, refusal, refusal=refusal)
    assert await recorder.flush()

    stored = {row["operation"]: row for row in await rows(world)}
    assert set(stored) == {*cases, "out_of_scope", "no_right"}
    assert [stored["accepted"]["outcome"], stored["accepted"]["reason"]] == ["accepted", None]
    for case, (token, presented) in cases.items():
        row = stored[case]
        assert (row["client_address"], row["user_agent"], row["occurred_at"]) == ("10.0.0.9", "curl/8", now)
        if case != "accepted":
            assert (row["outcome"], row["reason"]) == ("rejected", case)
        if token is not None:
            assert (row["token_id"], row["account_id"], row["presented_hash"]) == (
                token.token_id,
                token.account_id,
                None,
            )
        else:
            assert row["token_id"] is None and row["account_id"] is None
            assert row["presented_hash"] == PresentedHasher(PEPPER)(presented)
            assert row["presented_hash"].hex() != secret_hash(presented, PEPPER)
    for refusal in ("out_of_scope", "no_right"):
        refused = stored[refusal]
        assert (refused["outcome"], refused["reason"], refused["token_id"]) == (
            "rejected",
            refusal,
            accepted.token_id,
        )
    # The genuine token's uses also feed token.used (last_used_at), throttled to one.
    assert recorder.metrics.recorded == 1 and recorder.metrics.throttled == 2

    for _token, presented in cases.values():
        leaks = await world.pool.fetchval(
            "SELECT count(*) FROM usage_log u WHERE strpos(u::text, $1) > 0", presented
        )
        assert leaks == 0


async def test_long_strings_are_truncated(world: World) -> None:
    log = UsageLog(world.pool, PEPPER)
    log.append(
        Verification(Rejection.UNKNOWN),
        utc_now(),
        "GET /" + "p" * 1000,
        presented="x",
        client_address="1" * 1000,
        user_agent="A" * 100_000,
    )
    assert await log.flush()
    [row] = await rows(world)
    assert (len(row["operation"]), len(row["client_address"]), len(row["user_agent"])) == (200, 64, 256)


# -- batches, memory, stop ---------------------------------------------------------------------------


class LosingAnswerLog(UsageLog):
    """The real log, losing the answer of its next commit (stored, but the caller sees an error)."""

    lose_next = True

    async def _copy(self, batch):  # type: ignore[no-untyped-def]
        stored_before = await super()._copy(batch)
        if self.lose_next:
            self.lose_next = False
            raise ConnectionResetError("answer lost")
        return stored_before


async def test_a_batch_whose_answer_was_lost_is_stored_once(world: World) -> None:
    log = LosingAnswerLog(world.pool, PEPPER)
    now = utc_now()
    for n in range(3):
        log.append(Verification(Rejection.UNKNOWN), now, f"op-{n}", presented="x")
    assert not await log.flush()
    log.append(Verification(Rejection.UNKNOWN), now, "op-3", presented="x")  # arrives in between
    assert await log.flush()
    assert [row["operation"] for row in await rows(world)] == ["op-0", "op-1", "op-2", "op-3"]
    assert (log.metrics.flush_errors, log.metrics.retried_batches, log.metrics.flushed_rows) == (1, 1, 1)
    assert await world.pool.fetchval("SELECT count(*) FROM usage_log_batches") == 2


async def test_memory_is_bounded_and_the_oldest_rows_are_dropped(world: World) -> None:
    log = UsageLog(world.pool, PEPPER, max_buffered=5, max_batch=2)
    now = utc_now()
    for n in range(12):
        log.append(Verification(Rejection.UNKNOWN), now, f"op-{n}", presented="x")
        assert log.pending <= 5
    assert (log.metrics.appended, log.metrics.dropped) == (12, 7)
    assert await log.flush()
    assert [row["operation"] for row in await rows(world)] == [f"op-{n}" for n in range(7, 12)]
    assert await world.pool.fetchval("SELECT count(*) FROM usage_log_batches") == 3  # 2 + 2 + 1
    assert log.pending == 0


async def test_stop_flushes_what_is_buffered(world: World) -> None:
    recorder = UsageRecorder(
        dispatcher_over(world.store), log=UsageLog(world.pool, PEPPER), flush_interval=3600
    )
    await recorder.start()
    now = utc_now()
    for n in range(50):
        recorder.record_verification(Verification(Rejection.UNKNOWN), now, f"op-{n}", presented="x")
    assert not await rows(world)
    await recorder.stop()
    assert [row["operation"] for row in await rows(world)] == [f"op-{n}" for n in range(50)]


async def test_the_usage_log_is_append_only(world: World) -> None:
    log = UsageLog(world.pool, PEPPER)
    log.append(Verification(Rejection.UNKNOWN), utc_now(), "op", presented="x")
    assert await log.flush()
    for statement in (
        "UPDATE usage_log SET operation = 'changed'",
        "DELETE FROM usage_log",
        "TRUNCATE usage_log",
        "DELETE FROM usage_log_batches",
        "TRUNCATE usage_log_batches",
    ):
        with pytest.raises(asyncpg.PostgresError) as raised:
            await world.pool.execute(statement)
        assert raised.value.sqlstate == "TLI01", statement
    assert len(await rows(world)) == 1


# -- a crash -----------------------------------------------------------------------------------------


async def _flush_reports(
    process: asyncio.subprocess.Process, reports: list[int], enough: asyncio.Event
) -> None:
    assert process.stdout is not None
    while line := await process.stdout.readline():
        if not line.endswith(b"\n"):
            break
        reports.append(json.loads(line)["flushed_rows"])
        if len(reports) >= CRASH_FLUSHES_BEFORE_KILL:
            enough.set()


async def _wait_for_disconnect(pool: asyncpg.Pool) -> None:
    """Until the killed child's sessions have ended (an open transaction rolled back)."""
    async with asyncio.timeout(10):
        while await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND backend_type = 'client backend' AND application_name = $1",
            CRASH_APPLICATION,
        ):
            await asyncio.sleep(0.05)


async def test_a_crash_loses_at_most_the_last_flush_interval(world: World) -> None:
    """SIGKILL a process recording continuously: every flush it saw commit is stored, what is stored is
    a gapless prefix of what it recorded, and the rows lost cover at most the last flush interval
    (plus the flush in progress and scheduling lateness)."""
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    child_dsn = world.dsn + ("&" if "?" in world.dsn else "?") + f"application_name={CRASH_APPLICATION}"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CRASH_SCRIPT),
        child_dsn,
        "--flush-seconds",
        str(CRASH_FLUSH_SECONDS),
        stdout=asyncio.subprocess.PIPE,
        env=environment,
    )
    reports: list[int] = []
    enough = asyncio.Event()
    reader = asyncio.create_task(_flush_reports(child, reports, enough))
    try:
        async with asyncio.timeout(60):
            await enough.wait()
        await asyncio.sleep(CRASH_FLUSH_SECONDS * 0.8)  # crash late in an interval: the worst case
    finally:
        child.send_signal(signal.SIGKILL)
        killed_at = utc_now()
        await child.wait()
        await reader
    await _wait_for_disconnect(world.pool)

    stored = await rows(world)
    numbers = [int(row["operation"].removeprefix("op-")) for row in stored]
    assert numbers == list(range(len(numbers))), "the stored rows are not a gapless prefix"
    assert len(numbers) >= reports[-1], "a flush the child saw commit is missing"
    lost_window = (killed_at - stored[-1]["occurred_at"]).total_seconds()
    assert lost_window <= CRASH_FLUSH_SECONDS + SCHEDULING_SLACK_SECONDS, lost_window


# -- export ------------------------------------------------------------------------------------------


async def test_the_export_streams_the_log_in_pages(world: World) -> None:
    verifier = await world.verifier()
    account = await world.account()
    token = await world.issue(account)
    await world.settle(verifier)
    log = UsageLog(world.pool, PEPPER)
    now = utc_now()
    unknown = generate_secret()
    for n in range(7):
        presented = token.secret if n % 2 == 0 else unknown
        log.append(await verifier.check(presented, now), now, f"op-{n}", presented=presented)
    assert await log.flush()

    async def export(selection: UsageExportFilter) -> list[dict[str, object]]:
        text = b"".join([chunk async for chunk in export_usage_pages(world.pool, selection, page_size=2)])
        assert token.secret.encode() not in text and unknown.encode() not in text
        return [json.loads(line) for line in text.splitlines()]

    everything = await export(UsageExportFilter())
    assert [line["operation"] for line in everything] == [f"op-{n}" for n in range(7)]
    first = everything[0]
    assert (first["outcome"], first["token_id"], first["account_id"], first["presented_hash"]) == (
        "accepted",
        token.token_id,
        account,
        None,
    )
    assert everything[1]["presented_hash"] == PresentedHasher(PEPPER)(unknown).hex()
    assert everything[1]["reason"] == "unknown"
    assert all(line["federated_credential_id"] is None and line["issuer"] is None for line in everything)
    # RFC 3339 UTC with Z, as every export and the API write instants.
    assert all(
        str(line[field]).endswith("Z") for line in everything for field in ("occurred_at", "recorded_at")
    )

    resumed = await export(UsageExportFilter(after=int(str(everything[3]["position"]))))
    assert resumed == everything[4:]
    mine = await export(UsageExportFilter(account_id=account))
    assert [line["operation"] for line in mine] == ["op-0", "op-2", "op-4", "op-6"]
    assert await export(UsageExportFilter(recorded_from=utc_now() + timedelta(hours=1))) == []


async def test_the_export_shows_what_a_refused_exchange_knew(world: World) -> None:
    log = UsageLog(world.pool, PEPPER)
    account, credential = str(uuid.uuid4()), str(uuid.uuid4())
    log.append_refused_exchange(
        utc_now(),
        "subject_mismatch",
        presented="eyJ.an.id-token",
        account_id=account,
        credential_id=credential,
        issuer="https://token.actions.githubusercontent.com",
        client_address="10.0.0.9",
    )
    assert await log.flush()
    text = b"".join(
        [chunk async for chunk in export_usage_pages(world.pool, UsageExportFilter(account_id=account))]
    )
    [line] = [json.loads(row) for row in text.splitlines()]
    assert b"eyJ.an.id-token" not in text
    assert (line["outcome"], line["reason"], line["operation"], line["token_id"]) == (
        "rejected",
        "subject_mismatch",
        "token_exchange",
        None,
    )
    assert (line["federated_credential_id"], line["issuer"]) == (
        credential,
        "https://token.actions.githubusercontent.com",
    )
    assert line["presented_hash"] == PresentedHasher(PEPPER)("eyJ.an.id-token").hex()


async def test_verify_and_check_agree(world: World) -> None:
    verifier = await world.verifier()
    account = await world.account()
    token = await world.issue(account)
    await world.settle(verifier)
    now = utc_now()
    checked = await verifier.check(token.secret, now)
    assert isinstance(checked.verdict, Principal)
    assert (checked.token_id, checked.account_id) == (token.token_id, account)
    assert await verifier.verify(token.secret, now) == checked.verdict
    assert await verifier.check(generate_secret(), now) == Verification(Rejection.UNKNOWN)
