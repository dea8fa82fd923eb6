"""What HTTP handlers need from the authentication side, as a structural type, so that the
composition root's runtime object can serve it directly (it only needs these three attributes)."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from services.auth.usage import UsageRecorder
from services.auth.verifier import TokenVerifier


class AuthServices(Protocol):
    @property
    def verifier(self) -> TokenVerifier: ...

    @property
    def usage(self) -> UsageRecorder: ...

    def clock(self) -> datetime: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class StaticAuthServices:
    """A plain ``AuthServices`` (tests, benchmarks, minimal servers)."""

    verifier: TokenVerifier
    usage: UsageRecorder
    clock: Callable[[], datetime] = field(default=utc_now)
