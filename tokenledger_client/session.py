"""``tokenledger login --url URL`` and ``tokenledger introspect``: the two commands that read a
token, always from stdin or a hidden prompt, never from the command line (nor shell history)."""

import sys

import click

from tokenledger_client.errors import ClientError, Exit
from tokenledger_client.http import Api, connect
from tokenledger_client.output import Output, output_options
from tokenledger_client.target import Target, checked_token, checked_url, save_target


def read_secret(prompt: str) -> str:
    """A hidden prompt on a terminal, else the first line of stdin."""
    if sys.stdin.isatty():
        return checked_token(click.prompt(prompt, hide_input=True, err=True))
    return checked_token(sys.stdin.readline())


@click.command()
@click.option("--url", required=True, help="the service, e.g. http://127.0.0.1:8080")
def login(url: str) -> None:
    """Store the URL and a token for the next commands (the token from stdin or a prompt).

    The file is per user, 0600, under $XDG_CONFIG_HOME/tokenledger; TOKENLEDGER_URL and
    TOKENLEDGER_TOKEN, when set, win over it. The token is checked against the service first.

    \b
    Example:
      tokenledger bootstrap --name admin | tokenledger login --url http://127.0.0.1:8080
    """
    target = Target(checked_url(url), read_secret("Token"))
    with Api(target) as api:
        organization = api.get("/v3/organizations/me")
    path = save_target(target)
    click.echo(
        f"logged in to {target.url} (organization {organization.get('name')}); saved in {path}", err=True
    )


@click.command()
@output_options
def introspect(output: Output) -> None:
    """Who a token is and what it may do (the token from stdin or a prompt). Exit 1: not active.

    \b
    Example:
      echo "$TOKEN" | tokenledger introspect -o json
    """
    presented = read_secret("Token to introspect")
    with connect() as api:
        answer = api.post("/v3/tokens/introspect", {"token": presented})
    shown = answer
    if output.format == "table" and answer.get("active"):
        held = [
            f"{r['role_name']} on {r['entity_type_name']} ({r['source']})" for r in answer.get("roles", [])
        ]
        shown = {**answer, "roles": held}
    output.show(shown, ("active", "account_name", "name", "scopes", "exp", "roles"))
    if not answer.get("active"):
        raise ClientError("the token is not active", Exit.FAILED)
