"""``tokenledger tokens list|get|issue|rename|rotate|revoke|delete``.

``issue`` and ``rotate`` print the secret alone on stdout (everything else on stderr), so
``TOKEN=$(tokenledger tokens issue ...)`` works; with ``-o json|yaml`` they print the whole answer,
secret included, for a script that wants the id too.
"""

from typing import Any

import click

from tokenledger_client.durations import duration_seconds, instant_after
from tokenledger_client.http import connect
from tokenledger_client.output import Output, output_options
from tokenledger_client.resolve import account_id, token_id, tokens_path

COLUMNS = ("id", "name", "state", "expires_at", "last_used_at", "scopes", "created_at")
SCOPES = ("identity:read", "identity:write", "audit:read", "tokens:introspect")
account_option = click.option("--account", required=True, help="the token's account (name or id)")


@click.group()
def tokens() -> None:
    """Access tokens of service accounts.

    \b
    Example:
      TOKEN=$(tokenledger tokens issue --account ci-bot --name deploy --expires-in 30d)
    """


@tokens.command("list")
@account_option
@output_options
def list_tokens(output: Output, account: str) -> None:
    """The tokens of an account.

    \b
    Example:
      tokenledger tokens list --account ci-bot
    """
    with connect() as api:
        output.show(api.every(tokens_path(account_id(api, account))), COLUMNS)


@tokens.command("get")
@account_option
@click.argument("token")
@output_options
def get(output: Output, account: str, token: str) -> None:
    """One token, by name or id.

    \b
    Example:
      tokenledger tokens get --account ci-bot deploy -o yaml
    """
    with connect() as api:
        owner = account_id(api, account)
        output.show(api.get(f"{tokens_path(owner)}/{token_id(api, owner, token)}"), COLUMNS)


def _scopes(given: tuple[str, ...]) -> list[str] | None:
    chosen = [scope.strip() for text in given for scope in text.split(",") if scope.strip()]
    unknown = sorted(set(chosen) - set(SCOPES))
    if unknown:
        raise click.BadParameter(
            f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}", param_hint="--scopes"
        )
    return chosen or None


def _secret(output: Output, answer: dict[str, Any], done: str) -> None:
    expires = answer.get("expires_at") or "never"
    output.done(f"{done} access token {answer['name']} ({answer['id']}), expires {expires}")
    if output.chosen and output.format in ("json", "yaml") and not output.quiet:
        output.show(answer, COLUMNS)
    else:
        click.echo(answer["token"])


@tokens.command("issue")
@account_option
@click.option("--name", required=True, help="the token's name")
@click.option("--expires-in", default="90d", show_default=True, help="30d, 90d, 1y, ... or never")
@click.option(
    "--scopes", multiple=True, help=f"narrow the token to these ({', '.join(SCOPES)}), comma separated"
)
@click.option("--auto-extend", help="sliding expiry: every use pushes the expiry to now + this, e.g. 7d")
@click.option("--max-expires-in", help="with --auto-extend: never beyond now + this, e.g. 1y")
@output_options
def issue(
    output: Output,
    account: str,
    name: str,
    expires_in: str,
    scopes: tuple[str, ...],
    auto_extend: str | None,
    max_expires_in: str | None,
) -> None:
    """Issue a token; the secret goes to stdout alone (shown once).

    \b
    Example:
      TOKEN=$(tokenledger tokens issue --account ci-bot --name deploy --expires-in 30d --scopes identity:read)
    """
    body: dict[str, Any] = {"name": name}
    if expires_in == "never":
        body["expires_at"] = None
    else:  # the service counts the lifetime from its own clock, and says what its policy allows
        body["ttl_seconds"] = duration_seconds(expires_in, "--expires-in")
    if (chosen := _scopes(scopes)) is not None:
        body["scopes"] = chosen
    if auto_extend is not None:
        body["auto_extend_seconds"] = duration_seconds(auto_extend, "--auto-extend")
    if max_expires_in is not None:
        body["max_expires_at"] = instant_after(max_expires_in, "--max-expires-in")
    with connect() as api:
        issued = api.post(tokens_path(account_id(api, account)), body)
    _secret(output, issued, "issued")


@tokens.command("rename")
@account_option
@click.argument("token")
@click.argument("new_name")
@output_options
def rename(output: Output, account: str, token: str, new_name: str) -> None:
    """Rename a token.

    \b
    Example:
      tokenledger tokens rename --account ci-bot deploy deploy-prod
    """
    with connect() as api:
        owner = account_id(api, account)
        renamed = api.patch(f"{tokens_path(owner)}/{token_id(api, owner, token)}", {"name": new_name})
    output.done(f"renamed access token {renamed['id']} to {renamed['name']}")
    output.show(renamed, COLUMNS)


@tokens.command("rotate")
@account_option
@click.argument("token")
@click.option(
    "--grace", default="0s", show_default=True, help="how long the old secret keeps working, e.g. 1h"
)
@output_options
def rotate(output: Output, account: str, token: str, grace: str) -> None:
    """Replace a token by a new one; the new secret goes to stdout alone.

    \b
    Example:
      TOKEN=$(tokenledger tokens rotate --account ci-bot deploy --grace 1h)
    """
    seconds = 0 if grace.strip() in ("0", "0s") else duration_seconds(grace, "--grace")
    with connect() as api:
        owner = account_id(api, account)
        path = f"{tokens_path(owner)}/{token_id(api, owner, token)}/rotate"
        rotated = api.post(path, {"grace_period_seconds": seconds})
    _secret(output, rotated, "rotated into")


@tokens.command("revoke")
@account_option
@click.argument("token")
@click.option(
    "--reason",
    help="why: compromised, rotated, unused, superseded, no_longer_needed, or a short text",
)
@output_options
def revoke(output: Output, account: str, token: str, reason: str | None) -> None:
    """Revoke a token: it stops at once and stays listed as REVOKED, with the reason given.

    \b
    Example:
      tokenledger tokens revoke --account ci-bot deploy --reason compromised
    """
    with connect() as api:
        owner = account_id(api, account)
        found = token_id(api, owner, token)
        body = None if reason is None else {"reason": reason}
        revoked = api.patch(f"{tokens_path(owner)}/{found}/revoke", body)
    output.done(f"revoked access token {revoked['name']} ({found})")
    output.show(revoked, COLUMNS)


@tokens.command("delete")
@account_option
@click.argument("token")
@output_options
def delete(output: Output, account: str, token: str) -> None:
    """Delete a token (revoked first if still active).

    \b
    Example:
      tokenledger tokens delete --account ci-bot deploy
    """
    with connect() as api:
        owner = account_id(api, account)
        found = token_id(api, owner, token)
        api.delete(f"{tokens_path(owner)}/{found}")
    output.done(f"deleted access token {token} ({found})")
