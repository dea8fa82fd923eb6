"""System accounts: create, update and delete, given events, when the command, then the events it
appended (and the claims it moved) or the refusal, which appends nothing; under an idempotency key
a retry appends nothing more and answers as the first time, or ``Superseded`` when what it made is
gone. An account created with roles and teams gets them in the append that creates it, under the
rules of assigning each role and adding a member, or none of it."""

from collections.abc import Sequence

import msgspec

from events import Metadata, NewEvent
from events.accounts import (
    AccountCreated,
    AccountDeleted,
    AccountDisabled,
    AccountEnabled,
    AccountRoleAssigned,
    AccountUpdated,
)
from events.teams import TeamDeleted, TeamMemberAdded, TeamMemberRemoved
from events.tokens import TokenIssued, TokenRevoked
from services.accounts.commands import CreateAccount, DeleteAccount, UpdateAccount
from services.auth.principal import Principal
from services.authorization import SYSTEM, MissingRight
from services.commands import Conflict, Forbidden, Invalid, NotFound, Superseded
from services.memory_store import MemoryEventStore
from services.ports import AppendResult, Claim, StreamAppend, StreamState
from services.roles.assignment import Role
from tests.handlers.world import (
    ADMIN,
    ORG,
    T0,
    World,
    account_created,
    caller,
    grant,
    role_assigned,
    team_created,
    token_issued,
)

NOBODY = "00000000-0000-4000-8000-000000000000"
CONTROL_PLANE = "6f1a1c7e-2a4b-4f3e-9d1e-1a2b3c4d5e01"


def _account(account_id: str) -> str:
    return f"account-{account_id}"


# -- CreateAccount ------------------------------------------------------------------------------


async def test_create_account_records_the_account_and_claims_its_name(world: World) -> None:
    outcome = await world.when(
        CreateAccount(name="ci-bot", description="builds", rotation_period_seconds=3600)
    )
    account = outcome.state
    assert world.then() == [
        (
            _account(account.account_id),
            AccountCreated(
                account_id=account.account_id,
                name="ci-bot",
                description="builds",
                konnect_managed=False,
                rotation_period_seconds=3600,
            ),
        )
    ]
    assert (account.name, account.live, account.version, account.created_at) == ("ci-bot", True, 1, T0)
    assert await world.claims() == {"account-name:ci-bot": _account(account.account_id)}
    assert outcome.cursor == world.then_recorded()[-1].cursor


async def test_create_account_records_who_asked_when_and_under_which_key(world: World) -> None:
    await world.when(CreateAccount(name="ci-bot", description=""))
    (recorded,) = world.then_recorded()
    assert recorded.metadata == Metadata(
        occurred_at=T0, actor=ADMIN.account_id, actor_token_id=ADMIN.token_id, correlation_id="correlation"
    )
    keyed = await world.when(CreateAccount(name="ci-bot-2", description=""), key="k")
    (recorded,) = world.then_recorded()
    ctx = world.context(ADMIN, "k")
    assert keyed.state.account_id == ctx.new_id("account")
    assert recorded.event_id == ctx.event_id(_account(keyed.state.account_id), 0)


async def test_only_tokenledger_makes_a_konnect_managed_account(world: World) -> None:
    await world.then_raises(Invalid, CreateAccount(name="admin", description="", konnect_managed=True))
    outcome = await world.when(CreateAccount(name="admin", description="", konnect_managed=True), SYSTEM)
    assert outcome.state.konnect_managed
    ((_, created),) = world.then()
    assert isinstance(created, AccountCreated) and created.konnect_managed


async def test_create_account_refuses_a_taken_name(world: World) -> None:
    await world.given(account_created("ci-bot"))
    await world.then_raises(Conflict, CreateAccount(name="ci-bot", description=""), match="already exists")


