"""The ``tokenledger`` client end to end against a real server: every command, JSON and YAML (the
API's own shapes), tables, ``--quiet``, names or ids, and the exit code of each kind of failure."""

import asyncio
import os
import re
import socket
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.composition import Runtime
from tests.api_fixture import ApiClient, unique
from tests.cli.runner import Cli, Ran

SECRET = re.compile(r"spat_[0-9A-Za-z]+")
NOT_FOUND, CONFLICT, FORBIDDEN, BAD_INPUT, UNREACHABLE = 3, 4, 5, 2, 6


def one_line_error(ran: Ran, code: int) -> str:
    assert ran.code == code, (ran.code, ran.out, ran.err)
    lines = ran.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tokenledger: "), ran.err
    assert "Traceback" not in ran.err
    return lines[0]


async def new_account(cli: Cli) -> dict[str, object]:
    created: dict[str, object] = (await cli("accounts", "create", unique("cli"), "-o", "json")).json()
    return created


async def issue(cli: Cli, account: str, name: str, *options: str) -> str:
    ran = await cli("tokens", "issue", "--account", account, "--name", name, *options)
    assert ran.code == 0, ran.err
    assert SECRET.fullmatch(ran.out.rstrip("\n")) and ran.out.count("\n") == 1, ran.out
    assert f"issued access token {name}" in ran.err
    return ran.out.strip()


async def test_accounts_every_command_both_formats(cli: Cli, api: ApiClient) -> None:
    name = unique("ci-bot")
    created = (await cli("accounts", "create", name, "--description", "CI", "-o", "json")).json()
    shown, by_id, listed, quiet, table = await asyncio.gather(
        cli("accounts", "get", name, "-o", "yaml"),
        cli("accounts", "get", created["id"], "-o", "json"),
        cli("accounts", "list", "--name-contains", name, "-o", "json"),
        cli("accounts", "list", "--name-contains", name, "-q"),
        cli("accounts", "list", "--name-contains", name, "-o", "table"),
    )
    assert created == (await api.get(f"/v3/system-accounts/{created['id']}")).body
    assert shown.yaml() == created and by_id.json() == created and listed.json() == [created]
    assert quiet.out == f"{created['id']}\n"
    header, row = table.out.splitlines()
    assert header.split()[:3] == ["id", "name", "enabled"] and name in row and "yes" in row

    updated = (await cli("accounts", "update", name, "--description", "pipelines", "-o", "json")).json()
    assert updated["description"] == "pipelines"
    lifetime = (await cli("accounts", "update", name, "--expires-in", "1y", "-o", "json")).json()
    expires_at = datetime.fromisoformat(lifetime["expires_at"])
    assert abs(expires_at - datetime.now(UTC) - timedelta(days=365)) < timedelta(minutes=5)
    cleared = (await cli("accounts", "update", name, "--expires-in", "never", "-o", "json")).json()
    assert cleared["expires_at"] is None
    assert (await cli("accounts", "disable", name, "-o", "json")).json()["enabled"] is False
    assert (await cli("accounts", "enable", name, "-o", "yaml")).yaml()["enabled"] is True
    renamed = (
        await cli("accounts", "update", name, "--name", name + "-x", "--rotation-period", "90d", "-o", "json")
    ).json()
    assert (renamed["name"], renamed["rotation_period_seconds"]) == (name + "-x", 90 * 86400)

    deleted = await cli("accounts", "delete", name + "-x")
    assert deleted.code == 0 and deleted.out == "" and "deleted system account" in deleted.err
    assert "404" in one_line_error(await cli("accounts", "get", created["id"]), NOT_FOUND)


