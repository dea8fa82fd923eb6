"""The log-follower kit on its own (no database): the cursor-waiter heap that projections, the verifier
and the relay share, and the worker lifecycle pieces (sessions with back-off, periodic rounds)."""

import asyncio
from collections.abc import Awaitable, Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from events import LogCursor
from follower.waiters import CursorWaiters
from follower.worker import BackgroundTask, Backoff, PeriodicWorker, keep_running, periodically

cursors = st.builds(LogCursor, st.integers(0, 5), st.integers(0, 5))
operations = st.lists(
    st.one_of(
        st.tuples(st.just("wait"), cursors),
        st.tuples(st.just("advance"), cursors),
        st.tuples(st.just("close"), st.none()),
        st.tuples(st.just("open"), st.none()),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(operations)
def test_a_wait_is_true_exactly_when_an_advance_reached_its_cursor_before_a_close(
    ops: list[tuple[str, LogCursor | None]],
) -> None:
    """Against a model: each wait ends True iff the reached cursor was at or past it when it began
    or some later advance (before a close) reached it; False iff a close came first (or it began
    closed); still pending otherwise. An advance never wakes a waiter it did not reach."""

    async def run() -> None:
        waiters = CursorWaiters()
        is_open = False
        reached = waiters.reached
        expected: list[bool | None] = []
        tasks: list[asyncio.Task[bool]] = []
        for op, cursor in ops:
            if op == "wait":
                assert cursor is not None
                tasks.append(asyncio.create_task(waiters.wait_for(cursor, timeout=3600)))
                await _settle()  # let it register
                if reached >= cursor:
                    expected.append(True)
                elif not is_open:
                    expected.append(False)
                else:
                    expected.append(None)
                    tasks[-1].cursor = cursor  # type: ignore[attr-defined]
            elif op == "advance":
                assert cursor is not None
                waiters.advance(cursor)
                reached = cursor
                for index, task in enumerate(tasks):
                    if expected[index] is None and task.cursor <= cursor:  # type: ignore[attr-defined]
                        expected[index] = True
            elif op == "close":
                waiters.close()
                is_open = False
                expected = [False if e is None else e for e in expected]
            else:
                waiters.open()
                is_open = True
            await _settle()
            for index, task in enumerate(tasks):
                if expected[index] is None:
                    assert not task.done()
                else:
                    assert task.done() and task.result() is expected[index]
        waiters.close()
        await asyncio.gather(*tasks)

    asyncio.run(run())


async def _settle() -> None:
    """Lets the woken waits finish (a resolved wait needs a few turns of the loop to return)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_wait_that_times_out_is_false_and_leaves_the_others_waiting() -> None:
    waiters = CursorWaiters()
    waiters.open()
    late = asyncio.create_task(waiters.wait_for(LogCursor(9, 9), timeout=3600))
    assert await waiters.wait_for(LogCursor(1, 1), timeout=0.001) is False
    waiters.advance(LogCursor(9, 9))
    assert await late is True


async def test_keep_running_retries_a_failing_session_with_back_off_and_ends_when_it_says_so() -> None:
    attempts: list[str] = []
    errors: list[BaseException] = []
    backoff = Backoff(0.001, 0.004)

    async def session() -> bool:
        attempts.append("attempt")
        if len(attempts) < 4:
            raise OSError("down")
        return True

    await keep_running(session, what="test", backoff=backoff, on_error=errors.append)
    assert len(attempts) == 4
    assert [type(e) for e in errors] == [OSError] * 3
    assert backoff.delay == 0.004  # doubled up to the ceiling, never past it


async def test_a_session_that_returns_false_starts_again_from_the_first_delay() -> None:
    backoff = Backoff(0.001, 1.0)
    calls = 0

    async def session() -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("once")
        return calls == 3

    await keep_running(session, what="test", backoff=backoff)
    assert calls == 3
    assert backoff.delay == 0.002  # reset after the good session, then one sleep


async def test_a_periodic_round_that_fails_does_not_end_the_loop() -> None:
    rounds = 0
    done = asyncio.Event()

    async def round_() -> None:
        nonlocal rounds
        rounds += 1
        if rounds == 1:
            raise RuntimeError("first round fails")
        done.set()

    task = BackgroundTask("test-periodic", lambda: periodically(round_, what="test", interval=0.001))
    task.start()
    await done.wait()
    await task.stop()
    assert rounds >= 2 and not task.running


async def test_a_periodic_worker_runs_at_start_and_a_wake_runs_the_next_round_early() -> None:
    ran = asyncio.Event()
    worker = PeriodicWorker("test-worker", _set(ran), interval=3600)
    await worker.start()
    await ran.wait()  # at start, not after an hour
    await worker.stop()

    woken = asyncio.Event()
    wake = asyncio.Event()
    task = BackgroundTask(
        "test-wake", lambda: periodically(_set(woken), what="test", interval=3600, wake=wake)
    )
    task.start()
    wake.set()
    await woken.wait()
    await task.stop()


def _set(event: asyncio.Event) -> Callable[[], Awaitable[None]]:
    async def round_() -> None:
        event.set()

    return round_
