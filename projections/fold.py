"""An optional accelerator for building a projection from the start of the log.

``Projection.apply`` (``projections.base``) is the reference semantics: SQL statements that bring the
tables up to date, one event at a time. That is the right shape for following the log, but replaying a
million events through it costs a million statements. A projection that also implements
``Foldable`` can instead be *folded*: the builder feeds every event to an in-memory ``Fold`` (plain
dictionaries keyed like the tables) and writes the result with one ``COPY`` per table, then continues
with ``apply`` from where the fold stopped.

A fold must leave exactly the rows the statements would: the integration tests build every read model
both ways from random logs and compare the tables row by row, so the two stay honest.
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

from events import RecordedEvent


class TableRows(NamedTuple):
    """The rows of one table, each a tuple in the order of ``columns``."""

    columns: Sequence[str]
    rows: Iterable[tuple[Any, ...]]


class Fold(Protocol):
    def apply(self, event: RecordedEvent) -> None:
        """Applies ``event`` to the in-memory rows, with the semantics of ``Projection.apply``."""
        ...

    def tables(self) -> Mapping[str, TableRows]:
        """The rows of every logical table (all of ``Projection.tables``)."""
        ...

    def __len__(self) -> int:
        """How many rows the fold holds (the builder flushes to the database past a limit)."""
        ...


@runtime_checkable
class Foldable(Protocol):
    def fold(self) -> Fold:
        """A new, empty fold: the state of empty tables."""
        ...