async def test_tokens_issue_introspect_rename_rotate_revoke_delete(cli: Cli) -> None:
    account = str((await new_account(cli))["name"])
    assert (
        await cli("roles", "assign", "--account", account, "--role", "Viewer")
    ).code == 0  # what the scope names
    secret = await issue(cli, account, "deploy", "--expires-in", "30d", "--scopes", "identity:read")
    active = (await cli("introspect", "-o", "json", stdin=secret + "\n")).json()
    assert (active["active"], active["account_name"], active["scopes"]) == (True, account, ["identity:read"])

    listed: list[dict[str, Any]] = []
    for _ in range(50):  # the introspection is a use, stamped by the usage recorder every second
        listed = (await cli("tokens", "list", "--account", account, "-o", "json")).json()
        if listed and listed[0]["last_used_at"] is not None:
            break
        await asyncio.sleep(0.2)
    assert [(t["name"], t["state"]) for t in listed] == [("deploy", "ACTIVE")]
    assert listed[0]["last_used_at"] is not None
    expires_at = datetime.fromisoformat(listed[0]["expires_at"])  # ttl_seconds, counted by the service
    assert expires_at.microsecond == 0
    assert abs(expires_at - datetime.now(UTC) - timedelta(days=30)) < timedelta(minutes=5)
    got = (await cli("tokens", "get", "--account", account, "deploy", "-o", "yaml")).yaml()
    assert got == listed[0] and "token" not in got
    renamed = (
        await cli("tokens", "rename", "--account", account, "deploy", "deploy-prod", "-o", "json")
    ).json()
    assert (renamed["id"], renamed["name"]) == (got["id"], "deploy-prod")

    rotated = await cli("tokens", "rotate", "--account", account, "deploy-prod", "--grace", "0s")
    assert rotated.code == 0 and SECRET.fullmatch(rotated.out.strip()), rotated.err
    new_secret = rotated.out.strip()
    assert new_secret != secret
    inactive, active_again = await asyncio.gather(
        cli("introspect", "-o", "json", stdin=secret), cli("introspect", "-o", "json", stdin=new_secret)
    )
    assert (inactive.code, inactive.out.strip()) == (1, '{\n  "active": false\n}')
    assert active_again.json()["active"] is True

    revoking = ("tokens", "revoke", "--account", account, "deploy-prod", "--reason", "compromised")
    revoked = (await cli(*revoking, "-o", "json")).json()
    assert revoked["state"] == "REVOKED" and revoked["revoked_at"] is not None
    assert revoked["revoke_reason"] == "compromised"
    assert (await cli("introspect", stdin=new_secret)).code == 1

    whole = (await cli("tokens", "issue", "--account", account, "--name", "ci", "--auto-extend", "7d",
                       "--max-expires-in", "1y", "-o", "json")).json()  # fmt: skip
    assert SECRET.fullmatch(whole["token"]) and whole["auto_extend_seconds"] == 7 * 86400
    assert (await cli("tokens", "delete", "--account", account, whole["id"])).code == 0
    one_line_error(await cli("tokens", "get", "--account", account, whole["id"]), NOT_FOUND)


