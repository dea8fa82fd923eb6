"""Exit codes and the one-line errors of the client.

Every failure ends in one line on stderr, ``tokenledger: <what is wrong>``, and a distinct exit code
(documented in the README and on ``tokenledger --help``), so a script can tell a missing account from
a refused one or a server that is down.
"""

import enum
from typing import Any

import click


class Exit(enum.IntEnum):
    OK = 0
    FAILED = 1
    """The server failed (5xx) or answered something unexpected; an inactive token for introspect."""
    BAD_INPUT = 2
    """A bad argument, a 400/422 problem, or no URL/token configured."""
    NOT_FOUND = 3
    CONFLICT = 4
    """409: a name in use, a retry in flight, a version changed under the command."""
    FORBIDDEN = 5
    """401 or 403: no valid token, or not the rights for this."""
    UNREACHABLE = 6
    """No answer from the URL (connection refused, DNS, timeout, TLS)."""


EXIT_CODES_HELP = (
    "Exit codes: 0 ok, 1 failed (server error; inactive token for introspect), 2 bad input, "
    "3 not found, 4 conflict, 5 forbidden or not authenticated, 6 unreachable."
)

_BY_STATUS = {400: Exit.BAD_INPUT, 401: Exit.FORBIDDEN, 403: Exit.FORBIDDEN, 404: Exit.NOT_FOUND}
_BY_STATUS |= {409: Exit.CONFLICT, 412: Exit.CONFLICT, 415: Exit.BAD_INPUT, 422: Exit.BAD_INPUT}


class ClientError(Exception):
    """A failure of a client command: its line, and the exit code it maps to."""

    def __init__(self, message: str, code: Exit) -> None:
        super().__init__(message)
        self.message, self.code = message, code

    def show(self) -> None:
        click.echo(f"tokenledger: {printable(self.message)}", err=True)


def printable(text: str) -> str:
    """Text from a server or a client on a terminal: control characters escaped, so a name cannot
    move the cursor or hide a line."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def for_status(status: int) -> Exit:
    return _BY_STATUS.get(status, Exit.FAILED)


def problem_line(status: int, problem: Any) -> str:
    """One line out of an ``application/problem+json`` answer (title, detail, each invalid field)."""
    if not isinstance(problem, dict):
        return f"the server answered {status}"
    parts = [str(problem.get("detail") or problem.get("title") or f"the server answered {status}")]
    invalid = problem.get("invalid_parameters")
    if isinstance(invalid, list):
        for item in invalid:
            if isinstance(item, dict):
                parts.append(f"{item.get('field', '?')}: {item.get('reason', 'invalid')}")
    return f"{status} " + "; ".join(parts)
