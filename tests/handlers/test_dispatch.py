"""The dispatcher, the one door to the command side: a caller needs the write right of the resource
family a command changes (``RIGHTS``: ``accounts:write``, ``tokens:write``, ``roles:write``,
``teams:write``, all four in the alias ``identity:write``), checked before anything is read, decided
or replayed, and refused as a right its token's scopes exclude or one its account lacks; the
scheduler's commands
are tokenledger's own, refused to every caller however privileged and run for ``SYSTEM``; a command
of no known type is a ``TypeError``. Nothing a refusal touches is written."""

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from events import FrozenMap
from services.accounts.commands import (
    CreateAccount,
    CreateFederatedCredential,
    DeleteAccount,
    DeleteFederatedCredential,
    ExpireAccount,
    UpdateAccount,
    UpdateFederatedCredential,
    WarnAccountExpiring,
)
from services.authorization import SYSTEM, WRITE_RIGHTS, FederatedActor, MissingRight
from services.commands import Forbidden
from services.dispatch import FEDERATED_COMMANDS, HANDLERS, RIGHTS, SYSTEM_COMMANDS, Dispatcher
from services.federation import Definition
from services.role_holders import AccountHolder, AssignRole, TeamHolder, UnassignRole
from services.teams.commands import AddMember, CreateTeam, DeleteTeam, RemoveMember, UpdateTeam
from services.tokens.commands import (
    DeleteToken,
    ExchangeFederatedToken,
    ExpireToken,
    FlagTokenRotationDue,
    IssueToken,
    RecordTokenUsage,
    RenameToken,
    RetireTokenSecret,
    RevokeLeakedToken,
    RevokeToken,
    RotateToken,
    WarnTokenExpiring,
)
from tests.handlers.world import ADMIN, ORG, T0, World, account_created, caller, grant

NOBODY = "00000000-0000-4000-8000-000000000000"
"""An id no stream has: a command that got past the door would be refused as not found."""

SAMPLES: dict[type, object] = {
    command.__class__: command
    for command in (
        CreateAccount(name="ci-bot", description=""),
        UpdateAccount(account_id=NOBODY, description="x"),
        DeleteAccount(account_id=NOBODY),
        ExpireAccount(account_id=NOBODY),
        WarnAccountExpiring(account_id=NOBODY, leads=(timedelta(days=1),)),
        CreateFederatedCredential(
            account_id=NOBODY, definition=Definition(name="ci", issuer="https://ci.example", subject="x")
        ),
        UpdateFederatedCredential(account_id=NOBODY, credential_id=NOBODY, changes=FrozenMap({"name": "x"})),
        DeleteFederatedCredential(account_id=NOBODY, credential_id=NOBODY),
        CreateTeam(name="ops"),
        UpdateTeam(team_id=NOBODY, name="x"),
        DeleteTeam(team_id=NOBODY),
        AddMember(team_id=NOBODY, account_id=NOBODY),
        RemoveMember(team_id=NOBODY, account_id=NOBODY),
        AssignRole(
            holder=AccountHolder(account_id=NOBODY),
            role_name="Viewer",
            entity_id=ORG,
            entity_type_name="Identity",
            entity_region="*",
        ),
        UnassignRole(holder=TeamHolder(team_id=NOBODY), assignment_id=NOBODY),
        IssueToken(account_id=NOBODY, name="deploy", expires_at=T0 + timedelta(days=1)),
        RenameToken(account_id=NOBODY, token_id=NOBODY, name="x"),
        RevokeToken(account_id=NOBODY, token_id=NOBODY),
        RotateToken(account_id=NOBODY, token_id=NOBODY),
        DeleteToken(account_id=NOBODY, token_id=NOBODY),
        ExpireToken(token_id=NOBODY),
        WarnTokenExpiring(token_id=NOBODY, leads=(timedelta(days=1),)),
        FlagTokenRotationDue(token_id=NOBODY, deployment_period=timedelta(days=1)),
        RetireTokenSecret(token_id=NOBODY, secret_version=1),
        RecordTokenUsage(),
        RevokeLeakedToken(token_id=NOBODY, location="https://scanner.example/finding/1"),
        ExchangeFederatedToken(
            account_id=NOBODY,
            credential_id=NOBODY,
            issuer="https://ci.example",
            jti="j",
            id_token_expires_at=datetime(2026, 1, 1, tzinfo=UTC),
            claims=FrozenMap({"sub": "s"}),
        ),
    )
}
"""One command of every type the dispatcher knows."""

CALLER_COMMANDS = [kind for kind in HANDLERS if kind not in SYSTEM_COMMANDS | FEDERATED_COMMANDS]
WITHOUT_WRITE = {
    "no roles": caller(),
    "Viewer": caller("Viewer"),
    "every Identity role, scoped to read": caller(
        "Admin", "Viewer", "Auditor", "Introspector", scopes=["identity:read"]
    ),
    "Admin scoped to audit and introspection": caller("Admin", scopes=["audit:read", "tokens:introspect"]),
    "Admin scoped to nothing": caller("Admin", scopes=[]),
    "Admin of another organization": caller(grant("Admin", entity_id="another-organization")),
    "Admin of every Control Plane": caller(grant("Admin", "Control Planes", "*", "*")),
}


def _named(kind: object) -> str:
    return getattr(kind, "__name__", repr(kind))


def test_every_command_has_a_sample() -> None:
    assert set(SAMPLES) == set(HANDLERS)


def test_every_callers_command_needs_a_write_right_and_no_system_command_has_one() -> None:
    assert set(RIGHTS) == set(CALLER_COMMANDS)
    assert set(RIGHTS.values()) == WRITE_RIGHTS


