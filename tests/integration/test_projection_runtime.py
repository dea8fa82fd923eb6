"""The projection runtime against a real PostgreSQL: following the log, poison events, one active
runner per projection across processes, version changes, status and lag, and read-your-writes."""

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from events import RecordedEvent
from events.accounts import AccountCreated, AccountDeleted, AccountRoleAssigned, AccountUpdated
from events.teams import TeamCreated, TeamMemberAdded
from events.tokens import TokenIssued, TokenRevoked, TokenRotated, TokenUsed
from projections.accounts import AccountsProjection
from projections.base import Statement
from projections.catalogue import ALL_PROJECTIONS
from projections.runner import RunnerState
from tests.integration.test_projection_support import Journal, World, new_id, running


async def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_runner_follows_the_log_into_every_read_model(empty_database: str) -> None:
    async with running(empty_database) as world:
        account, token, team = new_id(), new_id(), new_id()
        entity, assignment = new_id(), new_id()
        used_at = datetime(2025, 5, 1, 10, 0, tzinfo=UTC)
        await world.append(f"account-{account}", AccountCreated(account_id=account, name="bot"))
        await world.append(
            f"account-{account}",
            AccountRoleAssigned(
                account_id=account,
                assignment_id=assignment,
                role_name="Admin",
                entity_id=entity,
                entity_type_name="Control Planes",
                entity_region="eu",
            ),
        )
        await world.append(
            f"token-{token}",
            TokenIssued(
                token_id=token,
                account_id=account,
                name="ci",
                secret_hash="hash-1",
                expires_at=None,
                scopes=("read",),
            ),
            TokenRotated(token_id=token, account_id=account, secret_hash="hash-2", secret_version=2),
        )
        await world.append(
            f"token-usage-{token}", TokenUsed(token_id=token, account_id=account, used_at=used_at)
        )
        await world.append(
            f"team-{team}",
            TeamCreated(team_id=team, name="ops", labels={"env": "prod"}),
            TeamMemberAdded(team_id=team, account_id=account),
        )
        await world.current()
        async with world.pool.acquire() as c:
            assert await c.fetchval("SELECT name FROM rm_accounts WHERE account_id = $1", account) == "bot"
            row = await c.fetchrow("SELECT * FROM rm_tokens WHERE token_id = $1", token)
            assert (row["state"], row["secret_version"], row["scopes"], row["last_used_at"]) == (
                "ACTIVE",
                2,
                ["read"],
                used_at,
            )
            secrets = await c.fetch(
                "SELECT secret_hash, valid_until IS NOT NULL AS ended FROM rm_token_secrets"
                " WHERE token_id = $1 ORDER BY secret_version",
                token,
            )
            assert [(r["secret_hash"], r["ended"]) for r in secrets] == [("hash-1", True), ("hash-2", False)]
            assert (
                await c.fetchval("SELECT count(*) FROM rm_role_assignments WHERE holder_id = $1", account)
                == 1
            )
            assert await c.fetchval("SELECT labels->>'env' FROM rm_teams WHERE team_id = $1", team) == "prod"
            assert (
                await c.fetchval("SELECT count(*) FROM rm_team_members WHERE account_id = $1", account) == 1
            )
            # The views point at the versioned tables, and every checkpoint is at the log's end.
            assert await c.fetchval(
                "SELECT definition LIKE $1 FROM pg_views WHERE viewname = 'rm_accounts'",
                f"%rm_accounts_v{AccountsProjection.version}%",
            )
            head = await c.fetchval("SELECT max(global_position) FROM events")
            positions = await c.fetch("SELECT position FROM projection_checkpoints")
            assert {r["position"] for r in positions} == {head}

        await world.append(f"account-{account}", AccountDeleted(account_id=account))
        await world.append(f"token-{token}", TokenRevoked(token_id=token, account_id=account, reason="gone"))
        await world.current()
        async with world.pool.acquire() as c:
            assert await c.fetchval("SELECT count(*) FROM rm_accounts WHERE account_id = $1", account) == 0
            assert (
                await c.fetchval("SELECT count(*) FROM rm_role_assignments WHERE holder_id = $1", account)
                == 0
            )
            assert (
                await c.fetchval("SELECT count(*) FROM rm_team_members WHERE account_id = $1", account) == 0
            )
            assert await c.fetchval("SELECT state FROM rm_tokens WHERE token_id = $1", token) == "REVOKED"
        for runner in map(world.projections.runner, world.projections.names):
            assert runner.state is RunnerState.RUNNING


