"""Read models ``rm_teams`` and ``rm_team_members``.

``team.created`` / ``team.updated`` carry the full editable state (name, description, labels), so a
row never needs earlier events. ``team.deleted`` removes the team and its members; ``account.deleted``
removes the account's memberships. ``system_team`` is false unless a ``team.created`` says otherwise
(the event has no such field yet; it is read if one is added, with a default, per the events' rules).
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from events import Event, RecordedEvent
from events.accounts import AccountDeleted
from events.teams import TeamCreated, TeamDeleted, TeamMemberAdded, TeamMemberRemoved, TeamUpdated
from projections.base import Statement
from projections.fold import TableRows
from projections.rows import json_text, uid

TEAM_COLUMNS = ("team_id", "name", "description", "labels", "system_team", "created_at", "updated_at")
MEMBER_COLUMNS = ("team_id", "account_id", "added_at")

_INSERT_TEAM = (
    "INSERT INTO {teams} (team_id, name, description, labels, system_team, created_at, updated_at)"
    " VALUES ($1, $2, $3, $4::jsonb, $5, $6, $6) ON CONFLICT (team_id) DO NOTHING"
)
_UPDATE_TEAM = (
    "UPDATE {teams} SET name = $2, description = $3, labels = $4::jsonb, updated_at = $5 WHERE team_id = $1"
)
_DELETE_TEAM = "DELETE FROM {teams} WHERE team_id = $1"
_DELETE_TEAM_MEMBERS = "DELETE FROM {team_members} WHERE team_id = $1"
_ADD_MEMBER = (
    "INSERT INTO {team_members} (team_id, account_id, added_at) VALUES ($1, $2, $3)"
    " ON CONFLICT (team_id, account_id) DO NOTHING"
)
_REMOVE_MEMBER = "DELETE FROM {team_members} WHERE team_id = $1 AND account_id = $2"
_DELETE_ACCOUNT_MEMBERSHIPS = "DELETE FROM {team_members} WHERE account_id = $1"


class TeamsProjection:
    name: str = "teams"
    version: int = 1
    tables: Sequence[str] = ("teams", "team_members")

    def ddl(self) -> Sequence[str]:
        return (
            "CREATE TABLE {teams} ("
            " team_id uuid PRIMARY KEY,"
            " name text NOT NULL,"
            " description text,"
            " labels jsonb NOT NULL,"
            " system_team bool NOT NULL,"
            " created_at timestamptz NOT NULL,"
            " updated_at timestamptz NOT NULL)",
            "CREATE TABLE {team_members} ("
            " team_id uuid NOT NULL,"
            " account_id uuid NOT NULL,"
            " added_at timestamptz NOT NULL,"
            " PRIMARY KEY (team_id, account_id))",
            "CREATE INDEX {teams}_name ON {teams} (name)",
            "CREATE INDEX {team_members}_account ON {team_members} (account_id)",
        )

    def apply(self, event: RecordedEvent) -> Sequence[Statement]:
        body = event.event
        at = event.metadata.occurred_at
        match body:
            case TeamCreated():
                args = (
                    uid(body.team_id),
                    body.name,
                    body.description,
                    json_text(body.labels),
                    _system_team(body),
                    at,
                )
                return (Statement(_INSERT_TEAM, args),)
            case TeamUpdated():
                update = (uid(body.team_id), body.name, body.description, json_text(body.labels), at)
                return (Statement(_UPDATE_TEAM, update),)
            case TeamDeleted():
                team_id = uid(body.team_id)
                return (
                    Statement(_DELETE_TEAM_MEMBERS, (team_id,)),
                    Statement(_DELETE_TEAM, (team_id,)),
                )
            case TeamMemberAdded():
                return (Statement(_ADD_MEMBER, (uid(body.team_id), uid(body.account_id), at)),)
            case TeamMemberRemoved():
                return (Statement(_REMOVE_MEMBER, (uid(body.team_id), uid(body.account_id))),)
            case AccountDeleted():
                return (Statement(_DELETE_ACCOUNT_MEMBERSHIPS, (uid(body.account_id),)),)
        return ()

    def fold(self) -> "TeamsFold":
        return TeamsFold()


def _system_team(body: TeamCreated) -> bool:
    return bool(getattr(body, "system_team", False))


class TeamsFold:
    """``TeamsProjection.apply`` over dicts: teams by id, members by team and by account."""

    def __init__(self) -> None:
        self._teams: dict[str, list[Any]] = {}
        self._members: dict[str, dict[str, Any]] = {}  # team -> account -> added_at
        self._memberships: dict[str, set[str]] = {}  # account -> teams
        self._handlers: dict[type[Event], Callable[[Any, RecordedEvent], None]] = {
            TeamCreated: self._created,
            TeamUpdated: self._updated,
            TeamDeleted: self._deleted,
            TeamMemberAdded: self._member_added,
            TeamMemberRemoved: self._member_removed,
            AccountDeleted: self._account_deleted,
        }

    def apply(self, event: RecordedEvent) -> None:
        handler = self._handlers.get(type(event.event))
        if handler is not None:
            handler(event.event, event)

    def tables(self) -> Mapping[str, TableRows]:
        members = (
            (team_id, account_id, added_at)
            for team_id, accounts in self._members.items()
            for account_id, added_at in accounts.items()
        )
        return {
            "teams": TableRows(TEAM_COLUMNS, (tuple(row) for row in self._teams.values())),
            "team_members": TableRows(MEMBER_COLUMNS, members),
        }

    def __len__(self) -> int:
        return len(self._teams) + sum(len(accounts) for accounts in self._members.values())

    def _created(self, body: TeamCreated, event: RecordedEvent) -> None:
        team_id = uid(body.team_id)
        labels = json_text(body.labels)
        if team_id not in self._teams:
            at = event.metadata.occurred_at
            self._teams[team_id] = [team_id, body.name, body.description, labels, _system_team(body), at, at]

    def _updated(self, body: TeamUpdated, event: RecordedEvent) -> None:
        row = self._teams.get(uid(body.team_id))
        labels = json_text(body.labels)
        if row is not None:
            row[1] = body.name
            row[2] = body.description
            row[3] = labels
            row[6] = event.metadata.occurred_at

    def _deleted(self, body: TeamDeleted, _event: RecordedEvent) -> None:
        team_id = uid(body.team_id)
        for account_id in self._members.pop(team_id, {}):
            self._memberships[account_id].discard(team_id)
        self._teams.pop(team_id, None)

    def _member_added(self, body: TeamMemberAdded, event: RecordedEvent) -> None:
        team_id, account_id = uid(body.team_id), uid(body.account_id)
        accounts = self._members.setdefault(team_id, {})
        if account_id not in accounts:
            accounts[account_id] = event.metadata.occurred_at
            self._memberships.setdefault(account_id, set()).add(team_id)

    def _member_removed(self, body: TeamMemberRemoved, _event: RecordedEvent) -> None:
        team_id, account_id = uid(body.team_id), uid(body.account_id)
        accounts = self._members.get(team_id)
        if accounts is not None and accounts.pop(account_id, None) is not None:
            self._memberships[account_id].discard(team_id)

    def _account_deleted(self, body: AccountDeleted, _event: RecordedEvent) -> None:
        account_id = uid(body.account_id)
        for team_id in self._memberships.pop(account_id, ()):
            self._members[team_id].pop(account_id, None)
