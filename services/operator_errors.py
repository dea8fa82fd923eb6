"""Operator mistakes, each as the one line that says what is wrong and what to do (no traceback).

``explain(error)`` is that line for an exception a command can meet because of how it was started
(a port in use, a database that cannot be reached or refuses the credentials, a malformed
``DATABASE_URL``), else None: an unexpected failure keeps its traceback.
"""

import errno
import socket

from services.config import ConfigError


class PortInUse(OSError):
    """The HTTP port is taken; raised by ``serve`` with the address it wanted."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(errno.EADDRINUSE, f"{host}:{port} is already in use")
        self.host, self.port = host, port


def explain(error: BaseException) -> str | None:
    import asyncpg  # here, not at start-up: every command line imports this module

    if isinstance(error, ConfigError):
        return f"configuration error: {error}"
    if isinstance(error, PortInUse):
        return (
            f"cannot listen on {error.host}:{error.port}: the port is in use; stop what listens there"
            " or pass --port"
        )
    if isinstance(error, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError):
        return f"the database refused the login ({error}); check the user and password in DATABASE_URL"
    if isinstance(error, asyncpg.InvalidCatalogNameError):
        return f"the database does not exist ({error}); create it or fix the name in DATABASE_URL"
    if isinstance(error, asyncpg.ClientConfigurationError):
        return f"DATABASE_URL is not usable: {error}"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve the database host ({error.strerror}); check the host in DATABASE_URL"
    if isinstance(error, ConnectionError | TimeoutError) or (
        isinstance(error, OSError)
        and error.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH)
    ):
        return f"cannot reach the database ({error}); is it running, and is DATABASE_URL right?"
    return None
