"""The adapters the contract suite runs against: every test takes ``subject`` (or ``alone``, when
it needs a log of its own) and runs once per adapter of ``services.ports.EventStore``.

``postgres`` is ``PostgresEventStore`` on the session's shared database (``alone``: on a new, empty
one), observed through its tables; ``memory`` is a new ``MemoryEventStore``, observed through the
port. ``-k memory`` runs the suite without starting PostgreSQL.
"""

from collections.abc import AsyncIterator

import pytest

from services.memory_store import MemoryEventStore
from tests.contract.subjects import MemorySubject, PostgresSubject, Subject
from tests.integration.eventstore_helpers import open_store

ADAPTERS = ["postgres", "memory"]


@pytest.fixture(params=ADAPTERS)
def subject(request: pytest.FixtureRequest) -> Subject:
    """A store of each adapter; the PostgreSQL one is shared with the rest of the session."""
    if request.param == "memory":
        return MemorySubject(MemoryEventStore())
    return PostgresSubject(request.getfixturevalue("store"), request.getfixturevalue("pool"))


@pytest.fixture(params=ADAPTERS)
def alone(request: pytest.FixtureRequest) -> Subject:
    """A store of each adapter holding nothing yet, so positions and counts are this test's alone."""
    if request.param == "memory":
        return MemorySubject(MemoryEventStore())
    subject: Subject = request.getfixturevalue("postgres_alone")
    return subject


@pytest.fixture
async def postgres_alone(empty_database: str) -> AsyncIterator[PostgresSubject]:
    async with open_store(empty_database, max_size=4) as (pool, store):
        yield PostgresSubject(store, pool)
