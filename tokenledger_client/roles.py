"""``tokenledger roles list|assign|unassign`` for an account (``--account``) or a team (``--team``).

An Identity role (``Admin``, ``Viewer``, ``Auditor``, ``Introspector``) is on this deployment's
organization: without ``--entity-id`` the organization's id is used (``GET /v3/organizations/me``).
"""

from typing import Any

import click

from tokenledger_client.errors import ClientError, Exit
from tokenledger_client.http import Api, connect
from tokenledger_client.output import Output, output_options
from tokenledger_client.resolve import ACCOUNTS, TEAMS, account_id, is_id, team_id

COLUMNS = ("id", "role_name", "entity_type_name", "entity_id", "entity_region")
IDENTITY = "Identity"


def holder_options(command: Any) -> Any:
    command = click.option("--team", help="a team (name or id)")(command)
    return click.option("--account", help="a system account (name or id)")(command)


def _roles_path(api: Api, account: str | None, team: str | None) -> str:
    if (account is None) == (team is None):
        raise click.UsageError("give exactly one of --account and --team")
    if account is not None:
        return f"{ACCOUNTS}/{account_id(api, account)}/assigned-roles"
    assert team is not None
    return f"{TEAMS}/{team_id(api, team)}/assigned-roles"


@click.group()
def roles() -> None:
    """Roles held by accounts and teams.

    \b
    Example:
      tokenledger roles assign --account ci-bot --role Viewer
    """


@roles.command("list")
@holder_options
@output_options
def list_roles(output: Output, account: str | None, team: str | None) -> None:
    """The roles an account or a team holds directly.

    \b
    Example:
      tokenledger roles list --team platform
    """
    with connect() as api:
        output.show(api.get(_roles_path(api, account, team)).get("data", []), COLUMNS)


@roles.command("assign")
@holder_options
@click.option("--role", required=True, help="the role's name, e.g. Viewer")
@click.option("--entity-type", default=IDENTITY, show_default=True, help="the entity type the role is on")
@click.option("--entity-id", type=click.UUID, help="the entity (default for Identity: this organization)")
@click.option("--region", default="*", show_default=True, help="the entity's region")
@output_options
def assign(
    output: Output,
    account: str | None,
    team: str | None,
    role: str,
    entity_type: str,
    entity_id: Any,
    region: str,
) -> None:
    """Give an account or a team a role (you must hold it yourself).

    \b
    Examples:
      tokenledger roles assign --account ci-bot --role Viewer
      tokenledger roles assign --team platform --role Admin --entity-type "Control Planes" \\
          --entity-id 6f1b7c1e-4a43-4f07-9d8a-1a2b3c4d5e6f --region eu
    """
    with connect() as api:
        path = _roles_path(api, account, team)
        if entity_id is None:
            if entity_type != IDENTITY:
                raise click.UsageError("--entity-id is required for a role not on Identity")
            entity = str(api.get("/v3/organizations/me")["id"])
        else:
            entity = str(entity_id)
        body = {
            "role_name": role,
            "entity_type_name": entity_type,
            "entity_id": entity,
            "entity_region": region,
        }
        assigned = api.post(path, body)
    output.done(f"assigned {assigned['role_name']} on {assigned['entity_type_name']} ({assigned['id']})")
    output.show(assigned, COLUMNS)


@roles.command("unassign")
@holder_options
@click.argument("role")
@click.option("--entity-type", help="which of several holdings of the role name")
@output_options
def unassign(
    output: Output, account: str | None, team: str | None, role: str, entity_type: str | None
) -> None:
    """Take a role away, by assignment id or by role name.

    \b
    Example:
      tokenledger roles unassign --account ci-bot Viewer
    """
    with connect() as api:
        path = _roles_path(api, account, team)
        held: list[Any] = api.get(path).get("data", [])
        chosen = [
            item
            for item in held
            if (item["id"] == role if is_id(role) else item["role_name"] == role)
            and entity_type in (None, item["entity_type_name"])
        ]
        if not chosen:
            raise ClientError(f"no assignment of {role!r} here", Exit.NOT_FOUND)
        if len(chosen) > 1:
            ids = ", ".join(item["id"] for item in chosen)
            raise ClientError(
                f"{role!r} is held {len(chosen)} times: give the assignment id ({ids})", Exit.BAD_INPUT
            )
        api.delete(f"{path}/{chosen[0]['id']}")
    output.done(f"unassigned {chosen[0]['role_name']} on {chosen[0]['entity_type_name']} ({chosen[0]['id']})")
