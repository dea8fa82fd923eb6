"""The token verifier against real PostgreSQL: every rejection, the cache and what invalidates it, and
the guard that never lets a read model that is behind an already-seen event accept a token.

Read models are the real projections' reducers applied by ``test_verifier_support.ReadModel`` on
demand, so a test can hold the read model behind the log on purpose.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import pytest

from events import Event, Metadata, NewEvent
from events.accounts import (
    AccountCreated,
    AccountDeleted,
    AccountDisabled,
    AccountEnabled,
    AccountExpired,
    AccountRoleUnassigned,
    AccountUpdated,
)
from events.teams import TeamDeleted, TeamMemberRemoved
from events.tokens import (
    TokenDeleted,
    TokenExpired,
    TokenIssued,
    TokenRenamed,
    TokenRevoked,
    TokenRotated,
    TokenSecretRetired,
    TokenUsed,
)
from services import database
from services.auth.principal import Principal, Rejection, RoleGrant
from services.auth.verifier import TokenVerifier
from services.eventstore import PostgresEventStore
from services.eventstore.notifications import LogNotifications
from services.ports import StreamAppend, StreamState
from services.tokens.secrets import generate_secret, secret_hash
from tests.api_fixture import tampered
from tests.integration.test_verifier_support import (
    ORGANIZATION,
    PEPPER,
    World,
    new_id,
    open_world,
    utc_now,
)


@pytest.fixture
async def world(empty_database: str) -> AsyncIterator[World]:
    async with open_world(empty_database) as world:
        yield world


async def eventually(condition: Callable[[], Awaitable[bool]], timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


# -- acceptance and the principal -------------------------------------------------------------------


async def test_a_valid_token_yields_its_principal_with_direct_and_team_roles(world: World) -> None:
    account = await world.account("ci-bot")
    assignment = await world.grant(account, "Admin")
    team_id, _ = await world.team_with_role(account, "Viewer")
    expires = utc_now() + timedelta(days=3)
    token = await world.issue(account, name="deploy", expires_at=expires, scopes=["identity:read"])
    await world.settle()
    verifier = await world.verifier()

    principal = await verifier.verify(token.secret, utc_now())

    assert isinstance(principal, Principal), principal
    assert principal.token_id == token.token_id
    assert principal.account_id == account
    assert principal.account_name == "ci-bot"
    assert principal.token_name == "deploy"
    assert principal.scopes == ("identity:read",)
    assert principal.expires_at == expires
    assert principal.secret_version == 1
    assert principal.issued_at <= utc_now()
    assert principal.roles == (
        RoleGrant(
            role_name="Admin",
            entity_id=ORGANIZATION,
            entity_type_name="Identity",
            entity_region="*",
            source="direct",
        ),
        RoleGrant(
            role_name="Viewer",
            entity_id=ORGANIZATION,
            entity_type_name="Identity",
            entity_region="us",
            source=f"team:{team_id}",
        ),
    )
    assert assignment


async def test_a_second_verification_is_served_from_the_cache(world: World) -> None:
    account = await world.account()
    token = await world.issue(account)
    await world.settle()
    verifier = await world.verifier()

    assert isinstance(await verifier.verify(token.secret, utc_now()), Principal)
    assert isinstance(await verifier.verify(token.secret, utc_now()), Principal)

    assert verifier.metrics.loads == 1
    assert verifier.metrics.hits == 1
    assert verifier.metrics.misses == 1


# -- every rejection ---------------------------------------------------------------------------------


async def test_malformed_tokens_are_rejected_without_a_lookup(world: World) -> None:
    verifier = await world.verifier()
    secret = generate_secret()
    for presented in ("", "Bearer x", tampered(secret), secret + "x"):
        assert await verifier.verify(presented, utc_now()) is Rejection.MALFORMED
    assert verifier.metrics.loads == 0
    assert verifier.metrics.rejections[Rejection.MALFORMED] == 4


async def test_an_unknown_token_is_rejected_and_remembered(world: World) -> None:
    await world.settle()
    verifier = await world.verifier()
    secret = generate_secret()
    assert await verifier.verify(secret, utc_now()) is Rejection.UNKNOWN
    assert await verifier.verify(secret, utc_now()) is Rejection.UNKNOWN
    assert verifier.metrics.loads == 1


async def test_a_revoked_token_is_rejected(world: World) -> None:
    account = await world.account()
    token = await world.issue(account)
    await world.append(
        f"token-{token.token_id}",
        TokenRevoked(token_id=token.token_id, account_id=account, reason="compromised"),
    )
    await world.settle()
    verifier = await world.verifier()
    assert await verifier.verify(token.secret, utc_now()) is Rejection.REVOKED


async def test_a_deleted_token_is_rejected(world: World) -> None:
    account = await world.account()
    token = await world.issue(account)
    await world.append(
        f"token-{token.token_id}",
        TokenRevoked(token_id=token.token_id, account_id=account, reason="deleted"),
        TokenDeleted(token_id=token.token_id, account_id=account),
    )
    await world.settle()
    verifier = await world.verifier()
    assert await verifier.verify(token.secret, utc_now()) is Rejection.REVOKED


async def test_expiry_is_checked_against_now_without_waiting_for_the_scheduler(world: World) -> None:
    account = await world.account()
    expires = utc_now() + timedelta(minutes=5)
    token = await world.issue(account, expires_at=expires)
    await world.settle()
    verifier = await world.verifier()

    assert isinstance(await verifier.verify(token.secret, expires - timedelta(seconds=1)), Principal)
    # Cached now; no token.expired was written, the clock alone decides.
    assert await verifier.verify(token.secret, expires) is Rejection.EXPIRED
    assert await verifier.verify(token.secret, expires + timedelta(days=1)) is Rejection.EXPIRED
    assert verifier.metrics.loads == 1


async def test_a_token_marked_expired_is_rejected(world: World) -> None:
    account = await world.account()
    expires = utc_now() + timedelta(minutes=5)
    token = await world.issue(account, expires_at=expires)
    await world.append(
        f"token-{token.token_id}",
        TokenExpired(token_id=token.token_id, account_id=account, expires_at=expires),
    )
    await world.settle()
    verifier = await world.verifier()
    assert await verifier.verify(token.secret, utc_now()) is Rejection.EXPIRED


async def test_a_disabled_account_rejects_and_reenabling_accepts_again(world: World) -> None:
    account = await world.account()
    token = await world.issue(account)
    await world.settle()
    verifier = await world.verifier()
    assert isinstance(await verifier.verify(token.secret, utc_now()), Principal)

    await world.append(f"account-{account}", AccountDisabled(account_id=account))
    await world.settle(verifier)
    assert await verifier.verify(token.secret, utc_now()) is Rejection.DISABLED

    await world.append(f"account-{account}", AccountEnabled(account_id=account))
    await world.settle(verifier)
    assert isinstance(await verifier.verify(token.secret, utc_now()), Principal)


async def test_an_account_past_its_lifetime_rejects_at_once_and_a_new_lifetime_accepts(world: World) -> None:
    """At its ``expires_at``, from the cache, before ``account.expired`` is in; the scheduler's
    ``account.expired`` and a renewal by an admin (``account.updated`` then ``account.enabled``)
    invalidate the account's entries like any other change of it."""
    account = await world.account()
    lifetime = utc_now() + timedelta(seconds=0.5)
    renamed = AccountUpdated(account_id=account, name=account, description="", expires_at=lifetime)
    await world.append(f"account-{account}", renamed)
    token = await world.issue(account)
    await world.settle()
    verifier = await world.verifier()
    assert isinstance(await verifier.verify(token.secret, utc_now()), Principal)
    assert await verifier.verify(token.secret, lifetime) is Rejection.DISABLED
    await world.append(f"account-{account}", AccountExpired(account_id=account, expires_at=lifetime))
    await world.settle(verifier)
    assert await verifier.verify(token.secret, utc_now()) is Rejection.DISABLED
    renewed = AccountUpdated(
        account_id=account, name=account, description="", expires_at=lifetime + timedelta(days=1)
    )
    await world.append(f"account-{account}", renewed)
    await world.append(f"account-{account}", AccountEnabled(account_id=account))
    await world.settle(verifier)
    assert isinstance(await verifier.verify(token.secret, lifetime), Principal)


