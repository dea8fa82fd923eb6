"""What a process knows of the checkpoints committed elsewhere (no database): the notice payload, and
that notices told late, out of order, or of older tables never let a wait answer before its cursor."""

import asyncio
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from events import LogCursor
from projections.known import CommittedCheckpoint, KnownCheckpoints, decode, encode

checkpoints = st.builds(
    CommittedCheckpoint,
    st.sampled_from(["accounts", "tokens", "token_secrets"]),
    st.integers(1, 2),
    st.integers(0, 2),
    st.builds(LogCursor, st.integers(0, 10**12), st.integers(0, 10**12)),
)


@given(st.lists(checkpoints, max_size=8))
def test_a_payload_decodes_to_what_was_encoded(told: list[CommittedCheckpoint]) -> None:
    assert decode(encode(told)) == told


def test_a_payload_without_checkpoints_decodes_to_none() -> None:
    assert decode("") == []
    assert decode("accounts:1:0:x:2,nonsense") == []


@settings(max_examples=300, deadline=None)
@given(st.lists(checkpoints, max_size=12), st.randoms(use_true_random=False))
def test_any_order_of_notices_knows_the_newest_tables_and_their_checkpoint(
    committed: list[CommittedCheckpoint], rng: random.Random
) -> None:
    """However the notices of one history are reordered (or repeated), what is known of each
    projection is the checkpoint of its newest tables, the furthest committed with them."""
    known = KnownCheckpoints()
    told = committed * 2
    rng.shuffle(told)
    known.learn(told)
    for name in {c.name for c in committed}:
        newest = max((c.tables, c.cursor) for c in committed if c.name == name)
        assert known.reached(name, newest[1])
        assert not known.reached(name, LogCursor(newest[1].tx_id, newest[1].position + 1))


def test_a_checkpoint_of_older_tables_told_late_is_ignored() -> None:
    known = KnownCheckpoints()
    known.learn([CommittedCheckpoint("tokens", 1, 1, LogCursor(10, 5))])
    known.learn([CommittedCheckpoint("tokens", 1, 0, LogCursor(20, 9))])  # before the switch
    assert not known.reached("tokens", LogCursor(20, 9))
    known.learn([CommittedCheckpoint("tokens", 2, 0, LogCursor(8, 1))])  # a new version, built anew
    assert not known.reached("tokens", LogCursor(10, 5))


async def test_a_wait_resolves_when_its_cursor_is_told_and_not_before() -> None:
    known = KnownCheckpoints()
    wait = asyncio.create_task(known.wait_for("tokens", LogCursor(5, 3), 5.0))
    await asyncio.sleep(0)
    known.learn([CommittedCheckpoint("tokens", 1, 0, LogCursor(5, 2))])
    known.learn([CommittedCheckpoint("accounts", 1, 0, LogCursor(9, 9))])  # another projection's
    await asyncio.sleep(0)
    assert not wait.done()
    known.learn([CommittedCheckpoint("tokens", 1, 0, LogCursor(5, 3))])
    assert await wait
    assert not await known.wait_for("accounts", LogCursor(10, 0), 0.01)
