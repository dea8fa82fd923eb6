"""Pure parts of idempotent retries: derived secrets (well-formed, the same on every retry, distinct
otherwise), ``commands.recorded`` (finds a command's own events and only them), and the rule that
only the current secret and the one the latest rotation replaced, in its grace period, work."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from events import RecordedEvent
from events.accounts import AccountCreated, AccountDeleted, AccountUpdated
from events.tokens import TokenIssued, TokenRotated
from services.accounts import model as accounts
from services.accounts.model import Account
from services.commands import CommandContext, Recorded, Superseded, recorded
from services.tokens import model as tokens
from services.tokens.model import Token
from services.tokens.secrets import derived_secret, is_well_formed

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
PEPPER = b"a pepper of thirty-two bytes or more, for tests"
ACCOUNT = str(uuid.UUID(int=7))

texts = st.text(min_size=1, max_size=40)


@given(texts, texts)
def test_derived_secrets_are_well_formed_repeatable_and_distinct(first: str, second: str) -> None:
    secret = derived_secret(PEPPER, first)
    assert is_well_formed(secret)
    assert derived_secret(PEPPER, first) == secret
    assert derived_secret(PEPPER + b"!", first) != secret
    if first != second:
        assert derived_secret(PEPPER, second) != secret


def test_a_derived_secret_needs_a_pepper() -> None:
    with pytest.raises(ValueError, match="pepper"):
        derived_secret(b"", "x")


def test_secrets_are_derived_only_under_a_key() -> None:
    keyed = CommandContext(now=T0, actor=ACCOUNT, idempotency_key="scope")
    assert keyed.derivation("secret") == CommandContext(
        now=T0, actor=ACCOUNT, idempotency_key="scope"
    ).derivation("secret")
    assert keyed.derivation("secret") != CommandContext(
        now=T0, actor="other", idempotency_key="scope"
    ).derivation("secret")
    assert CommandContext(now=T0, actor=ACCOUNT).derivation("secret") is None


def _log(
    *appends: tuple[CommandContext, list[AccountCreated | AccountUpdated | AccountDeleted]],
) -> list[RecordedEvent]:
    """The account stream after these appends, each with its command's event ids."""
    stream = accounts.stream_of(ACCOUNT)
    history: list[RecordedEvent] = []
    for tx, (ctx, events) in enumerate(appends, start=1):
        for new in ctx.new_events(stream, events):
            history.append(
                RecordedEvent(
                    global_position=len(history) + 1,
                    tx_id=tx,
                    stream_id=stream,
                    stream_version=len(history) + 1,
                    event_id=new.event_id,
                    event=new.event,
                    metadata=new.metadata,
                    recorded_at=T0,
                )
            )
    return history


def _recorded(ctx: CommandContext, history: list[RecordedEvent]) -> Recorded[Account] | None:
    current = accounts.fold(ACCOUNT, history)
    return recorded(
        ctx,
        accounts.stream_of(ACCOUNT),
        history,
        current,
        lambda h: accounts.fold(ACCOUNT, h),
        lambda a: a.live,
    )


CREATED = AccountCreated(account_id=ACCOUNT, name="a", description="", konnect_managed=False)


@given(
    st.lists(st.sampled_from(["k1", "k2", None]), min_size=1, max_size=6), st.sampled_from(["k1", "k2", "k3"])
)
def test_recorded_finds_exactly_the_commands_own_events(keys: list[str | None], wanted: str) -> None:
    commands = [
        CommandContext(now=T0 + timedelta(seconds=n), actor=ACCOUNT, idempotency_key=key)
        for n, key in enumerate(keys)
    ]
    first_of = {key: n for n, key in reversed(list(enumerate(keys)))}
    appends = [(commands[0], [CREATED])] + [
        (
            ctx,
            [
                AccountUpdated(account_id=ACCOUNT, name="a", description=f"d{n}"),
                AccountUpdated(account_id=ACCOUNT, name=f"n{n}", description=f"d{n}"),
            ],
        )
        for n, ctx in enumerate(commands[1:], start=1)
        if ctx.idempotency_key is None or first_of[ctx.idempotency_key] == n  # a key names one command
    ]
    history = _log(*appends)
    found = _recorded(CommandContext(now=T0, actor=ACCOUNT, idempotency_key=wanted), history)
    owners = [n for n, (ctx, _) in enumerate(appends) if ctx.idempotency_key == wanted]
    if not owners:
        assert found is None
        return
    assert found is not None
    [owner] = owners
    end = sum(len(events) for _, events in appends[: owner + 1])
    assert found.events == tuple(appends[owner][1]) and not found.superseded
    assert found.outcome.state == accounts.fold(ACCOUNT, history[:end])
    assert found.outcome.cursor == (history[end - 1].tx_id, history[end - 1].global_position)


def test_recorded_refuses_a_retry_whose_aggregate_was_deleted_since() -> None:
    create = CommandContext(now=T0, actor=ACCOUNT, idempotency_key="create")
    delete = CommandContext(now=T0, actor=ACCOUNT, idempotency_key="delete")
    history = _log((create, [CREATED]), (delete, [AccountDeleted(account_id=ACCOUNT)]))
    retried_create = _recorded(create, history)
    assert retried_create is not None and retried_create.superseded
    with pytest.raises(Superseded):
        retried_create.original()
    retried_delete = _recorded(delete, history)
    assert retried_delete is not None and not retried_delete.original().state.live
    assert _recorded(CommandContext(now=T0, actor=ACCOUNT), history) is None


TOKEN = str(uuid.UUID(int=8))


@given(
    st.lists(st.tuples(st.integers(1, 3600), st.integers(0, 7200)), min_size=1, max_size=8),
    st.integers(0, 40_000),
)
def test_only_the_current_secret_and_the_one_just_replaced_work(
    rotations: list[tuple[int, int]], probe: int
) -> None:
    """Rotations (after ``wait`` seconds, with ``grace`` seconds): at any instant, the current
    secret works, the one the latest rotation replaced works until its grace ends, no other does."""
    state = tokens.evolve(
        Token(token_id=TOKEN),
        TokenIssued(token_id=TOKEN, account_id=ACCOUNT, name="t", secret_hash="h1", expires_at=None),
        1,
        T0,
    )
    now = T0
    for wait, grace in rotations:
        now += timedelta(seconds=wait)
        [event] = tokens.rotate(state, now, f"h{state.secret_version + 1}", grace)
        assert isinstance(event, TokenRotated)
        state = tokens.evolve(state, event, state.version + 1, now)
    at = now + timedelta(seconds=probe)
    working = {v for v in range(1, state.secret_version + 1) if tokens.secret_works(state, v, at)}
    _, last_grace = rotations[-1]
    expected = {state.secret_version}
    if last_grace and at < now + timedelta(seconds=last_grace):
        expected.add(state.secret_version - 1)
    assert working == expected