class Fussy:
    """Records account names, but cannot stand an account named ``poison-python`` (the reducer
    raises) nor one named ``poison-sql`` (its SQL fails on a CHECK constraint)."""

    name = "fussy"
    version = 1
    tables: Sequence[str] = ("fussy",)

    def ddl(self) -> Sequence[str]:
        return (
            "CREATE TABLE {fussy} (account_id uuid PRIMARY KEY, name text NOT NULL"
            " CHECK (name <> 'poison-sql'))",
        )

    def apply(self, event: RecordedEvent) -> Sequence[Statement]:
        body = event.event
        if isinstance(body, AccountCreated):
            if body.name == "poison-python":
                raise RuntimeError("cannot stand this name")
            return (
                Statement(
                    "INSERT INTO {fussy} (account_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    (body.account_id, body.name),
                ),
            )
        return ()


@pytest.mark.parametrize("kind", ["python", "sql"])
async def test_a_poison_event_stops_only_its_projection_at_the_event(empty_database: str, kind: str) -> None:
    projections = [AccountsProjection(), Fussy()]
    async with running(empty_database, projections, tail_batch=1000) as world:
        await world.current()
        before = [new_id() for _ in range(3)]
        after = [new_id() for _ in range(3)]
        poison = new_id()
        # One append: the good events before the poison share its batch (and its transaction).
        await world.store.append_many(
            [
                *[_create(a, f"ok-{i}") for i, a in enumerate(before)],
                _create(poison, f"poison-{kind}"),
                *[_create(a, f"late-{i}") for i, a in enumerate(after)],
            ]
        )
        fussy = world.projections.runner("fussy")
        await wait_until(lambda: fussy.state is RunnerState.FAILED)
        assert not await world.projections.wait_until_current(1.0, names=["fussy"])
        # The healthy projection carries on, before and after the poison.
        assert await world.projections.wait_until_current(10.0, names=["accounts"])
        later = new_id()
        await world.append(f"account-{later}", AccountCreated(account_id=later, name="later"))
        assert await world.projections.wait_until_current(10.0, names=["accounts"])
        async with world.pool.acquire() as c:
            assert await c.fetchval("SELECT count(*) FROM rm_accounts") == 8
            # The failed one committed the events before the poison, and nothing from it on.
            names = await c.fetch("SELECT name FROM rm_fussy ORDER BY name")
            assert [r["name"] for r in names] == ["ok-0", "ok-1", "ok-2"]
            poison_row = await c.fetchrow(
                "SELECT global_position, tx_id::text::bigint AS tx_id FROM events WHERE stream_id = $1",
                f"account-{poison}",
            )
            checkpoint = await c.fetchrow(
                "SELECT tx_id, position FROM projection_checkpoints WHERE name = 'fussy'"
            )
            assert (checkpoint["tx_id"], checkpoint["position"]) == (
                poison_row["tx_id"],
                poison_row["global_position"] - 1,
            )
            failure = await c.fetchrow("SELECT * FROM projection_failures WHERE name = 'fussy'")
            assert (failure["position"], failure["event_type"]) == (
                poison_row["global_position"],
                "account.created",
            )
        assert fussy.failed_event is not None and fussy.failed_event.position == poison_row["global_position"]
        status = {s.name: s for s in await world.projections.status()}
        assert status["fussy"].state == "failed"
        assert status["fussy"].failed_event is not None
        assert status["fussy"].failed_event.event_type == "account.created"
        assert "poison" not in (status["accounts"].error or "")
        assert status["accounts"].state == "running" and status["accounts"].lag_events == 0
        assert status["fussy"].lag_events == 5  # the poison, the three after it and ``later``


def _create(account_id: str, name: str) -> Any:
    from services.ports import StreamAppend, StreamState
    from tests.integration.test_projection_support import new_event

    return StreamAppend(
        f"account-{account_id}",
        [new_event(AccountCreated(account_id=account_id, name=name))],
        StreamState.ANY,
    )


