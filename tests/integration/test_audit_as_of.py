"""Point-in-time reads (``services.audit.as_of``) and ``audit replay --as-of``, over a week of
simulated days of commands (the clock is ``CommandContext.now``). No projection runs here: every
answer is folded from the log."""

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import pytest

from services.accounts.commands import (
    CreateAccount,
    DeleteAccount,
    UpdateAccount,
)
from services.audit.as_of import (
    DIRECT,
    account_as_of,
    roles_as_of,
    team_source,
    teams_as_of,
    tokens_as_of,
)
from services.audit.replay import AccountRights, replay
from services.authorization import SYSTEM
from services.commands import CommandContext
from services.dependencies import Dependencies
from services.directory import StreamDirectory
from services.dispatch import Dispatcher
from services.policy import TokenPolicy
from services.role_holders import AccountHolder, AssignRole, TeamHolder, UnassignRole
from services.roles.catalogue import load_catalogue
from services.teams.commands import AddMember, CreateTeam, DeleteTeam, RemoveMember
from services.tokens.commands import IssueToken, RevokeToken
from services.tokens.model import ACTIVE, REVOKED
from tests.integration.eventstore_helpers import open_store

DAY0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def day(n: int, hours: int = 0) -> datetime:
    return DAY0 + timedelta(days=n, hours=hours)


def at(n: int) -> CommandContext:
    return CommandContext(now=day(n), actor="system:tests")


def grant(role_name: str, entity_id: str) -> dict[str, str]:
    return {
        "role_name": role_name,
        "entity_id": entity_id,
        "entity_type_name": "Control Planes",
        "entity_region": "eu",
    }


@dataclass
class History:
    dsn: str
    pool: asyncpg.Pool
    deps: Dependencies
    bot: str
    deployer: str
    team: str
    first_token: str
    second_token: str


@pytest.fixture
async def history(empty_database: str) -> AsyncIterator[History]:
    """Day 0: accounts ci-bot and deployer, team platform. Day 1: ci-bot gets Viewer on cp-1.
    Day 2: the team gets Admin on cp-2. Day 3: ci-bot joins the team, gets token one. Day 4: ci-bot
    loses Viewer, gets token two. Day 5: ci-bot leaves the team, token one is revoked. Day 6: ci-bot
    is disabled, deployer deleted. Day 7: the team is deleted."""
    async with open_store(empty_database) as (pool, store):
        deps = Dependencies(
            store=store,
            directory=StreamDirectory(store),
            catalogue=load_catalogue(None),
            token_policy=TokenPolicy(max_lifetime=timedelta(days=365), allow_non_expiring=True),
            pepper=b"as-of-test-pepper",
            organization_id="00000000-0000-0000-0000-0000000000aa",
        )
        dispatcher = Dispatcher(deps)

        async def send(ctx: CommandContext, command: object) -> Any:
            return (await dispatcher.dispatch(command, SYSTEM, ctx)).state

        bot = (await send(at(0), CreateAccount(name="ci-bot", description=""))).account_id
        deployer = (await send(at(0), CreateAccount(name="deployer", description=""))).account_id
        team = (await send(at(0), CreateTeam(name="platform"))).team_id
        viewer = await send(
            at(1), AssignRole(holder=AccountHolder(account_id=bot), **grant("Viewer", "cp-1"))
        )
        await send(at(1), AssignRole(holder=AccountHolder(account_id=deployer), **grant("Admin", "cp-3")))
        await send(at(2), AssignRole(holder=TeamHolder(team_id=team), **grant("Admin", "cp-2")))
        await send(at(3), AddMember(team_id=team, account_id=bot))
        expiry = day(40)
        first = (await send(at(3), IssueToken(account_id=bot, name="one", expires_at=expiry))).token.token_id
        await send(
            at(4), UnassignRole(holder=AccountHolder(account_id=bot), assignment_id=viewer.assignment_id)
        )
        second = (await send(at(4), IssueToken(account_id=bot, name="two", expires_at=expiry))).token.token_id
        await send(at(5), RemoveMember(team_id=team, account_id=bot))
        await send(at(5), RevokeToken(account_id=bot, token_id=first))
        await send(at(6), UpdateAccount(account_id=bot, enabled=False))
        await send(at(6), DeleteAccount(account_id=deployer))
        await send(at(7), DeleteTeam(team_id=team))
        yield History(empty_database, pool, deps, bot, deployer, team, first, second)


