"""``tokenledger teams list|get|create|update|delete|add-member|remove-member``."""

from typing import Any

import click

from tokenledger_client.http import connect
from tokenledger_client.output import Output, output_options
from tokenledger_client.resolve import TEAMS, account_id, team_id

COLUMNS = ("id", "name", "description", "labels", "created_at")


def _labels(given: tuple[str, ...]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in given:
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--label")
        labels[key] = value
    return labels


@click.group()
def teams() -> None:
    """Teams: the roles a team holds, its members hold too.

    \b
    Example:
      tokenledger teams create platform && tokenledger teams add-member platform ci-bot
    """


@teams.command("list")
@click.option("--name-contains", help="only teams whose name contains this text")
@output_options
def list_teams(output: Output, name_contains: str | None) -> None:
    """Every team.

    \b
    Example:
      tokenledger teams list -o yaml
    """
    query = {"filter[name][contains]": name_contains} if name_contains else {}
    with connect() as api:
        output.show(api.every(TEAMS, query), COLUMNS)


@teams.command("get")
@click.argument("team")
@output_options
def get(output: Output, team: str) -> None:
    """One team, by name or id, with its members (on stderr in a table, ``members`` in JSON/YAML).

    \b
    Example:
      tokenledger teams get platform
    """
    with connect() as api:
        found = team_id(api, team)
        shown = api.get(f"{TEAMS}/{found}")
        members = api.every(f"{TEAMS}/{found}/system-accounts")
    if output.format == "table":
        output.show(shown, COLUMNS)
        output.done("members: " + (", ".join(member["name"] for member in members) or "none"))
    else:
        output.show({**shown, "members": members}, COLUMNS)


@teams.command("create")
@click.argument("name")
@click.option("--description", help="what the team is for")
@click.option("--label", "labels", multiple=True, help="KEY=VALUE (repeatable)")
@output_options
def create(output: Output, name: str, description: str | None, labels: tuple[str, ...]) -> None:
    """Create a team.

    \b
    Example:
      tokenledger teams create platform --description "Platform team" --label env=prod
    """
    body: dict[str, Any] = {"name": name, "labels": _labels(labels)}
    if description is not None:
        body["description"] = description
    with connect() as api:
        created = api.post(TEAMS, body)
    output.done(f"created team {created['name']} ({created['id']})")
    output.show(created, COLUMNS)


@teams.command("update")
@click.argument("team")
@click.option("--name", help="the new name")
@click.option("--description", help="the new description")
@click.option("--label", "labels", multiple=True, help="KEY=VALUE (repeatable; replaces the labels)")
@output_options
def update(
    output: Output, team: str, name: str | None, description: str | None, labels: tuple[str, ...]
) -> None:
    """Change a team's name, description or labels.

    \b
    Example:
      tokenledger teams update platform --description "Platform engineering"
    """
    body: dict[str, Any] = {}
    if name is not None:
        body["name"] = name
    if description is not None:
        body["description"] = description
    if labels:
        body["labels"] = _labels(labels)
    if not body:
        raise click.UsageError("give at least one of --name, --description, --label")
    with connect() as api:
        changed = api.patch(f"{TEAMS}/{team_id(api, team)}", body)
    output.done(f"updated team {changed['name']} ({changed['id']})")
    output.show(changed, COLUMNS)


@teams.command("delete")
@click.argument("team")
@output_options
def delete(output: Output, team: str) -> None:
    """Delete a team (its members lose the roles it held).

    \b
    Example:
      tokenledger teams delete platform
    """
    with connect() as api:
        found = team_id(api, team)
        api.delete(f"{TEAMS}/{found}")
    output.done(f"deleted team {team} ({found})")


@teams.command("add-member")
@click.argument("team")
@click.argument("account")
@output_options
def add_member(output: Output, team: str, account: str) -> None:
    """Add a system account to a team (you must hold every role the team holds).

    \b
    Example:
      tokenledger teams add-member platform ci-bot
    """
    with connect() as api:
        found_team, found_account = team_id(api, team), account_id(api, account)
        api.post(f"{TEAMS}/{found_team}/system-accounts", {"id": found_account})
    output.done(f"added {account} ({found_account}) to team {team} ({found_team})")


@teams.command("remove-member")
@click.argument("team")
@click.argument("account")
@output_options
def remove_member(output: Output, team: str, account: str) -> None:
    """Remove a system account from a team.

    \b
    Example:
      tokenledger teams remove-member platform ci-bot
    """
    with connect() as api:
        found_team, found_account = team_id(api, team), account_id(api, account)
        api.delete(f"{TEAMS}/{found_team}/system-accounts/{found_account}")
    output.done(f"removed {account} ({found_account}) from team {team} ({found_team})")
