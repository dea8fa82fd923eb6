"""The ``tokenledger`` command tree (no server): every command the issue names exists, each has
``--help`` with an example, and the pure pieces of the client behave (durations, table cells, the
operator-error lines)."""

import asyncpg
import click
import pytest

from services.cli import tokenledger
from services.operator_errors import explain
from tokenledger_client.durations import duration_seconds
from tokenledger_client.output import _cell

EXPECTED = {
    "serve", "migrate", "bootstrap", "projector", "scheduler", "relay", "subscribe", "kafka-local", "login",
    "introspect", "projections status", "projections rebuild", "scan",
    "audit verify", "audit checkpoint", "audit export", "audit export-usage", "audit import", "audit replay",
    "audit events", "audit usage", "audit as-of",
    *(f"accounts {c}" for c in ("list", "get", "create", "update", "enable", "disable", "delete")),
    *(f"tokens {c}" for c in ("list", "get", "issue", "rename", "rotate", "revoke", "delete")),
    *(f"roles {c}" for c in ("list", "assign", "unassign")),
    *(f"teams {c}" for c in ("list", "get", "create", "update", "delete", "add-member", "remove-member")),
}  # fmt: skip


def leaves(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found |= leaves(command, f"{prefix}{name} ")
        else:
            found[prefix + name] = command
    return found


def test_every_command_of_the_issue_exists() -> None:
    assert set(leaves(tokenledger)) == EXPECTED


@pytest.mark.parametrize("path", sorted(EXPECTED))
def test_help_has_an_example(path: str) -> None:
    command = leaves(tokenledger)[path]
    text = command.get_help(click.Context(command, info_name=path))
    assert "Example" in text and f"tokenledger {path}" in text.replace("  ", " "), text


def test_durations() -> None:
    assert [duration_seconds(t, "--x") for t in ("30d", "12h", "1y", "45s")] == [2592000, 43200, 31536000, 45]
    for bad in ("0d", "3x", "-1d", "11y", "d", "1.5d"):
        with pytest.raises(click.BadParameter):
            duration_seconds(bad, "--x")


def test_a_table_cell_cannot_move_the_cursor() -> None:
    assert _cell("evil\x1b[2Jname\n") == "evil\\x1b[2Jname\\n"
    assert (_cell(None), _cell(True), _cell(["a", "b"]), _cell({"env": "prod"})) == (
        "-",
        "yes",
        "a, b",
        "env=prod",
    )


def test_operator_error_lines() -> None:
    refused = explain(asyncpg.InvalidPasswordError("password authentication failed for user x"))
    assert refused is not None and "user and password in DATABASE_URL" in refused
    assert explain(ConnectionRefusedError(111, "Connect call failed")) is not None
    assert explain(ValueError("a bug")) is None