async def roles(history: History, account_id: str, when: datetime) -> set[tuple[str, str, str]]:
    held = await roles_as_of(history.pool, account_id, when)
    return {(r.role.role_name, r.role.entity_id, r.source) for r in held}


async def test_roles_before_and_after_each_change(history: History) -> None:
    pool = history.pool
    bot, team = history.bot, f"team:{history.team}"
    assert await roles(history, bot, day(0, hours=-1)) == set()
    assert await roles(history, bot, day(0, hours=1)) == set()
    assert await roles(history, bot, day(1)) == {("Viewer", "cp-1", DIRECT)}  # at T is included
    assert await roles(history, bot, day(2, hours=1)) == {("Viewer", "cp-1", DIRECT)}
    assert await roles(history, bot, day(3, hours=1)) == {("Viewer", "cp-1", DIRECT), ("Admin", "cp-2", team)}
    assert await roles(history, bot, day(4, hours=1)) == {("Admin", "cp-2", team)}
    assert await roles(history, bot, day(5, hours=1)) == set()
    assert await roles(history, history.deployer, day(5, hours=1)) == {("Admin", "cp-3", DIRECT)}
    assert await roles(history, history.deployer, day(6, hours=1)) == set()
    assert team_source(history.team) == team

    assert [t.team_id for t in await teams_as_of(pool, bot, day(3, hours=1))] == [history.team]
    assert await teams_as_of(pool, bot, day(2, hours=1)) == []
    assert await teams_as_of(pool, bot, day(5, hours=1)) == []


async def test_account_and_tokens_as_of(history: History) -> None:
    pool = history.pool
    bot = history.bot
    assert await account_as_of(pool, bot, day(0, hours=-1)) is None
    before = await account_as_of(pool, bot, day(5, hours=1))
    assert before is not None and (before.name, before.enabled) == ("ci-bot", True)
    disabled = await account_as_of(pool, bot, day(6, hours=1))
    assert disabled is not None and not disabled.enabled
    assert await account_as_of(pool, history.deployer, day(6, hours=1)) is None

    assert await tokens_as_of(pool, bot, day(2)) == []
    found = await tokens_as_of(pool, bot, day(4, hours=1))
    assert [(t.token_id, t.state) for t in found] == [
        (history.first_token, ACTIVE),
        (history.second_token, ACTIVE),
    ]
    found = await tokens_as_of(pool, bot, day(5, hours=1))
    assert [(t.token_id, t.state) for t in found] == [
        (history.first_token, REVOKED),
        (history.second_token, ACTIVE),
    ]
    assert found[1].state_at(day(41)) == "EXPIRED"


def rights_by_name(rights: list[AccountRights]) -> dict[str, set[tuple[str, str, str]]]:
    return {r.name: {(x.role.role_name, x.role.entity_id, x.source) for x in r.roles} for r in rights}


async def test_replay_prints_every_accounts_rights_at_a_time(history: History) -> None:
    pool = history.pool
    team = f"team:{history.team}"
    assert await replay(pool, day(0, hours=-1)) == []
    assert rights_by_name(await replay(pool, day(3, hours=1))) == {
        "ci-bot": {("Viewer", "cp-1", DIRECT), ("Admin", "cp-2", team)},
        "deployer": {("Admin", "cp-3", DIRECT)},
    }
    assert rights_by_name(await replay(pool, day(4, hours=1))) == {
        "ci-bot": {("Admin", "cp-2", team)},
        "deployer": {("Admin", "cp-3", DIRECT)},
    }
    at_day_six = await replay(pool, day(6, hours=1))
    assert [(r.name, r.enabled, r.roles) for r in at_day_six] == [("ci-bot", False, [])]

    for when in (day(1, hours=1), day(3, hours=1), day(5, hours=1)):
        folded = {r.account_id: await roles(history, r.account_id, when) for r in await replay(pool, when)}
        assert folded == {r.account_id: rights_by_name([r])[r.name] for r in await replay(pool, when)}

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        "audit",
        "replay",
        "--as-of",
        day(3, hours=1).isoformat(),
        env={**os.environ, "DATABASE_URL": history.dsn},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    printed = [msgspec.json.decode(line, type=AccountRights) for line in stdout.splitlines()]
    assert printed == await replay(pool, day(3, hours=1))