async def test_create_account_refuses_a_bad_name_or_period(world: World) -> None:
    await world.then_raises(Invalid, CreateAccount(name="ci\u200bbot", description=""), match="name")
    await world.then_raises(Invalid, CreateAccount(name=" ", description=""), match="name")
    await world.then_raises(
        Invalid,
        CreateAccount(name="ci-bot", description="", rotation_period_seconds=0),
        match="rotation_period_seconds",
    )


async def test_a_retried_create_account_appends_nothing_and_answers_as_before(world: World) -> None:
    command = CreateAccount(name="ci-bot", description="")
    first = await world.when(command, key="k")
    retry = await world.when(command, key="k")
    assert world.then() == []
    assert retry == first


async def test_a_retried_create_account_after_its_deletion_is_superseded(world: World) -> None:
    command = CreateAccount(name="ci-bot", description="")
    first = await world.when(command, key="k")
    await world.when(DeleteAccount(account_id=first.state.account_id))
    await world.then_raises(Superseded, command, key="k")


# -- UpdateAccount ------------------------------------------------------------------------------


async def test_update_account_records_the_change_then_the_disabling(world: World) -> None:
    created = account_created("ci-bot", description="old")
    await world.given(created)
    stream = _account(created.account_id)
    outcome = await world.when(
        UpdateAccount(
            account_id=created.account_id,
            name="ci-bot-2",
            description="new",
            enabled=False,
            rotation_period_seconds=60,
        )
    )
    assert world.then() == [
        (
            stream,
            AccountUpdated(
                account_id=created.account_id, name="ci-bot-2", description="new", rotation_period_seconds=60
            ),
        ),
        (stream, AccountDisabled(account_id=created.account_id)),
    ]
    assert (outcome.state.name, outcome.state.enabled, outcome.state.version) == ("ci-bot-2", False, 3)
    assert await world.claims() == {"account-name:ci-bot-2": stream}


async def test_update_account_enables_and_clears_the_period_with_zero(world: World) -> None:
    created = account_created("ci-bot", rotation_period_seconds=60)
    await world.given(created, AccountDisabled(account_id=created.account_id))
    stream = _account(created.account_id)
    await world.when(UpdateAccount(account_id=created.account_id, enabled=True, rotation_period_seconds=0))
    assert world.then() == [
        (
            stream,
            AccountUpdated(
                account_id=created.account_id, name="ci-bot", description="", rotation_period_seconds=None
            ),
        ),
        (stream, AccountEnabled(account_id=created.account_id)),
    ]


async def test_an_update_that_changes_nothing_appends_nothing(world: World) -> None:
    created = account_created("ci-bot", description="same")
    await world.given(created)
    outcome = await world.when(
        UpdateAccount(account_id=created.account_id, name="ci-bot", description="same", enabled=True)
    )
    assert world.then() == []
    assert outcome.cursor is None


async def test_update_account_refuses_a_missing_deleted_or_managed_account(world: World) -> None:
    gone, managed = account_created(), account_created(konnect_managed=True)
    await world.given(gone, AccountDeleted(account_id=gone.account_id), managed)
    await world.then_raises(NotFound, UpdateAccount(account_id="nobody", description="x"))
    await world.then_raises(NotFound, UpdateAccount(account_id=gone.account_id, description="x"))
    await world.then_raises(
        Forbidden, UpdateAccount(account_id=managed.account_id, description="x"), match="konnect-managed"
    )


async def test_update_account_refuses_a_taken_name_or_bad_values(world: World) -> None:
    mine, theirs = account_created("mine"), account_created("theirs")
    await world.given(mine, theirs)
    await world.then_raises(Conflict, UpdateAccount(account_id=mine.account_id, name="theirs"))
    await world.then_raises(Invalid, UpdateAccount(account_id=mine.account_id, name="a\u0000b"))
    await world.then_raises(Invalid, UpdateAccount(account_id=mine.account_id, rotation_period_seconds=-1))


