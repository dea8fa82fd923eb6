"""The idempotency port of the command side: the claims a dispatch takes on an idempotency key, what
a key may hold, the digests that name a command run, and the refusals of a second run under a key.

``IdempotencyClaims`` is implemented by ``services.idempotency.IdempotencyStore`` (PostgreSQL); the
dispatcher (``services.dispatch``) drives it and imports no driver. A claim is one row per (scope,
key) where the scope is the credential that used the key and the kind of command; the fingerprint is
what a retry must repeat under the same key. A run that changed nothing leaves no event to answer its
retries from: its claim keeps what its answer was decided on (``Unchanged``) instead.
"""

import hashlib
import uuid
from typing import Protocol

import msgspec

from services.commands import DomainError, Unchanged

MAX_KEY_LENGTH = 255


class Claimed(msgspec.Struct, frozen=True):
    claim_id: uuid.UUID
    unchanged: Unchanged | None = None
    """An earlier run under the key changed nothing: what its answer was decided on."""


class InProgress(msgspec.Struct, frozen=True):
    pass


class Mismatch(msgspec.Struct, frozen=True):
    pass


ClaimOutcome = Claimed | InProgress | Mismatch


class KeyInProgress(DomainError):
    """Another run under this idempotency key has not ended yet: retry shortly."""


class KeyReused(DomainError):
    """This idempotency key was already used (by this credential) with another command."""


class IdempotencyClaims(Protocol):
    async def claim(self, scope: str, key: str, fingerprint: str) -> ClaimOutcome:
        """Takes the key for this run, or says why not (another command, a run in progress)."""
        ...

    async def end(self, scope: str, key: str, claim: Claimed, unchanged: Unchanged | None = None) -> None:
        """Ends the run, however it ended, so that a retry may claim the key again, keeping
        ``unchanged`` for the retries of a run that changed nothing. Never raises for the store's
        own failures: a claim not ended frees itself after the pending timeout."""
        ...


def key_problem(key: str) -> str | None:
    """Why ``key`` is not a usable idempotency key (``blank``, ``too_long``, ``not_printable``), or
    None when it is one."""
    if not key.strip():
        return "blank"
    if len(key) > MAX_KEY_LENGTH:
        return "too_long"
    if not key.isprintable():
        return "not_printable"
    return None


def scope_digest(parts: tuple[str | bytes, ...]) -> str:
    """A SHA-256 over ``parts``, each length-prefixed (so no two tuples share a digest by concatenation)."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part
        digest.update(len(data).to_bytes(4, "big") + data)
    return digest.hexdigest()


def command_tag(command: object) -> str:
    """The command's type tag (``token.issue``...), or its class name for an untagged one."""
    config = getattr(type(command), "__struct_config__", None)
    tag = config.tag if config is not None else None
    return str(tag) if tag is not None else type(command).__name__


def command_fingerprint(command: object) -> str:
    """What a retry must repeat under the same key: the command as data (its JSON, sets in a fixed
    order, with its type tag), the same in every process."""
    return scope_digest((command_tag(command), msgspec.json.encode(command, order="deterministic")))