async def test_a_deleted_account_rejects_its_tokens(world: World) -> None:
    account = await world.account()
    token = await world.issue(account)
    # Deliberately without the token.revoked the API writes alongside: the account alone decides.
    await world.append(f"account-{account}", AccountDeleted(account_id=account))
    await world.settle()
    verifier = await world.verifier()
    assert await verifier.verify(token.secret, utc_now()) is Rejection.DISABLED


async def test_rotation_with_a_grace_period(world: World) -> None:
    account = await world.account()
    token = await world.issue(account)
    await world.settle()
    verifier = await world.verifier()
    assert isinstance(await verifier.verify(token.secret, utc_now()), Principal)

    new_secret = generate_secret()
    grace_end = utc_now() + timedelta(hours=1)
    await world.append(
        f"token-{token.token_id}",
        TokenRotated(
            token_id=token.token_id,
            account_id=account,
            secret_hash=secret_hash(new_secret, PEPPER),
            secret_version=2,
            previous_valid_until=grace_end,
        ),
    )
    await world.settle(verifier)

    old = await verifier.verify(token.secret, utc_now())
    assert isinstance(old, Principal) and old.secret_version == 1
    new = await verifier.verify(new_secret, utc_now())
    assert isinstance(new, Principal) and new.secret_version == 2 and new.token_id == token.token_id
    assert await verifier.verify(token.secret, grace_end) is Rejection.ROTATED_OUT
    assert isinstance(await verifier.verify(new_secret, grace_end), Principal)

    await world.append(
        f"token-{token.token_id}",
        TokenSecretRetired(token_id=token.token_id, account_id=account, secret_version=1),
    )
    await world.settle(verifier)
    assert await verifier.verify(token.secret, utc_now()) is Rejection.ROTATED_OUT
    assert isinstance(await verifier.verify(new_secret, utc_now()), Principal)