async def test_one_active_runner_per_projection_across_processes(
    empty_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="follower.worker")
    async with running(empty_database, [Journal()]) as first, running(empty_database, [Journal()]) as second:
        await first.current()
        await second.current()
        runners = [first.projections.runner("journal"), second.projections.runner("journal")]
        assert sorted(r.state for r in runners) == [RunnerState.RUNNING, RunnerState.STANDBY]
        active, standby = sorted(runners, key=lambda r: r.state is not RunnerState.RUNNING)
        for n in range(50):
            await first.append(
                f"account-{new_id()}", AccountUpdated(account_id=new_id(), name=f"n{n}", description="")
            )
        await first.current()
        # Stop the active one ("its process dies"): the other takes the lock and carries on.
        owner = first if active is runners[0] else second
        other = second if owner is first else first
        await owner.projections.stop()
        await wait_until(lambda: standby.state is RunnerState.RUNNING)
        # Each runner says which it is, and the standby says so again when it takes over.
        said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("projection journal:")]
        assert said.count("projection journal: active") == 2, said
        assert said.count("projection journal: standing by (another process is active)") == 1, said
        for n in range(50):
            await other.append(
                f"account-{new_id()}", AccountUpdated(account_id=new_id(), name=f"m{n}", description="")
            )
        await other.current()
        async with other.pool.acquire() as c:
            # Every event exactly once (a second application would have failed on the key).
            assert await c.fetchval("SELECT count(*) FROM rm_journal") == 100
            assert await c.fetchval("SELECT count(*) FROM events") == 100
            assert await c.fetchval("SELECT count(*) FROM projection_failures") == 0


async def test_a_new_version_is_built_from_the_start_and_switched_in(empty_database: str) -> None:
    current = AccountsProjection.version

    class AccountsNext(AccountsProjection):
        version = current + 1

    async with running(empty_database, [AccountsProjection()]) as world:
        for n in range(30):
            account = new_id()
            await world.append(f"account-{account}", AccountCreated(account_id=account, name=f"a{n}"))
        await world.current()
        async with world.pool.acquire() as c:
            before = await c.fetch("SELECT * FROM rm_accounts ORDER BY account_id")
    async with running(empty_database, [AccountsNext()]) as world:
        # The barrier is about what the views hold, whatever their version: wait for the switch.
        runner = world.projections.runner("accounts")
        await wait_until(lambda: runner.state is RunnerState.RUNNING)
        await world.current()
        async with world.pool.acquire() as c:
            assert await c.fetch("SELECT * FROM rm_accounts ORDER BY account_id") == before
            tables = await c.fetch("SELECT tablename FROM pg_tables WHERE tablename LIKE 'rm_accounts%'")
            assert [r["tablename"] for r in tables] == [f"rm_accounts_v{current + 1}"]
            version = await c.fetchval("SELECT version FROM projection_checkpoints WHERE name = 'accounts'")
            assert version == current + 1
    # Old code meeting a newer live version stands by instead of downgrading it.
    async with running(empty_database, [AccountsProjection()]) as world:
        runner = world.projections.runner("accounts")
        await wait_until(lambda: runner.state is RunnerState.SUPERSEDED)


async def test_status_reports_lag_in_events_and_seconds(empty_database: str) -> None:
    async with running(empty_database) as world:
        await world.current()
    async with running(empty_database, start=False) as world:
        for n in range(7):
            account = new_id()
            await world.append(f"account-{account}", AccountCreated(account_id=account, name=f"a{n}"))
        await asyncio.sleep(0.3)
        status = await world.projections.status()
        assert {s.name for s in status} == {p.name for p in ALL_PROJECTIONS}
        for s in status:
            assert s.lag_events == 7
            assert s.lag_seconds >= 0.3
            assert s.state == "stopped" and s.live_version == s.version and s.error is None
        await world.projections.start()
        await world.current()
        for s in await world.projections.status():
            assert (s.lag_events, s.lag_seconds, s.state) == (0, 0.0, "running")
            assert s.checkpoint is not None and s.position == s.checkpoint.position