@pytest.mark.parametrize("kind", CALLER_COMMANDS, ids=_named)
@pytest.mark.parametrize("who", WITHOUT_WRITE)
async def test_a_caller_without_write_is_refused_every_command(world: World, kind: type, who: str) -> None:
    """Refused as lacking the right, before the handler could find that nothing it names exists."""
    await world.then_raises(MissingRight, SAMPLES[kind], WITHOUT_WRITE[who], match=RIGHTS[kind].value)


@pytest.mark.parametrize("kind", CALLER_COMMANDS, ids=_named)
async def test_a_caller_with_write_is_admitted_to_every_command(world: World, kind: type) -> None:
    world.dispatcher.authorize(kind, caller("Viewer", "Admin", scopes=["identity:write"]))
    world.dispatcher.authorize(kind, caller("Admin", scopes=[RIGHTS[kind].value]))


@pytest.mark.parametrize("kind", CALLER_COMMANDS, ids=_named)
async def test_the_write_right_of_one_family_admits_none_of_the_others(world: World, kind: type) -> None:
    for right in sorted(WRITE_RIGHTS - {RIGHTS[kind]}):
        narrowed = caller("Admin", scopes=[right.value, "identity:read"])
        refused = await world.then_raises(MissingRight, SAMPLES[kind], narrowed, match=RIGHTS[kind].value)
        assert isinstance(refused, MissingRight) and refused.out_of_scope


@pytest.mark.parametrize("who", WITHOUT_WRITE)
async def test_a_refusal_says_whether_the_scopes_exclude_the_right_or_the_account_lacks_it(
    world: World, who: str
) -> None:
    """Only the Admin holds a write right: its scoped tokens are out of scope; the others lack it."""
    actor = WITHOUT_WRITE[who]
    refused = await world.then_raises(MissingRight, SAMPLES[CreateTeam], actor, match="teams:write")
    assert isinstance(refused, MissingRight)
    account_holds_it = who.startswith("Admin scoped") or who.startswith("every Identity role")
    assert refused.out_of_scope == account_holds_it
    assert ("scopes exclude it" if account_holds_it else "does not hold it") in str(refused)


@pytest.mark.parametrize("kind", sorted(SYSTEM_COMMANDS, key=_named), ids=_named)
@pytest.mark.parametrize("who", ["Admin", "the organization admin", "no write"])
async def test_the_schedulers_commands_are_refused_to_every_caller(
    world: World, kind: type, who: str
) -> None:
    actor = {
        "Admin": ADMIN,
        "the organization admin": caller(
            "Admin", "Viewer", "Auditor", "Introspector", organization_admin=True
        ),
        "no write": caller("Viewer"),
    }[who]
    refused = await world.then_raises(Forbidden, SAMPLES[kind], actor, match="tokenledger's own")
    assert not isinstance(refused, MissingRight)


@pytest.mark.parametrize("who", ["Admin", "the organization admin"])
async def test_the_token_exchange_is_refused_to_every_caller(world: World, who: str) -> None:
    actor = ADMIN if who == "Admin" else caller("Admin", organization_admin=True)
    await world.then_raises(Forbidden, SAMPLES[ExchangeFederatedToken], actor, match="federated credential")


@pytest.mark.parametrize("kind", CALLER_COMMANDS, ids=_named)
async def test_a_federated_actor_may_send_nothing_but_the_exchange(world: World, kind: type) -> None:
    actor = FederatedActor(account_id=NOBODY, credential_id=NOBODY, issuer="https://ci.example", subject="s")
    await world.then_raises(Forbidden, SAMPLES[kind], actor, match="federated credential")


@pytest.mark.parametrize("kind", sorted(SYSTEM_COMMANDS, key=_named), ids=_named)
async def test_the_schedulers_commands_run_for_tokenledger(world: World, kind: type) -> None:
    outcome = await world.when(SAMPLES[kind], SYSTEM)
    assert (world.then(), outcome.cursor) == ([], None)


async def test_tokenledger_itself_is_never_checked(world: World) -> None:
    outcome = await world.when(CreateAccount(name="admin", description="", konnect_managed=True), SYSTEM)
    assert outcome.state.konnect_managed


class NotACommand(msgspec.Struct, frozen=True):
    account_id: str


@pytest.mark.parametrize("actor", [ADMIN, SYSTEM], ids=["a caller", "tokenledger"])
async def test_an_unknown_command_type_is_a_type_error(world: World, actor: object) -> None:
    await world.then_raises(TypeError, NotACommand(account_id=NOBODY), actor, match="NotACommand")  # type: ignore[arg-type]
    await world.then_raises(TypeError, {"account_id": NOBODY}, actor, match="dict")  # type: ignore[arg-type]


async def test_a_retry_by_a_caller_that_lost_the_right_is_refused_not_replayed(world: World) -> None:
    account = account_created()
    await world.given(account)
    command = UpdateAccount(account_id=account.account_id, description="x")
    await world.when(command, ADMIN, key="k")
    read_only = caller("Admin", account_id=ADMIN.account_id, scopes=["identity:read"])
    await world.then_raises(MissingRight, command, read_only, key="k")


async def test_a_command_given_a_handler_but_no_right_is_refused_to_every_caller(world: World) -> None:
    """The message map and the rights are separate: a handler without a right fails closed."""
    rights = {kind: right for kind, right in RIGHTS.items() if kind is not CreateTeam}
    dispatcher = Dispatcher(world.deps, rights=rights)
    with pytest.raises(Forbidden, match="tokenledger's own"):
        dispatcher.authorize(CreateTeam, ADMIN)
    dispatcher.authorize(CreateTeam, SYSTEM)