async def test_rotation_without_a_grace_period_stops_the_old_secret_at_once(world: World) -> None:
    account = await world.account()
    token = await world.issue(account)
    new_secret = generate_secret()
    rotated_at = utc_now()
    await world.append(
        f"token-{token.token_id}",
        TokenRotated(
            token_id=token.token_id,
            account_id=account,
            secret_hash=secret_hash(new_secret, PEPPER),
            secret_version=2,
        ),
        at=rotated_at,
    )
    await world.settle()
    verifier = await world.verifier()
    assert (
        await verifier.verify(token.secret, rotated_at + timedelta(milliseconds=1)) is Rejection.ROTATED_OUT
    )
    assert isinstance(await verifier.verify(new_secret, utc_now()), Principal)


# -- the cache follows the log -----------------------------------------------------------------------


async def test_a_revocation_seen_by_the_tail_invalidates_the_cached_entry(world: World) -> None:
    account = await world.account()
    token = await world.issue(account)
    await world.settle()
    verifier = await world.verifier()
    assert isinstance(await verifier.verify(token.secret, utc_now()), Principal)
    assert verifier.cache_size == 1

    await world.append(
        f"token-{token.token_id}",
        TokenRevoked(token_id=token.token_id, account_id=account, reason="revoked by test"),
    )
    await world.read_model.catch_up()  # as the projection would

    async def rejected() -> bool:
        return await verifier.verify(token.secret, utc_now()) is Rejection.REVOKED

    await eventually(rejected, timeout=0.5)
    assert verifier.metrics.invalidations >= 1