async def test_a_retried_update_account_appends_nothing_and_answers_as_before(world: World) -> None:
    created = account_created("ci-bot")
    await world.given(created)
    command = UpdateAccount(account_id=created.account_id, description="first")
    first = await world.when(command, key="k")
    await world.when(UpdateAccount(account_id=created.account_id, description="second"))
    retry = await world.when(command, key="k")
    assert world.then() == []
    assert retry == first
    assert retry.state.description == "first"


async def test_a_retried_update_account_after_its_deletion_is_superseded(world: World) -> None:
    created = account_created("ci-bot")
    await world.given(created)
    command = UpdateAccount(account_id=created.account_id, description="first")
    await world.when(command, key="k")
    await world.when(DeleteAccount(account_id=created.account_id))
    await world.then_raises(Superseded, command, key="k")


# -- DeleteAccount ------------------------------------------------------------------------------


async def test_delete_account_revokes_its_live_tokens_and_ends_its_memberships(world: World) -> None:
    created = account_created("ci-bot")
    live, revoked = token_issued(created.account_id), token_issued(created.account_id)
    team = team_created()
    await world.given(
        created,
        live,
        revoked,
        TokenRevoked(token_id=revoked.token_id, account_id=created.account_id, reason="revoked"),
        team,
        TeamMemberAdded(team_id=team.team_id, account_id=created.account_id),
    )
    outcome = await world.when(DeleteAccount(account_id=created.account_id))
    appended = world.then()
    assert appended[0] == (_account(created.account_id), AccountDeleted(account_id=created.account_id))
    assert sorted(appended[1:], key=lambda pair: pair[0]) == sorted(
        [
            (
                f"token-{live.token_id}",
                TokenRevoked(token_id=live.token_id, account_id=created.account_id, reason="account_deleted"),
            ),
            (f"team-{team.team_id}", TeamMemberRemoved(team_id=team.team_id, account_id=created.account_id)),
        ],
        key=lambda pair: pair[0],
    )
    assert not outcome.state.live
    assert await world.claims() == {}


class _IssuesDuringTheDeletion(MemoryEventStore):
    """A store in which a token of the account commits while the account's deletion is decided
    (after the deletion read the cascade, before it appended)."""

    def __init__(self, late: TokenIssued) -> None:
        super().__init__()
        self._late: TokenIssued | None = late

    async def append_many(
        self, appends: Sequence[StreamAppend], claims: Sequence[Claim] = (), releases: Sequence[str] = ()
    ) -> AppendResult:
        deleting = any(isinstance(new.event, AccountDeleted) for append in appends for new in append.events)
        if deleting and self._late is not None:
            late, self._late = self._late, None
            stream = f"token-{late.token_id}"
            claim = Claim(f"token-name:{late.account_id}:{late.name}", stream)
            issued = NewEvent(event=late, metadata=Metadata(occurred_at=T0))
            await super().append_many([StreamAppend(stream, [issued], StreamState.NO_STREAM)], [claim])
        return await super().append_many(appends, claims, releases)


async def test_delete_account_revokes_a_token_issued_while_it_was_decided(world: World) -> None:
    """The sweep after the deletion revokes it, and the outcome's cursor covers that revocation
    (read-your-writes: the answer leaves only once the verifier has seen it)."""
    created = account_created("ci-bot")
    late = token_issued(created.account_id)
    world = World(store=_IssuesDuringTheDeletion(late))
    await world.given(created)
    outcome = await world.when(DeleteAccount(account_id=created.account_id))
    assert world.then() == [
        (f"token-{late.token_id}", late),
        (_account(created.account_id), AccountDeleted(account_id=created.account_id)),
        (
            f"token-{late.token_id}",
            TokenRevoked(token_id=late.token_id, account_id=created.account_id, reason="account_deleted"),
        ),
    ]
    assert outcome.cursor == world.then_recorded()[-1].cursor
    assert await world.claims() == {}


