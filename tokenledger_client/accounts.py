"""``tokenledger accounts list|get|create|update|enable|disable|delete``."""

from typing import Any

import click

from tokenledger_client.durations import duration_seconds, instant_after
from tokenledger_client.http import connect
from tokenledger_client.output import Output, output_options
from tokenledger_client.resolve import ACCOUNTS, account_id

COLUMNS = ("id", "name", "enabled", "konnect_managed", "description", "expires_at", "created_at")
LIFETIME_HELP = "the account's lifetime from now, e.g. 1y, or never; it is disabled when it ends"


@click.group()
def accounts() -> None:
    """Service accounts (machine identities).

    \b
    Example:
      tokenledger accounts create ci-bot --description "CI pipelines"
    """


@accounts.command("list")
@click.option("--name-contains", help="only accounts whose name contains this text")
@output_options
def list_accounts(output: Output, name_contains: str | None) -> None:
    """Every service account.

    \b
    Example:
      tokenledger accounts list --name-contains ci -o json
    """
    query = {"filter[name][contains]": name_contains} if name_contains else {}
    with connect() as api:
        output.show(api.every(ACCOUNTS, query), COLUMNS)


@accounts.command("get")
@click.argument("account")
@output_options
def get(output: Output, account: str) -> None:
    """One account, by name or id.

    \b
    Example:
      tokenledger accounts get ci-bot -o yaml
    """
    with connect() as api:
        output.show(api.get(f"{ACCOUNTS}/{account_id(api, account)}"), COLUMNS)


@accounts.command("create")
@click.argument("name")
@click.option("--description", default="", help="what the account is for")
@click.option("--rotation-period", help="tokens older than this are due for rotation, e.g. 90d")
@click.option("--expires-in", help=LIFETIME_HELP)
@output_options
def create(
    output: Output, name: str, description: str, rotation_period: str | None, expires_in: str | None
) -> None:
    """Create a service account.

    \b
    Example:
      tokenledger accounts create ci-bot --description "CI pipelines" --rotation-period 90d --expires-in 1y
    """
    body: dict[str, Any] = {"name": name, "description": description}
    if rotation_period is not None:
        body["rotation_period_seconds"] = duration_seconds(rotation_period, "--rotation-period")
    if expires_in is not None:
        body["expires_at"] = instant_after(expires_in, "--expires-in")
    with connect() as api:
        created = api.post(ACCOUNTS, body)
    output.done(f"created system account {created['name']} ({created['id']})")
    output.show(created, COLUMNS)


@accounts.command("update")
@click.argument("account")
@click.option("--name", help="the new name")
@click.option("--description", help="the new description")
@click.option("--rotation-period", help="e.g. 90d")
@click.option("--expires-in", help=LIFETIME_HELP)
@output_options
def update(
    output: Output,
    account: str,
    name: str | None,
    description: str | None,
    rotation_period: str | None,
    expires_in: str | None,
) -> None:
    """Change an account's name, description, rotation period or lifetime.

    \b
    Example:
      tokenledger accounts update ci-bot --name ci-pipelines
    """
    body: dict[str, Any] = {}
    if name is not None:
        body["name"] = name
    if description is not None:
        body["description"] = description
    if rotation_period is not None:
        body["rotation_period_seconds"] = duration_seconds(rotation_period, "--rotation-period")
    if expires_in is not None:
        body["expires_at"] = instant_after(expires_in, "--expires-in")
    if not body:
        raise click.UsageError("give at least one of --name, --description, --rotation-period, --expires-in")
    _patch(output, account, body, "updated")


def _patch(output: Output, account: str, body: dict[str, Any], done: str) -> None:
    with connect() as api:
        changed = api.patch(f"{ACCOUNTS}/{account_id(api, account)}", body)
    output.done(f"{done} system account {changed['name']} ({changed['id']})")
    output.show(changed, COLUMNS)


@accounts.command("enable")
@click.argument("account")
@click.option("--expires-in", help=LIFETIME_HELP + "; needed to enable an account whose lifetime ended")
@output_options
def enable(output: Output, account: str, expires_in: str | None) -> None:
    """Enable an account: its valid tokens work again.

    \b
    Example:
      tokenledger accounts enable ci-bot --expires-in 1y
    """
    body: dict[str, Any] = {"enabled": True}
    if expires_in is not None:
        body["expires_at"] = instant_after(expires_in, "--expires-in")
    _patch(output, account, body, "enabled")


@accounts.command("disable")
@click.argument("account")
@output_options
def disable(output: Output, account: str) -> None:
    """Disable an account: every token of it stops at once (until enabled).

    \b
    Example:
      tokenledger accounts disable ci-bot
    """
    _patch(output, account, {"enabled": False}, "disabled")


@accounts.command("delete")
@click.argument("account")
@output_options
def delete(output: Output, account: str) -> None:
    """Delete an account and revoke its tokens.

    \b
    Example:
      tokenledger accounts delete ci-bot
    """
    with connect() as api:
        found = account_id(api, account)
        api.delete(f"{ACCOUNTS}/{found}")
    output.done(f"deleted system account {account} ({found})")
