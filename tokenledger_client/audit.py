"""``tokenledger audit events|usage|as-of``: the audit trail over the API (the ``audit:read`` right).

They sit beside the database-side ``audit`` actions (``verify``, ``export``, ...), which need the
database; these need only a token.
"""

from datetime import datetime
from typing import Any

import click

from tokenledger_client.http import connect
from tokenledger_client.output import Output, output_options
from tokenledger_client.resolve import ACCOUNTS, account_id, token_id, tokens_path

EVENT_COLUMNS = ("position", "occurred_at", "type", "stream_id", "actor")
USAGE_COLUMNS = ("position", "occurred_at", "outcome", "reason", "operation", "client_address")
AS_OF_COLUMNS = {
    "account": ("id", "name", "enabled", "description"),
    "tokens": ("id", "name", "state", "expires_at"),
    "roles": ("id", "role_name", "entity_type_name", "entity_id", "source"),
    "teams": ("id", "name"),
}


class Instant(click.ParamType[str]):
    """An RFC 3339 date-time with an offset; sent on as UTC with ``Z``."""

    name = "RFC3339"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not an RFC 3339 date-time such as 2025-01-31T12:00:00Z", param, ctx)
        if parsed.tzinfo is None:
            self.fail(f"{value!r} has no UTC offset (end it with Z or +hh:mm)", param, ctx)
        return parsed.isoformat().replace("+00:00", "Z")


INSTANT = Instant()


@click.command()
@click.option("--account", help="only this account's events (name or id)")
@click.option("--token", "token", type=click.UUID, help="only this token's events (id)")
@click.option("--type", "event_type", help="only this event type, e.g. token.revoked")
@click.option("--from", "since", type=INSTANT, help="occurred at or after (RFC 3339)")
@click.option("--to", "until", type=INSTANT, help="occurred before (RFC 3339)")
@click.option("--limit", type=click.IntRange(min=1), help="at most this many events")
@output_options
def events(
    output: Output,
    account: str | None,
    token: Any,
    event_type: str | None,
    since: str | None,
    until: str | None,
    limit: int | None,
) -> None:
    """The event log, oldest first.

    \b
    Example:
      tokenledger audit events --account ci-bot --type token.revoked -o json
    """
    with connect() as api:
        query: dict[str, str | int] = {}
        if account is not None:
            query["filter[account_id]"] = account_id(api, account)
        if token is not None:
            query["filter[token_id]"] = str(token)
        if event_type is not None:
            query["filter[type]"] = event_type
        if since is not None:
            query["filter[occurred_at][gte]"] = since
        if until is not None:
            query["filter[occurred_at][lt]"] = until
        shown = list(api.following("/v3/audit/events", query, limit))
    if output.format == "table":
        shown = [{**item, "actor": (item.get("actor") or {}).get("account_id")} for item in shown]
    output.show(shown, EVENT_COLUMNS)


@click.command()
@click.option("--account", required=True, help="the token's account (name or id)")
@click.argument("token")
@click.option("--outcome", type=click.Choice(("accepted", "rejected")), help="only these verifications")
@click.option("--from", "since", type=INSTANT, help="at or after (RFC 3339)")
@click.option("--to", "until", type=INSTANT, help="before (RFC 3339)")
@click.option("--limit", type=click.IntRange(min=1), help="at most this many rows")
@output_options
def usage(
    output: Output,
    account: str,
    token: str,
    outcome: str | None,
    since: str | None,
    until: str | None,
    limit: int | None,
) -> None:
    """Every verification of a token (accepted, or rejected and why), oldest first.

    \b
    Example:
      tokenledger audit usage --account ci-bot deploy --outcome rejected
    """
    with connect() as api:
        owner = account_id(api, account)
        path = f"{tokens_path(owner)}/{token_id(api, owner, token)}/usage"
        query: dict[str, str | int] = {}
        if outcome is not None:
            query["filter[outcome]"] = outcome
        if since is not None:
            query["filter[occurred_at][gte]"] = since
        if until is not None:
            query["filter[occurred_at][lt]"] = until
        output.show(list(api.following(path, query, limit)), USAGE_COLUMNS)


@click.command("as-of")
@click.argument("at", type=INSTANT)
@click.option("--account", required=True, help="the account (name or id; an id if it is deleted since)")
@click.option("--show", "what", type=click.Choice(tuple(AS_OF_COLUMNS)), default="account", show_default=True)
@output_options
def as_of(output: Output, at: str, account: str, what: str) -> None:
    """An account as it was at a past instant: itself, its tokens, its roles (with their source) or teams.

    \b
    Example:
      tokenledger audit as-of 2025-01-31T12:00:00Z --account ci-bot --show roles
    """
    suffix = {"account": "", "tokens": "/access-tokens", "roles": "/assigned-roles", "teams": "/teams"}[what]
    with connect() as api:
        answer = api.get(f"{ACCOUNTS}/{account_id(api, account)}{suffix}", {"as_of": at})
    output.show(answer if what == "account" else answer.get("data", []), AS_OF_COLUMNS[what])
