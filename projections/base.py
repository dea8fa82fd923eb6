"""The contract between projections and the runtime that drives them.

Table names in a projection's SQL are written as ``{name}`` placeholders. The runtime substitutes
the physical, versioned table (``rm_<name>_v<version>``), which is what makes a rebuild into a fresh
table possible while the old one keeps serving; queries read the stable view ``rm_<name>`` that the
runtime points at the live version.
"""

from collections.abc import AsyncIterator, Sequence
from typing import Any, NamedTuple, Protocol

from events import LogCursor, RecordedEvent


class Statement(NamedTuple):
    """One parameterised SQL statement; statements with equal ``sql`` may be batched together."""

    sql: str
    args: tuple[Any, ...]


class Projection(Protocol):
    name: str
    """Stable identifier, used for the checkpoint and the CLI."""
    version: int
    """Bump when ``apply`` or ``ddl`` changes meaning: the runtime then rebuilds from position 0."""
    tables: Sequence[str]
    """Logical table names owned by this projection (the ``{name}`` placeholders)."""

    def ddl(self) -> Sequence[str]:
        """CREATE TABLE / CREATE INDEX statements, with ``{name}`` placeholders."""
        ...

    def apply(self, event: RecordedEvent) -> Sequence[Statement]:
        """The statements that apply ``event``; empty for events this projection ignores.
        Must be deterministic and idempotent: applying an event twice leaves the same rows."""
        ...


class LogSource(Protocol):
    """What the runtime needs from the event log (implemented by ``services.eventstore``)."""

    def batches(self, after: LogCursor) -> AsyncIterator[list[RecordedEvent]]: ...

    async def read_all(self, after: LogCursor, limit: int) -> list[RecordedEvent]: ...
