"""Reading back, as every event store answers: a stream from a version and up to an instant, its
version, the whole log in commit order past a cursor, and the claims by key or key prefix."""

from datetime import UTC, datetime, timedelta

from events import LogCursor
from events.envelope import LOG_START
from services.ports import Claim, StreamAppend, StreamState
from tests.contract.subjects import Subject
from tests.integration.eventstore_helpers import created, events, ids, new_id, stream_name


async def test_read_stream_from_a_version_and_until_an_instant(subject: Subject) -> None:
    store, stream = subject.store, stream_name()
    first = events(3)
    await store.append(stream, first, StreamState.NO_STREAM)
    between = datetime.now(UTC)
    later = events(2)
    await store.append(stream, later, 3)

    whole = await store.read_stream(stream)
    assert [e.event_id for e in whole] == ids(first + later)
    assert [e.stream_version for e in whole] == [1, 2, 3, 4, 5]
    assert [e.event for e in whole] == [e.event for e in first + later]
    assert [e.metadata for e in whole] == [e.metadata for e in first + later]
    assert all(e.stream_id == stream for e in whole)
    assert [e.stream_version for e in await store.read_stream(stream, 4)] == [4, 5]
    assert await store.read_stream(stream, 6) == []
    assert [e.event_id for e in await store.read_stream(stream, until=between)] == ids(first)
    assert await store.read_stream(stream, until=between - timedelta(days=1)) == []
    assert await store.read_stream(stream_name()) == []
    assert await store.stream_version(stream) == 5
    assert await store.stream_version(stream_name()) == 0


async def test_read_all_is_commit_order_past_a_cursor(alone: Subject) -> None:
    """One append is one transaction: its events share a tx_id; later appends come after, and a
    cursor (tx_id, position) resumes exactly where a page ended."""
    store = alone.store
    one, two = stream_name(), stream_name()
    results = [
        await store.append(one, events(2), StreamState.NO_STREAM),
        await store.append_many([StreamAppend(two, events(2), 0), StreamAppend(one, events(1), 2)]),
        await store.append(two, events(1), 2),
    ]
    log = await store.read_all(LOG_START)
    assert [e.event_id for e in log] == [e.event_id for r in results for e in r.events]
    assert [e.cursor for e in log] == sorted(e.cursor for e in log)
    assert [(e.stream_id, e.stream_version) for e in log] == [
        (one, 1), (one, 2), (two, 1), (two, 2), (one, 3), (two, 3)
    ]  # fmt: skip
    assert len({e.tx_id for e in log[2:5]}) == 1 and log[1].tx_id < log[2].tx_id < log[5].tx_id
    assert [e.cursor for e in log] == [e.cursor for r in results for e in r.events]
    assert all(r.cursor == max(e.cursor for e in r.events) for r in results)

    page = await store.read_all(LOG_START, limit=4)
    assert page == log[:4]
    assert await store.read_all(page[-1].cursor, limit=4) == log[4:]
    assert await store.read_all(log[-1].cursor) == []
    assert await store.read_all(LogCursor(log[-1].tx_id + 1, 0)) == []


async def test_claims_by_key_and_by_prefix(subject: Subject) -> None:
    """A prefix is text, not a pattern: ``%``, ``_`` and backslashes in it match only themselves."""
    store = subject.store
    prefix = f"token-name:{new_id()}:"
    holders = {f"{prefix}a": stream_name(), f"{prefix}b_c": stream_name(), f"{prefix}%\\d": stream_name()}
    for key, stream in holders.items():
        await store.append(stream, [created()], StreamState.NO_STREAM, claims=[Claim(key, stream)])

    assert await store.claims_with_prefix(prefix) == holders
    assert await store.claims_with_prefix(f"{prefix}b_") == {f"{prefix}b_c": holders[f"{prefix}b_c"]}
    assert await store.claims_with_prefix(f"{prefix}b%") == {}
    assert await store.claims_with_prefix(f"{prefix}%\\") == {f"{prefix}%\\d": holders[f"{prefix}%\\d"]}
    assert await store.claims_with_prefix(f"{prefix}_") == {}
    assert await store.claim_owner(f"{prefix}a") == holders[f"{prefix}a"]
    assert await store.claim_owner(f"{prefix}z") is None