async def test_roles_and_teams(cli: Cli, api: ApiClient) -> None:
    account = await new_account(cli)
    name, team = str(account["name"]), unique("team")
    organization = (await api.get("/v3/organizations/me")).body["id"]
    viewer = (await cli("roles", "assign", "--account", name, "--role", "Viewer", "-o", "json")).json()
    assert (viewer["role_name"], viewer["entity_type_name"], viewer["entity_id"]) == (
        "Viewer",
        "Identity",
        organization,
    )
    assert (await cli("roles", "list", "--account", name, "-o", "json")).json() == [viewer]

    created = (
        await cli("teams", "create", team, "--description", "T", "--label", "env=prod", "-o", "json")
    ).json()
    assert created["labels"] == {"env": "prod"}
    assert (await cli("teams", "add-member", team, name)).code == 0
    shown = (await cli("teams", "get", team, "-o", "yaml")).yaml()
    assert [member["id"] for member in shown["members"]] == [account["id"]]
    auditor = (await cli("roles", "assign", "--team", team, "--role", "Auditor", "-o", "json")).json()
    assert (await cli("roles", "list", "--team", created["id"], "-o", "yaml")).yaml() == [auditor]
    secret = await issue(cli, name, "member")
    introspected = (await cli("introspect", "-o", "json", stdin=secret)).json()
    assert {(r["role_name"], r["source"]) for r in introspected["roles"]} >= {
        ("Auditor", f"team:{created['id']}")
    }
    table = (await cli("introspect", "-o", "table", stdin=secret)).out
    assert f"Auditor on Identity (team:{created['id']})" in table and "yes" in table

    assert (await cli("roles", "unassign", "--account", name, "Viewer")).code == 0
    assert (await cli("roles", "list", "--account", name, "-o", "json")).json() == []
    assert (await cli("roles", "unassign", "--team", team, auditor["id"])).code == 0
    one_line_error(await cli("roles", "unassign", "--team", team, "Auditor"), NOT_FOUND)

    updated = (await cli("teams", "update", team, "--description", "platform", "-o", "json")).json()
    assert updated["description"] == "platform"
    assert [t["id"] for t in (await cli("teams", "list", "--name-contains", team, "-o", "json")).json()] == [
        created["id"]
    ]
    assert (await cli("teams", "remove-member", team, name)).code == 0
    assert (await cli("teams", "get", team, "-o", "json")).json()["members"] == []
    assert (await cli("teams", "delete", team)).code == 0
    one_line_error(await cli("teams", "get", team), NOT_FOUND)


async def test_audit_events_usage_and_as_of_match_the_export(cli: Cli, api_runtime: Runtime) -> None:
    account = await new_account(cli)
    name = str(account["name"])
    secret = await issue(cli, name, "audited")
    assert (await cli("introspect", stdin=secret)).code == 0
    at = datetime.now(UTC).isoformat()
    assert (await cli("tokens", "revoke", "--account", name, "audited")).code == 0

    events: list[dict[str, Any]] = []
    for _ in range(50):  # token.used comes from the usage recorder, batched every second
        events = (await cli("audit", "events", "--account", name, "-o", "json")).json()
        if "token.used" in [e["type"] for e in events]:
            break
        await asyncio.sleep(0.2)
    types = [e["type"] for e in events]
    assert sorted(types) == ["account.created", "token.issued", "token.revoked", "token.used"]
    assert [t for t in types if t != "token.used"] == ["account.created", "token.issued", "token.revoked"]
    revoked = next(e for e in events if e["type"] == "token.revoked")
    assert set(revoked["actor"]) == {"account_id", "token_id"}
    only = (await cli("audit", "events", "--account", name, "--type", "token.revoked", "-o", "yaml")).yaml()
    assert only == [revoked]
    assert len((await cli("audit", "events", "--limit", "2", "-o", "json")).json()) == 2

    exporter = cli.with_environment(
        DATABASE_URL=api_runtime.dsn, TOKENLEDGER_DATA_DIR=str(api_runtime.settings.data_dir)
    )
    exported = await exporter("audit", "export", "--account", str(account["id"]))
    assert exported.code == 0, exported.err
    lines = [Ran(0, line, "").json() for line in exported.out.splitlines()]
    assert [(line["event_id"], line["actor"], line["occurred_at"]) for line in lines] == [
        (e["event_id"], e["actor"], e["occurred_at"]) for e in events
    ]

    usage: list[dict[str, object]] = []
    for _ in range(50):  # the usage log is flushed every second
        usage = (await cli("audit", "usage", "--account", name, "audited", "-o", "json")).json()
        if usage:
            break
        await asyncio.sleep(0.2)
    assert [(row["outcome"], row["operation"]) for row in usage] == [("accepted", "introspect")]

    then = (await cli("audit", "as-of", at, "--account", name, "--show", "tokens", "-o", "json")).json()
    assert [(t["name"], t["state"]) for t in then] == [("audited", "ACTIVE")]
    assert (await cli("audit", "as-of", at, "--account", name, "-o", "json")).json()["id"] == account["id"]


