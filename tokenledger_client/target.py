"""Where the API is and which token to send: ``TOKENLEDGER_URL`` / ``TOKENLEDGER_TOKEN``, else the
file ``tokenledger login`` writes.

The file is ``$XDG_CONFIG_HOME/tokenledger/config.json`` (``~/.config/tokenledger/config.json``),
per user, created 0600 in a 0700 directory, and rewritten 0600 every time: it holds a token. The
environment wins over the file, variable by variable.
"""

import json
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from tokenledger_client.errors import ClientError, Exit

URL_VARIABLE, TOKEN_VARIABLE = "TOKENLEDGER_URL", "TOKENLEDGER_TOKEN"
MAX_TOKEN_LENGTH = 1024


@dataclass(frozen=True)
class Target:
    url: str
    token: str


def config_file() -> Path:
    return platformdirs.user_config_path("tokenledger") / "config.json"


def checked_url(url: str) -> str:
    """An http(s) URL without a query or fragment, without the trailing slash."""
    parsed = urllib.parse.urlsplit(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.query or parsed.fragment:
        raise ClientError(f"not an http(s) URL of the service: {url!r}", Exit.BAD_INPUT)
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, parsed.path.rstrip("/"), "", ""))


def checked_token(token: str) -> str:
    token = token.strip()
    if not token or len(token) > MAX_TOKEN_LENGTH or not token.isascii() or not token.isprintable():
        raise ClientError("that is not a token (printable ASCII, one line)", Exit.BAD_INPUT)
    return token


def _stored() -> dict[str, str]:
    path = config_file()
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise ClientError(
            f"cannot read {path}: {error}; run tokenledger login again", Exit.BAD_INPUT
        ) from None
    if not isinstance(loaded, dict):
        raise ClientError(f"{path} is not a login file; run tokenledger login again", Exit.BAD_INPUT)
    return {key: value for key, value in loaded.items() if isinstance(value, str)}


def load_target(environ: Mapping[str, str] = os.environ) -> Target:
    stored = _stored()
    url = environ.get(URL_VARIABLE) or stored.get("url")
    token = environ.get(TOKEN_VARIABLE) or stored.get("token")
    if not url or not token:
        raise ClientError(
            "no service configured: run `tokenledger login --url URL`"
            f" or set {URL_VARIABLE} and {TOKEN_VARIABLE}",
            Exit.BAD_INPUT,
        )
    return Target(checked_url(url), checked_token(token))


def save_target(target: Target) -> Path:
    """Writes the login file 0600 (in a 0700 directory); returns its path."""
    path = config_file()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        os.fchmod(file.fileno(), 0o600)
        json.dump({"url": target.url, "token": target.token}, file)
        file.write("\n")
    return path