async def test_the_next_verify_after_the_tail_saw_a_revocation_never_accepts(world: World) -> None:
    """Whatever the read model says: once the tail has seen the event, no stale accept."""
    account = await world.account()
    token = await world.issue(account)
    await world.settle()
    verifier = await world.verifier(max_wait=0.1)
    assert isinstance(await verifier.verify(token.secret, utc_now()), Principal)

    result = await world.append(
        f"token-{token.token_id}",
        TokenRevoked(token_id=token.token_id, account_id=account, reason="stale test"),
    )
    assert await verifier.wait_for(result.cursor, 2.0)
    # The read model has NOT applied the revocation: it still says ACTIVE.
    assert await world.pool.fetchval("SELECT state FROM rm_tokens WHERE token_id = $1", token.token_id) == (
        "ACTIVE"
    )
    assert await verifier.verify(token.secret, utc_now()) is Rejection.STALE
    assert verifier.cache_size == 0

    await world.read_model.catch_up()
    assert await verifier.verify(token.secret, utc_now()) is Rejection.REVOKED


async def test_a_stale_read_warns_and_fails_closed(world: World, caplog: pytest.LogCaptureFixture) -> None:
    account = await world.account()
    token = await world.issue(account)
    await world.settle()
    verifier = await world.verifier(max_wait=0.05)
    result = await world.append(
        f"token-{token.token_id}", TokenRenamed(token_id=token.token_id, account_id=account, name="x")
    )
    await verifier.wait_for(result.cursor, 2.0)
    with caplog.at_level(logging.WARNING, logger="services.auth.verifier"):
        assert await verifier.verify(token.secret, utc_now()) is Rejection.STALE
    assert any("fail-closed" in r.getMessage() for r in caplog.records)
    assert token.secret not in caplog.text and token.hash not in caplog.text


async def test_a_verify_waits_briefly_for_the_read_model_to_catch_up(world: World) -> None:
    account = await world.account()
    token = await world.issue(account)
    await world.settle()
    verifier = await world.verifier(max_wait=1.0)
    assert isinstance(await verifier.verify(token.secret, utc_now()), Principal)

    result = await world.append(
        f"token-{token.token_id}",
        TokenRenamed(token_id=token.token_id, account_id=account, name="renamed"),
    )
    await verifier.wait_for(result.cursor, 2.0)

    async def projector_is_a_little_late() -> None:
        await asyncio.sleep(0.05)
        await world.read_model.catch_up()

    catching_up = asyncio.create_task(projector_is_a_little_late())
    principal = await verifier.verify(token.secret, utc_now())
    await catching_up
    assert isinstance(principal, Principal) and principal.token_name == "renamed"
    assert verifier.metrics.stale_waits >= 1


async def test_note_appended_makes_a_local_revocation_effective_before_the_tail_sees_it(world: World) -> None:
    account = await world.account()
    token = await world.issue(account)
    await world.settle()
    # A tail that would take long to notice anything, to show note_appended alone is enough.
    verifier = await world.verifier(tail_poll_interval=30.0, max_wait=0.05)
    world.notifications.forget(verifier._waiter)  # type: ignore[arg-type]
    assert isinstance(await verifier.verify(token.secret, utc_now()), Principal)

    appends = [
        StreamAppend(
            f"token-{token.token_id}",
            [_new(TokenRevoked(token_id=token.token_id, account_id=account, reason="local"))],
            StreamState.ANY,
        )
    ]
    result = await world.store.append_many(appends)
    verifier.note_appended(appends, result)
    assert await verifier.verify(token.secret, utc_now()) is Rejection.STALE  # read model behind
    await world.read_model.catch_up()
    assert await verifier.verify(token.secret, utc_now()) is Rejection.REVOKED


async def test_a_token_created_a_moment_ago_elsewhere_is_found(world: World) -> None:
    await world.settle()
    verifier = await world.verifier(max_wait=1.0)
    account = await world.account()
    token = await world.issue(account)
    await verifier.wait_for(token.cursor, 2.0)  # this node has heard of it, the read model has not

    async def projector_is_a_little_late() -> None:
        await asyncio.sleep(0.05)
        await world.read_model.catch_up()

    catching_up = asyncio.create_task(projector_is_a_little_late())
    assert isinstance(await verifier.verify(token.secret, utc_now()), Principal)
    await catching_up