async def test_each_failure_has_its_exit_code(cli: Cli) -> None:
    account = str((await new_account(cli))["name"])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    issuing = ("tokens", "issue", "--account", account, "--name", "t", "--expires-in")
    (
        missing,
        taken,
        too_long,
        malformed,
        never,
        not_a_time,
        no_holder,
        down,
        nowhere,
        ftp,
    ) = await asyncio.gather(
        cli("accounts", "get", unique("nobody")),
        cli("accounts", "create", account),
        cli("accounts", "create", "x" * 300),
        cli(*issuing, "3x"),
        cli(*issuing, "never"),
        cli("audit", "events", "--from", "yesterday"),
        cli("roles", "list"),
        cli.with_environment(TOKENLEDGER_URL=closed)("accounts", "list"),
        cli.with_environment(TOKENLEDGER_URL=None, TOKENLEDGER_TOKEN=None)("accounts", "list"),
        cli.with_environment(TOKENLEDGER_URL="ftp://x")("accounts", "list"),
    )
    assert "no system account named" in one_line_error(missing, NOT_FOUND)
    assert "409" in one_line_error(taken, CONFLICT)
    assert "name" in one_line_error(too_long, BAD_INPUT)
    assert malformed.code == BAD_INPUT and "--expires-in" in malformed.err
    assert "expires_at" in one_line_error(never, BAD_INPUT)
    assert not_a_time.code == BAD_INPUT and "RFC 3339" in not_a_time.err
    assert no_holder.code == BAD_INPUT and "--account" in no_holder.err
    assert "cannot reach" in one_line_error(down, UNREACHABLE)
    assert "tokenledger login" in one_line_error(nowhere, BAD_INPUT)
    assert "not an http" in one_line_error(ftp, BAD_INPUT)

    assert (await cli("roles", "assign", "--account", account, "--role", "Viewer")).code == 0
    viewer = cli.with_environment(TOKENLEDGER_TOKEN=await issue(cli, account, "viewer"))
    stranger = cli.with_environment(TOKENLEDGER_TOKEN="spat_" + "x" * 50)
    reads, writes, unknown = await asyncio.gather(
        viewer("accounts", "get", account),
        viewer("accounts", "create", unique("no")),
        stranger("accounts", "list"),
    )
    assert reads.code == 0
    assert "403" in one_line_error(writes, FORBIDDEN)
    assert "401" in one_line_error(unknown, FORBIDDEN)


async def test_login_stores_url_and_token_0600_and_never_takes_the_token_from_argv(
    cli: Cli, api_url: str, admin_token: str, tmp_path: Path
) -> None:
    alone = Cli(tmp_path)  # no TOKENLEDGER_* at all
    refused = await alone("login", "--url", api_url, stdin="spat_" + "y" * 50 + "\n")
    assert refused.code == FORBIDDEN and not (tmp_path / "tokenledger").exists()
    assert (
        await alone("login", "--url", api_url, "--token", admin_token)
    ).code == BAD_INPUT  # no such option

    logged_in = await alone("login", "--url", api_url + "/", stdin=admin_token + "\n")
    assert logged_in.code == 0, logged_in.err
    stored = tmp_path / "tokenledger" / "config.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700
    assert admin_token not in logged_in.err + logged_in.out
    assert (await alone("accounts", "list", "-q")).code == 0
    os.chmod(stored, 0o644)
    assert (await alone("login", "--url", api_url, stdin=admin_token)).code == 0
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600


@pytest.mark.parametrize("command", [("accounts", "get"), ("teams", "get")])
async def test_a_name_that_does_not_exist_is_not_found(cli: Cli, command: tuple[str, str]) -> None:
    one_line_error(await cli(*command, unique("missing")), NOT_FOUND)
