"""Point-in-time reads: an account, its tokens, its roles and its teams as they were at an instant,
folded from the log with the write models' own ``fold`` functions (never from the read models, which
only know the present).

"At T" means: the events whose ``occurred_at`` (the time the command took effect, the clock the
write models use for ``created_at`` and the like) is at or before T, folded in stream order. An
account's related streams are found through the ``events_account_links`` index (migration 0004):
``token.issued`` events name its tokens, ``team.member_added`` events its possible teams.
"""

from collections.abc import Iterable
from datetime import datetime

import asyncpg
import msgspec

from events import RecordedEvent
from services.accounts import model as accounts
from services.eventstore import PostgresEventStore
from services.ports import EventStore
from services.roles.assignment import RoleAssignment
from services.teams import model as teams
from services.tokens import model as tokens

DIRECT = "direct"

_LINKED_STREAMS_SQL = """
SELECT DISTINCT stream_id FROM events
WHERE data ->> 'account_id' = $1 AND type = $2
  AND type IN ('token.issued', 'team.member_added')
  AND (metadata ->> 'occurred_at')::timestamptz <= $3
"""


class EffectiveRole(msgspec.Struct, frozen=True, kw_only=True):
    """A role an account held, and where from: ``direct`` or ``team:<team id>``."""

    role: RoleAssignment
    source: str


def team_source(team_id: str) -> str:
    return f"team:{team_id}"


def effective_roles(account: accounts.Account, member_of: Iterable[teams.Team]) -> list[EffectiveRole]:
    """The account's direct roles, then those of each live team it is a member of."""
    if not account.live:
        return []
    held = [EffectiveRole(role=role, source=DIRECT) for role in account.roles.values()]
    for team in sorted(member_of, key=lambda t: t.team_id):
        if team.live and account.account_id in team.members:
            source = team_source(team.team_id)
            held.extend(EffectiveRole(role=role, source=source) for role in team.roles.values())
    return held


def happened_by(history: list[RecordedEvent], at: datetime) -> list[RecordedEvent]:
    return [recorded for recorded in history if recorded.metadata.occurred_at <= at]


async def _history(store: EventStore, stream_id: str, at: datetime) -> list[RecordedEvent]:
    return happened_by(await store.read_stream(stream_id), at)


async def _linked_ids(pool: asyncpg.Pool, account_id: str, event_type: str, at: datetime) -> list[str]:
    rows = await pool.fetch(_LINKED_STREAMS_SQL, account_id, event_type, at)
    prefix = "token-" if event_type == "token.issued" else "team-"
    return sorted(row["stream_id"].removeprefix(prefix) for row in rows)


async def account_as_of(pool: asyncpg.Pool, account_id: str, at: datetime) -> accounts.Account | None:
    """The account at ``at``; None when it did not exist yet or was already deleted."""
    store = PostgresEventStore(pool)
    state = accounts.fold(account_id, await _history(store, accounts.stream_of(account_id), at))
    return state if state.live else None


async def tokens_as_of(pool: asyncpg.Pool, account_id: str, at: datetime) -> list[tokens.Token]:
    """The account's tokens that existed at ``at`` and were not deleted, oldest first. Their
    ``state_at(at)`` is what a reader would have seen then."""
    store = PostgresEventStore(pool)
    found = []
    for token_id in await _linked_ids(pool, account_id, "token.issued", at):
        state = tokens.fold(token_id, await _history(store, tokens.stream_of(token_id), at))
        if state.visible and state.account_id == account_id:
            found.append(state)
    return sorted(found, key=lambda t: (t.created_at or at, t.token_id))


async def teams_as_of(pool: asyncpg.Pool, account_id: str, at: datetime) -> list[teams.Team]:
    """The live teams the account was a member of at ``at``, by id."""
    store = PostgresEventStore(pool)
    found = []
    for team_id in await _linked_ids(pool, account_id, "team.member_added", at):
        state = teams.fold(team_id, await _history(store, teams.stream_of(team_id), at))
        if state.live and account_id in state.members:
            found.append(state)
    return found


async def roles_as_of(pool: asyncpg.Pool, account_id: str, at: datetime) -> list[EffectiveRole]:
    """The roles the account held at ``at``: direct ones, then each of its teams' (none when the
    account did not exist then)."""
    account = await account_as_of(pool, account_id, at)
    if account is None:
        return []
    return effective_roles(account, await teams_as_of(pool, account_id, at))