async def test_delete_account_refuses_a_missing_or_managed_account(world: World) -> None:
    gone, managed = account_created(), account_created(konnect_managed=True)
    await world.given(gone, AccountDeleted(account_id=gone.account_id), managed)
    await world.then_raises(NotFound, DeleteAccount(account_id="nobody"))
    await world.then_raises(NotFound, DeleteAccount(account_id=gone.account_id))
    await world.then_raises(Forbidden, DeleteAccount(account_id=managed.account_id), match="konnect-managed")


async def test_a_retried_delete_account_appends_nothing_and_answers_as_before(world: World) -> None:
    """Its cursor too is the original's: the end of the append that held the cascade."""
    created = account_created("ci-bot")
    await world.given(created, token_issued(created.account_id))
    command = DeleteAccount(account_id=created.account_id)
    first = await world.when(command, key="k")
    retry = await world.when(command, key="k")
    assert world.then() == []
    assert retry == first


# -- CreateAccount with roles and teams -----------------------------------------------------------

EVERY_ROLE = caller("Admin", "Viewer", "Auditor", "Introspector")
"""A caller holding every Identity role (it may grant any of them)."""


def _role(
    role_name: str, entity_type_name: str = "Identity", entity_id: str = ORG, region: str = "*"
) -> Role:
    return Role(
        role_name=role_name, entity_id=entity_id, entity_type_name=entity_type_name, entity_region=region
    )


async def test_create_account_with_roles_and_teams_appends_them_all_at_once(world: World) -> None:
    ops, empty = team_created("ops"), team_created("empty")
    await world.given(ops, role_assigned(ops, "Viewer"), empty)
    command = CreateAccount(
        name="ci-bot",
        description="",
        assigned_roles=(_role("Viewer"), _role("Admin", "Control Planes", CONTROL_PLANE, "eu")),
        team_ids=(ops.team_id, empty.team_id),
    )
    admin_of_control_planes = caller("Viewer", grant("Admin", "Control Planes", "*", "*"))
    outcome = await world.when(command, caller("Admin", *admin_of_control_planes.roles))
    account = outcome.state
    stream = _account(account.account_id)
    viewer, deployer = account.roles.values()
    assert world.then() == [
        (stream, AccountCreated(account_id=account.account_id, name="ci-bot", description="")),
        (stream, AccountRoleAssigned(account_id=account.account_id, **msgspec.structs.asdict(viewer))),
        (stream, AccountRoleAssigned(account_id=account.account_id, **msgspec.structs.asdict(deployer))),
        (f"team-{ops.team_id}", TeamMemberAdded(team_id=ops.team_id, account_id=account.account_id)),
        (f"team-{empty.team_id}", TeamMemberAdded(team_id=empty.team_id, account_id=account.account_id)),
    ]
    assert (viewer.role_name, deployer.role_name, deployer.entity_region) == ("Viewer", "Admin", "eu")
    assert len({recorded.tx_id for recorded in world.then_recorded()}) == 1, "one append"
    assert outcome.cursor == world.then_recorded()[-1].cursor
    assert await world.claims() == {
        "account-name:ci-bot": stream,
        f"team-member:{account.account_id}:{ops.team_id}": f"team-{ops.team_id}",
        f"team-member:{account.account_id}:{empty.team_id}": f"team-{empty.team_id}",
    }
    holdings = await world.deps.directory.holdings(account.account_id)
    assert sorted(g.role_name for g in holdings.grants) == ["Admin", "Viewer", "Viewer"]


