"""The commands on teams, their members and their roles, as data.

Each has one handler (``services.teams.handlers``), reached only through
``services.dispatch.Dispatcher``, which authorises the actor first. Labels are pairs, so that a
command holds no mutable field.
"""

import msgspec


class CreateTeam(msgspec.Struct, frozen=True, kw_only=True, tag="team.create"):
    name: str
    description: str | None = None
    labels: tuple[tuple[str, str], ...] = ()


class UpdateTeam(msgspec.Struct, frozen=True, kw_only=True, tag="team.update"):
    """None keeps a field; with ``labels_given``, ``labels`` is merged (a None value removes a label)."""

    team_id: str
    name: str | None = None
    description: str | None = None
    labels: tuple[tuple[str, str | None], ...] | None = None
    labels_given: bool = False


class DeleteTeam(msgspec.Struct, frozen=True, kw_only=True, tag="team.delete"):
    team_id: str


class AddMember(msgspec.Struct, frozen=True, kw_only=True, tag="team.add_member"):
    team_id: str
    account_id: str


class RemoveMember(msgspec.Struct, frozen=True, kw_only=True, tag="team.remove_member"):
    team_id: str
    account_id: str