async def test_read_your_writes_barrier_under_concurrent_writers(empty_database: str) -> None:
    """Commit, call the barrier at once, read: the row is there, every time, while other writers
    keep appending (so the log always has open transactions and the tail has work)."""
    async with running(empty_database) as world:
        await world.current()
        stop = asyncio.Event()

        async def noise(n: int) -> int:
            count = 0
            while not stop.is_set():
                token = new_id()
                await world.append(
                    f"token-{token}",
                    TokenIssued(
                        token_id=token,
                        account_id=new_id(),
                        name=f"n{n}",
                        secret_hash=new_id(),
                        expires_at=None,
                    ),
                )
                count += 1
            return count

        writers = [asyncio.create_task(noise(n)) for n in range(4)]
        try:
            for n in range(60):
                account = new_id()
                await world.append(f"account-{account}", AccountCreated(account_id=account, name=f"ryw-{n}"))
                assert await world.projections.wait_until_current(10.0)
                async with world.pool.acquire() as c:
                    assert (
                        await c.fetchval("SELECT name FROM rm_accounts WHERE account_id = $1", account)
                        == f"ryw-{n}"
                    )
                # The known-cursor variant.
                token = new_id()
                result = await world.append(
                    f"token-{token}",
                    TokenIssued(
                        token_id=token, account_id=account, name="t", secret_hash=new_id(), expires_at=None
                    ),
                )
                assert await world.projections.wait_for(result.cursor, 10.0, names=["tokens"])
                async with world.pool.acquire() as c:
                    assert await c.fetchval("SELECT count(*) FROM rm_tokens WHERE token_id = $1", token) == 1
        finally:
            stop.set()
            written = await asyncio.gather(*writers)
        assert sum(written) > 0


async def test_the_barrier_covers_a_write_committed_in_another_process(empty_database: str) -> None:
    """The projections run in one 'process'; the write and the read happen in another one."""
    async with running(empty_database) as projector, running(empty_database, start=False) as api:
        await projector.current()
        for n in range(20):
            account = new_id()
            await api.append(
                f"account-{account}",
                AccountCreated(account_id=account, name=f"x{n}"),
            )
            assert await api.projections.wait_until_current(10.0)
            async with api.pool.acquire() as c:
                assert (
                    await c.fetchval("SELECT count(*) FROM rm_accounts WHERE account_id = $1", account) == 1
                )


async def _append_and_wait_in_another_process(projector: World, api: World, count: int) -> None:
    """``count`` times: a token issued in ``api``, ``wait_for`` its cursor there, and a read there
    that finds it in every read model the token touches."""
    await projector.current()
    for n in range(count):
        token = new_id()
        result = await api.append(
            f"token-{token}",
            TokenIssued(
                token_id=token, account_id=new_id(), name=f"t{n}", secret_hash=token, expires_at=None
            ),
        )
        assert await api.projections.wait_for(result.cursor, 10.0)
        async with api.pool.acquire() as c:
            assert await c.fetchval("SELECT count(*) FROM rm_tokens WHERE token_id = $1", token) == 1
            assert (
                await c.fetchval("SELECT count(*) FROM rm_token_secrets WHERE secret_hash = $1", token) == 1
            )


async def test_wait_for_resolves_from_the_announced_checkpoints_without_a_query(empty_database: str) -> None:
    """The runners' process announces its committed checkpoints; the other process's ``wait_for``
    resolves from them alone (its fallback look is 30 s away, and it never looks)."""
    async with (
        running(empty_database, announce=True) as projector,
        running(empty_database, start=False, listen=True, fallback_seconds=30.0) as api,
    ):
        await _append_and_wait_in_another_process(projector, api, 30)
        assert api.projections.checkpoint_looks == 0


async def test_wait_for_still_resolves_when_the_notices_are_lost(empty_database: str) -> None:
    """No notice reaches the waiting process (as when every NOTIFY is lost): it looks at the
    checkpoints after its fallback delay, and still never answers before the write is readable."""
    async with (
        running(empty_database, announce=True) as projector,
        running(empty_database, start=False, fallback_seconds=0.01) as api,
    ):
        await _append_and_wait_in_another_process(projector, api, 10)
        assert api.projections.checkpoint_looks > 0


async def test_the_barrier_times_out_while_a_projection_is_behind(empty_database: str) -> None:
    async with running(empty_database) as world:
        await world.current()
        await world.projections.stop()
        account = new_id()
        await world.append(f"account-{account}", AccountCreated(account_id=account, name="late"))
        began = asyncio.get_running_loop().time()
        assert not await world.projections.wait_until_current(0.3)
        assert asyncio.get_running_loop().time() - began >= 0.3