async def test_an_unknown_answer_is_forgotten_when_the_token_is_issued(world: World) -> None:
    await world.settle()
    verifier = await world.verifier()
    account = await world.account()
    await world.settle(verifier)
    secret = generate_secret()
    assert await verifier.verify(secret, utc_now()) is Rejection.UNKNOWN  # cached as unknown

    # Issue a token with exactly that secret (as if it had been generated on another node).
    token_id = new_id()
    await world.append(
        f"token-{token_id}",
        TokenIssued(
            token_id=token_id,
            account_id=account,
            name="late",
            secret_hash=secret_hash(secret, PEPPER),
            expires_at=utc_now() + timedelta(days=1),
        ),
    )
    await world.settle(verifier)
    assert isinstance(await verifier.verify(secret, utc_now()), Principal)


async def test_role_and_team_changes_reach_cached_principals(world: World) -> None:
    account = await world.account()
    assignment = await world.grant(account, "Admin")
    team_id, _ = await world.team_with_role(account, "Viewer")
    token = await world.issue(account)
    await world.settle()
    verifier = await world.verifier()

    async def roles() -> set[tuple[str, str]]:
        principal = await verifier.verify(token.secret, utc_now())
        assert isinstance(principal, Principal), principal
        return {(r.role_name, r.source) for r in principal.roles}

    assert await roles() == {("Admin", "direct"), ("Viewer", f"team:{team_id}")}

    await world.append(
        f"account-{account}", AccountRoleUnassigned(account_id=account, assignment_id=assignment)
    )
    await world.settle(verifier)
    assert await roles() == {("Viewer", f"team:{team_id}")}

    other_team, _ = await world.team_with_role(account, "Auditor")
    await world.settle(verifier)
    assert await roles() == {("Viewer", f"team:{team_id}"), ("Auditor", f"team:{other_team}")}

    await world.append(f"team-{team_id}", TeamMemberRemoved(team_id=team_id, account_id=account))
    await world.settle(verifier)
    assert await roles() == {("Auditor", f"team:{other_team}")}

    await world.append(f"team-{other_team}", TeamDeleted(team_id=other_team))
    await world.settle(verifier)
    assert await roles() == set()
    assert verifier.metrics.cache_clears >= 1


async def test_an_account_rename_reaches_cached_principals(world: World) -> None:
    account = await world.account("before")
    token = await world.issue(account)
    await world.settle()
    verifier = await world.verifier()
    first = await verifier.verify(token.secret, utc_now())
    assert isinstance(first, Principal) and first.account_name == "before"
    await world.append(f"account-{account}", AccountUpdated(account_id=account, name="after", description=""))
    await world.settle(verifier)
    second = await verifier.verify(token.secret, utc_now())
    assert isinstance(second, Principal) and second.account_name == "after"


async def test_usage_events_do_not_invalidate(world: World) -> None:
    account = await world.account()
    token = await world.issue(account)
    await world.settle()
    verifier = await world.verifier()
    assert isinstance(await verifier.verify(token.secret, utc_now()), Principal)
    await world.append(
        f"token-usage-{token.token_id}",
        TokenUsed(token_id=token.token_id, account_id=account, used_at=utc_now()),
    )
    await world.settle(verifier)
    assert isinstance(await verifier.verify(token.secret, utc_now()), Principal)
    assert verifier.metrics.loads == 1


# -- fail-closed edges -------------------------------------------------------------------------------


async def test_a_verifier_started_ahead_of_the_read_model_does_not_trust_it(world: World) -> None:
    account = await world.account()
    token = await world.issue(account)
    await world.append(
        f"token-{token.token_id}", TokenRevoked(token_id=token.token_id, account_id=account, reason="x")
    )
    await world.read_model.catch_up(upto=token.cursor)  # the read model has the token, not the revocation
    verifier = await world.verifier(max_wait=0.05)
    assert await verifier.verify(token.secret, utc_now()) is Rejection.STALE
    await world.read_model.catch_up()
    assert await verifier.verify(token.secret, utc_now()) is Rejection.REVOKED


async def test_a_projection_without_a_checkpoint_fails_closed(world: World) -> None:
    account = await world.account()
    token = await world.issue(account)
    await world.settle()
    verifier = await world.verifier(projections=[*world.read_model.names, "not_running"], max_wait=0.05)
    assert await verifier.verify(token.secret, utc_now()) is Rejection.STALE


