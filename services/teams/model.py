"""The team write model (folded from ``team-<id>``) and its pure decisions.

Label updates merge: a key set to null is removed, other keys are set, and ``"labels": null``
removes every label (the Konnect spec allows null values there but does not say what they mean).
"""

import re
from collections.abc import Mapping
from datetime import datetime

import msgspec

from events import Event, FrozenMap
from events.teams import (
    TeamCreated,
    TeamDeleted,
    TeamMemberAdded,
    TeamMemberRemoved,
    TeamRoleAssigned,
    TeamRoleUnassigned,
    TeamUpdated,
)
from services.commands import Conflict, Invalid, NotFound
from services.names import check_new_name
from services.repository import Aggregate
from services.roles.assignment import Roles, with_assigned, without_assigned

MAX_LABELS = 50
_LABEL_VALUE = re.compile(r"^[a-z0-9A-Z]([a-z0-9A-Z\-._]*[a-z0-9A-Z]+)?$")
_RESERVED_KEY_PREFIXES = ("kong", "konnect", "mesh", "kic", "_")


def stream_of(team_id: str) -> str:
    return f"team-{team_id}"


def membership_claim(account_id: str, team_id: str) -> str:
    return f"team-member:{account_id}:{team_id}"


def memberships_prefix(account_id: str) -> str:
    return f"team-member:{account_id}:"


class Team(msgspec.Struct, frozen=True, kw_only=True):
    team_id: str
    version: int = 0
    exists: bool = False
    deleted: bool = False
    name: str = ""
    description: str | None = None
    labels: FrozenMap[str, str] = FrozenMap()
    created_at: datetime | None = None
    updated_at: datetime | None = None
    members: frozenset[str] = frozenset()
    roles: Roles = FrozenMap()

    @property
    def live(self) -> bool:
        return self.exists and not self.deleted


def evolve(state: Team, event: Event, version: int, at: datetime) -> Team:
    """The state after ``event``, the stream's ``version``-th, which occurred ``at``."""
    base = msgspec.structs.replace(state, version=version)
    match event:
        case TeamCreated():
            return msgspec.structs.replace(
                base,
                exists=True,
                name=event.name,
                description=event.description or None,
                labels=event.labels,
                created_at=at,
                updated_at=at,
            )
        case TeamUpdated():
            return msgspec.structs.replace(
                base,
                name=event.name,
                description=event.description or None,
                labels=event.labels,
                updated_at=at,
            )
        case TeamDeleted():
            return msgspec.structs.replace(base, deleted=True, members=frozenset(), roles=FrozenMap())
        case TeamMemberAdded():
            return msgspec.structs.replace(base, members=state.members | {event.account_id})
        case TeamMemberRemoved():
            return msgspec.structs.replace(base, members=state.members - {event.account_id})
        case TeamRoleAssigned():
            return msgspec.structs.replace(base, roles=with_assigned(state.roles, event))
        case TeamRoleUnassigned():
            return msgspec.structs.replace(base, roles=without_assigned(state.roles, event.assignment_id))
    return base


TEAMS = Aggregate[Team](
    stream_of=stream_of,
    empty=lambda team_id: Team(team_id=team_id),
    evolve=evolve,
    id_of=lambda team: team.team_id,
    live=lambda team: team.live,
)
fold = TEAMS.fold


def require_live(state: Team) -> Team:
    if not state.live:
        raise NotFound("team not found")
    return state


def check_labels(labels: Mapping[str, str]) -> None:
    if len(labels) > MAX_LABELS:
        raise Invalid("labels", f"must not have more than {MAX_LABELS} labels", "max_items")
    for key, value in labels.items():
        if not 1 <= len(key) <= 63 or key.startswith(_RESERVED_KEY_PREFIXES):
            raise Invalid(
                f"labels.{key}",
                "keys must have 1-63 characters and not start with kong, konnect, mesh, kic or _",
            )
        if not 1 <= len(value) <= 63 or not _LABEL_VALUE.match(value):
            raise Invalid(
                f"labels.{key}", "values must have 1-63 letters, digits, '-', '.' or '_'", "is_label"
            )


def merge_labels(current: Mapping[str, str], update: Mapping[str, str | None] | None) -> FrozenMap[str, str]:
    if update is None:
        return FrozenMap()
    merged = dict(current)
    for key, value in update.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return FrozenMap(merged)


def create(team_id: str, name: str, description: str | None, labels: Mapping[str, str]) -> list[Event]:
    check_new_name(name)
    check_labels(labels)
    frozen = FrozenMap(labels)
    return [TeamCreated(team_id=team_id, name=name, description=description or "", labels=frozen)]


def update(
    state: Team,
    name: str | None,
    description: str | None,
    labels: FrozenMap[str, str] | None,
) -> list[Event]:
    require_live(state)
    if name is not None and name != state.name:
        check_new_name(name)
    new_labels = state.labels if labels is None else labels
    check_labels(new_labels)
    new_name = state.name if name is None else name
    new_description = state.description if description is None else description
    if (new_name, new_description, new_labels) == (state.name, state.description, state.labels):
        return []
    return [
        TeamUpdated(
            team_id=state.team_id, name=new_name, description=new_description or "", labels=new_labels
        )
    ]


def delete(state: Team) -> list[Event]:
    require_live(state)
    return [TeamDeleted(team_id=state.team_id)]


def add_member(state: Team, account_id: str) -> list[Event]:
    require_live(state)
    if account_id in state.members:
        raise Conflict("system account is already a member of the team")
    return [TeamMemberAdded(team_id=state.team_id, account_id=account_id)]


def remove_member(state: Team, account_id: str) -> list[Event]:
    require_live(state)
    if account_id not in state.members:
        raise NotFound("system account is not a member of the team")
    return [TeamMemberRemoved(team_id=state.team_id, account_id=account_id)]
