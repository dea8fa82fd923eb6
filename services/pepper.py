"""The pepper: the deployment-wide HMAC key under which token secrets are hashed.

Token events carry ``secret_hash = HMAC-SHA256(pepper, secret)``, never the secret; without the
pepper a copy of the log or the database does not let anyone test guesses offline. Every node of a
deployment must use the same pepper, and losing it invalidates every issued token.

Where it comes from, in order:
1. ``TOKENLEDGER_PEPPER`` (at least 32 characters; its UTF-8 bytes are the key);
2. otherwise the file ``<data_dir>/pepper``: created on first use with mode 0600 and 32 random bytes
   (base64), then reused. With an external ``DATABASE_URL`` that is usually a mistake (another node
   would create a different pepper), so a warning says so.

The pepper is never logged, not even in part.
"""

import base64
import binascii
import contextlib
import logging
import os
import secrets
import stat
from pathlib import Path

from services.config import ConfigError, Settings

MIN_PEPPER_CHARS = 32
PEPPER_BYTES = 32
PEPPER_FILE = "pepper"

_log = logging.getLogger(__name__)


def load_pepper(settings: Settings) -> bytes:
    """The pepper for this deployment (see the module docstring). Raises ConfigError when the
    configured pepper is too short or the pepper file is unusable."""
    if settings.pepper is not None:
        if len(settings.pepper) < MIN_PEPPER_CHARS:
            raise ConfigError(
                f"TOKENLEDGER_PEPPER must be at least {MIN_PEPPER_CHARS} characters"
                f" (it has {len(settings.pepper)})"
            )
        return settings.pepper.encode("utf-8")
    path = settings.data_dir / PEPPER_FILE
    pepper = _read_or_create(path)
    if settings.database_url is not None and not settings.embedded_database:
        _log.warning(
            "TOKENLEDGER_PEPPER is not set: using the pepper file %s with an external database;"
            " every node sharing this database must use the same pepper (set TOKENLEDGER_PEPPER)",
            path,
        )
    return pepper


def _read_or_create(path: Path) -> bytes:
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _create(path)
    return _read(path)


def _read(path: Path) -> bytes:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        _log.warning("the pepper file %s is accessible to other users (mode %o)", path, mode & 0o777)
    try:
        pepper = base64.b64decode(path.read_bytes().strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"the pepper file {path} does not hold base64 data") from None
    if len(pepper) < PEPPER_BYTES:
        raise ConfigError(f"the pepper file {path} holds {len(pepper)} bytes; at least {PEPPER_BYTES} needed")
    return pepper


def _create(path: Path) -> None:
    """Writes a new pepper atomically and only if none exists: the content goes to a private
    temporary file that is then hard-linked into place, so two processes starting together agree
    on one pepper and neither can read a half-written file."""
    content = base64.b64encode(secrets.token_bytes(PEPPER_BYTES)) + b"\n"
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileExistsError):  # another process won the race: use its pepper
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
