"""``SharedLogReads``: equal reads of the log are one query, kept answers are handed out, a cancelled
caller does not cancel the others' read, and a failed read is neither kept nor hidden."""

import asyncio
from typing import Any

import pytest

from events import LogCursor
from services.eventstore.shared_reads import SharedLogReads

START = LogCursor(0, 0)


class GatedReader:
    """A log reader whose reads wait for ``release`` and answer ``answer`` (or raise ``error``)."""

    def __init__(self, answer: list[Any]) -> None:
        self.answer = answer
        self.error: Exception | None = None
        self.calls: list[tuple[LogCursor, int]] = []
        self.release = asyncio.Event()

    async def read_all(self, after: LogCursor, limit: int) -> list[Any]:
        self.calls.append((after, limit))
        await self.release.wait()
        if self.error is not None:
            raise self.error
        return list(self.answer)


async def test_concurrent_equal_reads_are_one_query() -> None:
    reader = GatedReader(["e1", "e2"])
    shared = SharedLogReads(reader)
    readers = [asyncio.create_task(shared.read_all(START, 1000)) for _ in range(8)]
    await asyncio.sleep(0)
    reader.release.set()
    assert await asyncio.gather(*readers) == [["e1", "e2"]] * 8
    assert (reader.calls, shared.queries, shared.shared) == ([(START, 1000)], 1, 7)


async def test_a_later_read_from_the_same_cursor_gets_the_kept_answer() -> None:
    reader = GatedReader(["e1"])
    reader.release.set()
    shared = SharedLogReads(reader)
    first = await shared.read_all(START, 1000)
    first.append("changed by its caller")
    assert await shared.read_all(START, 1000) == ["e1"]
    assert len(reader.calls) == 1
    await shared.read_all(START, 10)  # another limit is another read
    await shared.read_all(LogCursor(1, 1), 1000)  # and so is another cursor
    assert len(reader.calls) == 3


async def test_an_empty_answer_is_not_kept() -> None:
    reader = GatedReader([])
    reader.release.set()
    shared = SharedLogReads(reader)
    assert await shared.read_all(START, 1000) == []
    reader.answer = ["committed since"]
    assert await shared.read_all(START, 1000) == ["committed since"]


async def test_only_the_last_answers_are_kept() -> None:
    reader = GatedReader(["e"])
    reader.release.set()
    shared = SharedLogReads(reader, kept=2)
    for position in range(3):
        await shared.read_all(LogCursor(1, position), 1000)
    await shared.read_all(LogCursor(1, 0), 1000)  # the oldest was dropped: read again
    await shared.read_all(LogCursor(1, 2), 1000)  # still kept
    assert len(reader.calls) == 4


async def test_a_cancelled_caller_leaves_the_read_to_the_others() -> None:
    reader = GatedReader(["e1"])
    shared = SharedLogReads(reader)
    first = asyncio.create_task(shared.read_all(START, 1000))
    second = asyncio.create_task(shared.read_all(START, 1000))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    reader.release.set()
    assert await second == ["e1"]
    assert first.cancelled() and len(reader.calls) == 1


async def test_a_failed_read_fails_its_callers_and_is_not_kept() -> None:
    reader = GatedReader(["e1"])
    reader.error = ConnectionError("lost")
    shared = SharedLogReads(reader)
    readers = [asyncio.create_task(shared.read_all(START, 1000)) for _ in range(2)]
    await asyncio.sleep(0)
    reader.release.set()
    for task in readers:
        with pytest.raises(ConnectionError):
            await task
    reader.error = None
    assert await shared.read_all(START, 1000) == ["e1"]
    assert len(reader.calls) == 2
