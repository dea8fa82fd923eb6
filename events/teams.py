"""Events of the team aggregate (stream ``team-<id>``): lifecycle, members and team roles."""

from events.base import Event
from events.frozen import FrozenMap


class TeamCreated(Event, frozen=True, tag="team.created"):
    team_id: str
    name: str
    description: str = ""
    labels: FrozenMap[str, str] = FrozenMap()


class TeamUpdated(Event, frozen=True, tag="team.updated"):
    """Carries the full new state of the editable fields."""

    team_id: str
    name: str
    description: str
    labels: FrozenMap[str, str] = FrozenMap()


class TeamDeleted(Event, frozen=True, tag="team.deleted"):
    team_id: str


class TeamMemberAdded(Event, frozen=True, tag="team.member_added"):
    team_id: str
    account_id: str


class TeamMemberRemoved(Event, frozen=True, tag="team.member_removed"):
    team_id: str
    account_id: str


class TeamRoleAssigned(Event, frozen=True, tag="team.role_assigned"):
    team_id: str
    assignment_id: str
    role_name: str
    entity_id: str
    entity_type_name: str
    entity_region: str


class TeamRoleUnassigned(Event, frozen=True, tag="team.role_unassigned"):
    team_id: str
    assignment_id: str


TEAM_EVENTS: tuple[type[Event], ...] = (
    TeamCreated,
    TeamUpdated,
    TeamDeleted,
    TeamMemberAdded,
    TeamMemberRemoved,
    TeamRoleAssigned,
    TeamRoleUnassigned,
)
