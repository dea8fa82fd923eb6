"""``tokenledger audit replay --as-of T``: the effective rights of every account at T.

Every account and team stream is folded up to T (``as_of``'s meaning of "at T") with the write
models' ``fold``, in one pass over their events in a read-only snapshot; memory grows with the number
of accounts and teams, not with the length of the log.
"""

from collections.abc import AsyncIterator, Callable
from datetime import datetime

import asyncpg
import msgspec

from events import RecordedEvent
from events.accounts import ACCOUNT_EVENTS
from events.teams import TEAM_EVENTS
from services.accounts import model as accounts
from services.audit.as_of import EffectiveRole, effective_roles, happened_by
from services.eventstore.rows import EVENT_COLUMNS, recorded_event
from services.teams import model as teams

_FETCH = 2000
_SQL = f"SELECT {EVENT_COLUMNS} FROM events WHERE type = ANY ($1::text[]) ORDER BY stream_id, stream_version"  # noqa: S608


class AccountRights(msgspec.Struct, frozen=True, kw_only=True):
    account_id: str
    name: str
    enabled: bool
    roles: list[EffectiveRole]


def replayed_types() -> list[str]:
    """The event types a replay reads: those of the account and team streams."""
    return [cls.tag() for cls in (*ACCOUNT_EVENTS, *TEAM_EVENTS)]


async def replay(
    pool: asyncpg.Pool, at: datetime, advance: Callable[[int], None] | None = None
) -> list[AccountRights]:
    """Every account that existed at ``at``, by name, with the roles it held then (``advance(1)``
    per event read)."""
    account_states: list[accounts.Account] = []
    team_states: list[teams.Team] = []
    async for stream_id, history in _streams(pool):
        if advance is not None:
            advance(len(history))
        happened = happened_by(history, at)
        if stream_id.startswith("account-"):
            account = accounts.fold(stream_id.removeprefix("account-"), happened)
            if account.live:
                account_states.append(account)
        elif stream_id.startswith("team-"):
            team = teams.fold(stream_id.removeprefix("team-"), happened)
            if team.live:
                team_states.append(team)
    teams_of: dict[str, list[teams.Team]] = {}
    for team in team_states:
        for member in team.members:
            teams_of.setdefault(member, []).append(team)
    return [
        AccountRights(
            account_id=account.account_id,
            name=account.name,
            enabled=account.enabled,
            roles=effective_roles(account, teams_of.get(account.account_id, [])),
        )
        for account in sorted(account_states, key=lambda a: (a.name, a.account_id))
    ]


async def _streams(pool: asyncpg.Pool) -> AsyncIterator[tuple[str, list[RecordedEvent]]]:
    """Each account or team stream with its whole history, one stream at a time."""
    tags = replayed_types()
    stream_id: str | None = None
    history: list[RecordedEvent] = []
    async with (
        pool.acquire() as connection,
        connection.transaction(isolation="repeatable_read", readonly=True),
    ):
        async for row in connection.cursor(_SQL, tags, prefetch=_FETCH):
            if row["stream_id"] != stream_id:
                if stream_id is not None:
                    yield stream_id, history
                stream_id, history = row["stream_id"], []
            history.append(recorded_event(row))
    if stream_id is not None:
        yield stream_id, history