async def test_create_account_with_roles_and_teams_refuses_any_part_appending_nothing(world: World) -> None:
    auditors, gone = team_created("auditors"), team_created("gone")
    await world.given(
        account_created("taken"),
        auditors,
        role_assigned(auditors, "Auditor"),
        gone,
        TeamDeleted(team_id=gone.team_id),
    )
    ops = team_created("ops")
    await world.given(ops)

    def create(
        name: str = "ci-bot", roles: tuple[Role, ...] = (), teams: tuple[str, ...] = ()
    ) -> CreateAccount:
        return CreateAccount(name=name, description="", assigned_roles=roles, team_ids=teams)

    for command, field in [
        (create(roles=(_role("Viewer"), _role("Emperor"))), "assigned_roles[1].role_name"),
        (create(roles=(_role("Viewer", "Planets"),)), "assigned_roles[0].entity_type_name"),
        (create(roles=(_role("Viewer"), _role("Viewer"))), "assigned_roles[1]"),
        (create(roles=(_role("Viewer"), _role("Viewer", entity_id=NOBODY))), "assigned_roles[1].entity_id"),
        (create(teams=(ops.team_id, NOBODY)), "team_ids[1]"),
        (create(teams=(gone.team_id,)), "team_ids[0]"),
        (create(teams=(ops.team_id, ops.team_id)), "team_ids[1]"),
    ]:
        refused = await world.then_raises(Invalid, command, EVERY_ROLE)
        assert isinstance(refused, Invalid) and refused.field == field, (command, refused)
    await world.then_raises(
        Forbidden, create(roles=(_role("Auditor"),)), ADMIN, match="the Identity role Auditor"
    )
    await world.then_raises(
        Forbidden,
        create(roles=(_role("Admin", "Control Planes", CONTROL_PLANE),)),
        ADMIN,
        match="Control Planes",
    )
    await world.then_raises(Forbidden, create(teams=(ops.team_id, auditors.team_id)), ADMIN, match="Auditor")
    await world.then_raises(
        Conflict, create("taken", (_role("Viewer"),), (ops.team_id,)), EVERY_ROLE, match="already exists"
    )
    managed = CreateAccount(name="admin", description="", konnect_managed=True, team_ids=(ops.team_id,))
    await world.then_raises(Invalid, managed, SYSTEM, match="never joins a team")


async def test_create_account_with_roles_or_teams_needs_their_rights_too(world: World) -> None:
    team = team_created()
    await world.given(team)
    viewer_of_control_planes = grant("Viewer", "Control Planes", "*", "*")

    def admin_scoped(*scopes: str) -> Principal:
        return caller("Admin", viewer_of_control_planes, scopes=scopes)

    with_roles = CreateAccount(
        name="a", description="", assigned_roles=(_role("Viewer", "Control Planes", CONTROL_PLANE),)
    )
    with_teams = CreateAccount(name="b", description="", team_ids=(team.team_id,))
    await world.then_raises(MissingRight, with_roles, admin_scoped("accounts:write"), match="roles:write")
    await world.then_raises(MissingRight, with_teams, admin_scoped("accounts:write"), match="teams:write")
    await world.then_raises(MissingRight, with_teams, admin_scoped("accounts:write", "roles:write"))
    await world.when(with_roles, admin_scoped("accounts:write", "roles:write"))
    await world.when(with_teams, admin_scoped("accounts:write", "teams:write"))
    await world.when(CreateAccount(name="c", description=""), admin_scoped("accounts:write"))
    assert len(world.then()) == 1


async def test_a_retried_create_account_with_teams_answers_as_before_to_the_end_of_its_append(
    world: World,
) -> None:
    team = team_created()
    await world.given(team)
    command = CreateAccount(
        name="ci-bot", description="", assigned_roles=(_role("Admin"),), team_ids=(team.team_id,)
    )
    first = await world.when(command, key="k")
    assert first.cursor == world.then_recorded()[-1].cursor
    retry = await world.when(command, key="k")
    assert world.then() == []
    assert retry == first
    # A retry is decided again up to the cover rule: a token of the same account that could no
    # longer grant Admin is refused, not answered.
    narrowed = caller("Admin", account_id=ADMIN.account_id, scopes=["identity:write"])
    refused = await world.then_raises(Forbidden, command, narrowed, key="k", match="the Identity role Admin")
    assert not isinstance(refused, MissingRight | Superseded)