async def test_an_unreachable_database_fails_closed(world: World) -> None:
    account = await world.account()
    token = await world.issue(account)
    await world.settle()
    pool = await database.create_pool(world.dsn, min_size=1, max_size=2)
    verifier = TokenVerifier(pool, world.notifications, PEPPER, projections=world.read_model.names)
    await verifier.start()
    try:
        await pool.close()
        assert await verifier.verify(token.secret, utc_now()) is Rejection.STALE
        assert verifier.metrics.load_errors == 1
    finally:
        await verifier.stop()


async def test_a_silent_tail_stops_the_cache_from_being_trusted(world: World) -> None:
    account = await world.account()
    token = await world.issue(account)
    await world.settle()
    verifier = await world.verifier(tail_poll_interval=30.0, max_tail_silence=0.1)
    world.notifications.forget(verifier._waiter)  # type: ignore[arg-type]
    assert isinstance(await verifier.verify(token.secret, utc_now()), Principal)
    await asyncio.sleep(0.15)
    assert not verifier.tail_is_alive()

    # A revocation the tail will not notice for 30 s; the read model has it.
    await world.append(
        f"token-{token.token_id}", TokenRevoked(token_id=token.token_id, account_id=account, reason="x")
    )
    await world.read_model.catch_up()
    assert await verifier.verify(token.secret, utc_now()) is Rejection.REVOKED


# -- bounds and sharing ------------------------------------------------------------------------------


async def test_the_cache_is_bounded(world: World) -> None:
    account = await world.account()
    tokens = [await world.issue(account, name=f"t{n}") for n in range(6)]
    await world.settle()
    verifier = await world.verifier(max_entries=3, max_unknown_entries=2)
    for token in tokens:
        assert isinstance(await verifier.verify(token.secret, utc_now()), Principal)
    for _ in range(4):
        await verifier.verify(generate_secret(), utc_now())
    assert verifier.cache_size == 5
    assert len(verifier._cache.by_token) == 3
    # The most recent entries are the ones kept.
    before = verifier.metrics.loads
    await verifier.verify(tokens[-1].secret, utc_now())
    assert verifier.metrics.loads == before


async def test_concurrent_misses_share_one_load(world: World) -> None:
    account = await world.account()
    token = await world.issue(account)
    await world.settle()
    verifier = await world.verifier()
    results = await asyncio.gather(*(verifier.verify(token.secret, utc_now()) for _ in range(50)))
    assert all(isinstance(r, Principal) for r in results)
    assert verifier.metrics.loads == 1


async def test_now_must_be_timezone_aware(world: World) -> None:
    verifier = await world.verifier()
    with pytest.raises(ValueError, match="timezone"):
        await verifier.verify(generate_secret(), utc_now().replace(tzinfo=None))


async def test_revocations_reach_another_node_quickly(world: World) -> None:
    """Two verifiers (two nodes) with warm caches: a revocation is rejected on both within 100 ms
    of the read model having it (the tail is woken by NOTIFY)."""
    account = await world.account()
    token = await world.issue(account)
    await world.settle()
    node_a = await world.verifier()
    node_b = await world.verifier()
    for node in (node_a, node_b):
        assert isinstance(await node.verify(token.secret, utc_now()), Principal)

    await world.append(
        f"token-{token.token_id}", TokenRevoked(token_id=token.token_id, account_id=account, reason="x")
    )
    started = asyncio.get_running_loop().time()
    await world.read_model.catch_up()  # the projector, on time

    async def both_reject() -> bool:
        verdicts = [await node.verify(token.secret, utc_now()) for node in (node_a, node_b)]
        return all(isinstance(v, Rejection) for v in verdicts)

    await eventually(both_reject, timeout=0.5)
    assert asyncio.get_running_loop().time() - started < 0.1


def _new(event: Event) -> NewEvent:
    return NewEvent(event=event, metadata=Metadata(occurred_at=utc_now(), actor="system:tests"))


