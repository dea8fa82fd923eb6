"""Read model ``rm_role_assignments``: the roles held by accounts and by teams.

``account.role_assigned`` / ``team.role_assigned`` add a row (holder_type ``account`` or ``team``),
the matching ``*_unassigned`` removes it, and deleting the account or team removes all of its rows.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from events import Event, RecordedEvent
from events.accounts import AccountDeleted, AccountRoleAssigned, AccountRoleUnassigned
from events.teams import TeamDeleted, TeamRoleAssigned, TeamRoleUnassigned
from projections.base import Statement
from projections.fold import TableRows
from projections.rows import uid

COLUMNS = (
    "assignment_id",
    "holder_type",
    "holder_id",
    "role_name",
    "entity_id",
    "entity_type_name",
    "entity_region",
    "created_at",
)
ACCOUNT, TEAM = "account", "team"

_INSERT = (
    "INSERT INTO {role_assignments} (assignment_id, holder_type, holder_id, role_name, entity_id,"
    " entity_type_name, entity_region, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    " ON CONFLICT (assignment_id) DO NOTHING"
)
_DELETE = "DELETE FROM {role_assignments} WHERE assignment_id = $1"
_DELETE_HOLDER = "DELETE FROM {role_assignments} WHERE holder_type = $1 AND holder_id = $2"


class RoleAssignmentsProjection:
    name: str = "role_assignments"
    version: int = 1
    tables: Sequence[str] = ("role_assignments",)

    def ddl(self) -> Sequence[str]:
        return (
            "CREATE TABLE {role_assignments} ("
            " assignment_id uuid PRIMARY KEY,"
            " holder_type text NOT NULL,"
            " holder_id uuid NOT NULL,"
            " role_name text NOT NULL,"
            " entity_id uuid NOT NULL,"
            " entity_type_name text NOT NULL,"
            " entity_region text NOT NULL,"
            " created_at timestamptz NOT NULL)",
            "CREATE INDEX {role_assignments}_holder ON {role_assignments} (holder_type, holder_id)",
        )

    def apply(self, event: RecordedEvent) -> Sequence[Statement]:
        body = event.event
        match body:
            case AccountRoleAssigned() | TeamRoleAssigned():
                return (Statement(_INSERT, _assignment_row(body, event)),)
            case AccountRoleUnassigned() | TeamRoleUnassigned():
                return (Statement(_DELETE, (uid(body.assignment_id),)),)
            case AccountDeleted():
                return (Statement(_DELETE_HOLDER, (ACCOUNT, uid(body.account_id))),)
            case TeamDeleted():
                return (Statement(_DELETE_HOLDER, (TEAM, uid(body.team_id))),)
        return ()

    def fold(self) -> "RoleAssignmentsFold":
        return RoleAssignmentsFold()


def _assignment_row(body: AccountRoleAssigned | TeamRoleAssigned, event: RecordedEvent) -> tuple[Any, ...]:
    if isinstance(body, AccountRoleAssigned):
        holder_type, holder_id = ACCOUNT, body.account_id
    else:
        holder_type, holder_id = TEAM, body.team_id
    return (
        uid(body.assignment_id),
        holder_type,
        uid(holder_id),
        body.role_name,
        uid(body.entity_id),
        body.entity_type_name,
        body.entity_region,
        event.metadata.occurred_at,
    )


class RoleAssignmentsFold:
    """``RoleAssignmentsProjection.apply`` over a dict of rows, with an index by holder."""

    def __init__(self) -> None:
        self._rows: dict[str, tuple[Any, ...]] = {}
        self._by_holder: dict[tuple[str, str], set[str]] = {}
        self._handlers: dict[type[Event], Callable[[Any, RecordedEvent], None]] = {
            AccountRoleAssigned: self._assigned,
            TeamRoleAssigned: self._assigned,
            AccountRoleUnassigned: self._unassigned,
            TeamRoleUnassigned: self._unassigned,
            AccountDeleted: self._account_deleted,
            TeamDeleted: self._team_deleted,
        }

    def apply(self, event: RecordedEvent) -> None:
        handler = self._handlers.get(type(event.event))
        if handler is not None:
            handler(event.event, event)

    def tables(self) -> Mapping[str, TableRows]:
        return {"role_assignments": TableRows(COLUMNS, self._rows.values())}

    def __len__(self) -> int:
        return len(self._rows)

    def _assigned(self, body: AccountRoleAssigned | TeamRoleAssigned, event: RecordedEvent) -> None:
        row = _assignment_row(body, event)
        assignment_id = row[0]
        if assignment_id not in self._rows:
            self._rows[assignment_id] = row
            self._by_holder.setdefault((row[1], row[2]), set()).add(assignment_id)

    def _unassigned(self, body: AccountRoleUnassigned | TeamRoleUnassigned, _event: RecordedEvent) -> None:
        row = self._rows.pop(uid(body.assignment_id), None)
        if row is not None:
            self._by_holder[(row[1], row[2])].discard(row[0])

    def _remove_holder(self, holder: tuple[str, str]) -> None:
        for assignment_id in self._by_holder.pop(holder, ()):
            del self._rows[assignment_id]

    def _account_deleted(self, body: AccountDeleted, _event: RecordedEvent) -> None:
        self._remove_holder((ACCOUNT, uid(body.account_id)))

    def _team_deleted(self, body: TeamDeleted, _event: RecordedEvent) -> None:
        self._remove_holder((TEAM, uid(body.team_id)))