async def test_an_unknown_secret_waits_for_a_notified_event_the_tail_cannot_read_yet(world: World) -> None:
    """The token was committed (and NOTIFY sent) but an older transaction is still open, so no
    gap-safe reader may pass it yet: the verifier waits for its tail instead of answering unknown."""
    await world.settle()
    verifier = await world.verifier(max_wait=2.0)
    account = await world.account()
    await world.settle(verifier)
    blocker = await world.pool.acquire()
    transaction = blocker.transaction()
    await transaction.start()
    await blocker.execute("SELECT pg_current_xact_id()")  # takes a transaction id: readers must wait
    finished: list[bool] = []
    try:
        token = await world.issue(account)
        for _ in range(200):  # the NOTIFY arrives; the tail cannot read past the open transaction
            if verifier._waiter is not None and verifier._waiter.notified >= token.cursor:
                break
            await asyncio.sleep(0.005)
        assert verifier.tail_cursor < token.cursor

        async def finish_then_project() -> None:
            await asyncio.sleep(0.1)
            finished.append(True)
            await transaction.rollback()
            await world.read_model.catch_up()

        releasing = asyncio.create_task(finish_then_project())
        assert isinstance(await verifier.verify(token.secret, utc_now()), Principal)
        await releasing
        assert verifier.metrics.unknown_retries == 1
    finally:
        if not finished:
            await transaction.rollback()
        await world.pool.release(blocker)


async def test_with_the_real_projection_runtime(empty_database: str) -> None:
    """End to end with ``projections.runtime`` (versioned tables behind ``rm_*`` views, its own
    checkpoint rows), on a database of its own: issue, verify at once, revoke, reject at once."""
    from projections.catalogue import ALL_PROJECTIONS
    from projections.runtime import Projections
    from projections.source import CombinedLogSource
    from services.eventstore.tail import LogTail

    dsn = empty_database
    pool = await database.create_pool(dsn, min_size=1, max_size=10)
    notifications = LogNotifications(lambda: database.connect(dsn))
    await notifications.start()
    store = PostgresEventStore(pool)
    projections = Projections(
        pool,
        CombinedLogSource(LogTail(store, notifications.waiter()), store),
        ALL_PROJECTIONS,
        connect=lambda: database.connect(dsn),
    )
    await projections.start()
    verifier = TokenVerifier(pool, notifications, PEPPER)  # projection names from the catalogue
    try:
        assert await projections.wait_until_current(10.0)
        await verifier.start()
        account_id, token_id, secret = new_id(), new_id(), generate_secret()
        metadata = Metadata(occurred_at=utc_now(), actor="system:tests")
        await store.append(
            f"account-{account_id}",
            [NewEvent(event=AccountCreated(account_id=account_id, name="rt"), metadata=metadata)],
            StreamState.NO_STREAM,
        )
        issued = await store.append(
            f"token-{token_id}",
            [
                NewEvent(
                    event=TokenIssued(
                        token_id=token_id,
                        account_id=account_id,
                        name="rt",
                        secret_hash=secret_hash(secret, PEPPER),
                        expires_at=utc_now() + timedelta(days=1),
                    ),
                    metadata=metadata,
                )
            ],
            StreamState.NO_STREAM,
        )
        # Right after the append, without waiting for anything: found (the verifier waits briefly).
        principal = await verifier.verify(secret, utc_now())
        assert isinstance(principal, Principal) and principal.account_name == "rt"
        assert issued

        await store.append(
            f"token-{token_id}",
            [_new(TokenRevoked(token_id=token_id, account_id=account_id, reason="e2e"))],
            StreamState.ANY,
        )
        started = asyncio.get_running_loop().time()

        async def rejected() -> bool:
            return isinstance(await verifier.verify(secret, utc_now()), Rejection)

        await eventually(rejected, timeout=1.0)
        assert asyncio.get_running_loop().time() - started < 0.1
        assert await projections.wait_until_current(5.0)
        assert await verifier.verify(secret, utc_now()) is Rejection.REVOKED
    finally:
        await verifier.stop()
        await projections.stop()
        await notifications.stop()
        await pool.close()
