"""Federated credentials of a system account: create, update and delete, given events, when the
command, then the events or the refusal (which appends nothing); the escalation rule of issuing a
token of the account; retries answered as the first time."""

import pytest

from events import FrozenMap
from events.accounts import AccountDeleted
from events.federation import (
    ClaimCondition,
    FederatedCredentialCreated,
    FederatedCredentialDeleted,
    FederatedCredentialUpdated,
)
from services import federation
from services.accounts.commands import (
    CreateFederatedCredential,
    DeleteFederatedCredential,
    UpdateFederatedCredential,
)
from services.authorization import MissingRight
from services.commands import Conflict, Forbidden, Invalid, NotFound, Superseded
from services.federation import Definition
from tests.handlers.world import ADMIN, World, account_created, caller, role_assigned

ISSUER = "https://issuer.example"


def _definition(**fields: object) -> Definition:
    values: dict[str, object] = {"name": "deploy", "issuer": ISSUER, "subject": "repo:acme/deploy:*"}
    return Definition(**{**values, **fields})  # type: ignore[arg-type]


def _created(account_id: str, credential_id: str = "c1", **fields: object) -> FederatedCredentialCreated:
    values: dict[str, object] = {
        "name": "deploy",
        "issuer": ISSUER,
        "audiences": ("urn:tokenledger:local",),
        "subject": "repo:acme/deploy:*",
        "max_token_lifetime_seconds": 3600,
        **fields,
    }
    return FederatedCredentialCreated(account_id=account_id, credential_id=credential_id, **values)  # type: ignore[arg-type]


async def test_create_records_the_credential_with_the_defaults(world: World) -> None:
    account = account_created()
    await world.given(account)
    outcome = await world.when(
        CreateFederatedCredential(account_id=account.account_id, definition=_definition())
    )
    credential = outcome.state
    assert world.then() == [
        (f"account-{account.account_id}", _created(account.account_id, credential.credential_id))
    ]
    assert credential.audiences == ("urn:tokenledger:local",)
    assert credential.max_token_lifetime_seconds == 3600


async def test_the_github_actions_preset_requires_and_matches_the_owner_id(world: World) -> None:
    account = account_created()
    await world.given(account)
    definition = federation.github_actions("gha", "acme/deploy", "123", None)
    outcome = await world.when(
        CreateFederatedCredential(account_id=account.account_id, definition=definition)
    )
    credential = outcome.state
    assert credential.issuer == federation.GITHUB_ISSUER
    assert credential.subject == "repo:acme/deploy:*"
    assert credential.required_claims == ("repository", "repository_owner_id")
    assert credential.preset == "github-actions"
    claims = {
        "sub": "repo:acme/deploy:ref:refs/heads/main",
        "repository": "acme/deploy",
        "repository_owner_id": "123",
    }
    assert federation.mismatch(credential, claims) is None
    assert federation.mismatch(credential, {**claims, "repository_owner_id": "999"}) == "condition_false"
    with pytest.raises(Invalid, match="repository_owner_id"):
        federation.github_actions("gha", "acme/deploy", "acme", None)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"issuer": "http://issuer.example"}, "issuer"),
        ({"issuer": "https://issuer.example/?q=1"}, "issuer"),
        ({"issuer": "https:///path"}, "issuer"),
        ({"subject": ""}, "subject"),
        ({"audiences": ()}, "audiences"),
        ({"max_token_lifetime_seconds": 7200}, "max_token_lifetime"),
        ({"max_token_lifetime_seconds": 10}, "max_token_lifetime"),
        (
            {"conditions": (ClaimCondition(claim="aud", operator="equals", values=("x",)),)},
            "conditions[0].claim",
        ),
        (
            {"conditions": (ClaimCondition(claim="env", operator="equals", values=("a", "b")),)},
            "conditions[0].values",
        ),
        (
            {"conditions": (ClaimCondition(claim="env", operator="one_of", values=()),)},
            "conditions[0].values",
        ),
        ({"required_claims": ("bad claim",)}, "required_claims[0]"),
        ({"name": "a\u200bb"}, "name"),
    ],
)
async def test_a_credential_breaking_a_rule_is_refused(
    world: World, fields: dict[str, object], field: str
) -> None:
    account = account_created()
    await world.given(account)
    command = CreateFederatedCredential(account_id=account.account_id, definition=_definition(**fields))
    refused = await world.then_raises(Invalid, command)
    assert isinstance(refused, Invalid) and refused.field == field


async def test_two_credentials_of_an_account_cannot_share_a_name(world: World) -> None:
    account = account_created()
    await world.given(account, _created(account.account_id))
    command = CreateFederatedCredential(account_id=account.account_id, definition=_definition())
    await world.then_raises(Conflict, command)


async def test_no_credential_for_an_account_that_is_not_live(world: World) -> None:
    account = account_created()
    await world.given(account, AccountDeleted(account_id=account.account_id))
    command = CreateFederatedCredential(account_id=account.account_id, definition=_definition())
    await world.then_raises(NotFound, command)


async def test_creating_one_needs_covering_the_account_as_issuing_a_token_does(world: World) -> None:
    """A Viewer-and-tokens:write caller cannot make an Admin account obtainable by an id-token."""
    admin = account_created()
    await world.given(admin, role_assigned(admin, "Admin"))
    command = CreateFederatedCredential(account_id=admin.account_id, definition=_definition())
    await world.then_raises(Forbidden, command, caller("Admin", scopes=["tokens:write"]))
    await world.then_raises(MissingRight, command, caller("Viewer"))
    await world.when(command, ADMIN)
    assert len(world.then()) == 1


async def test_update_changes_what_is_sent_and_keeps_the_rest(world: World) -> None:
    account = account_created()
    await world.given(account, _created(account.account_id))
    changes = FrozenMap({"subject": "repo:acme/deploy:ref:refs/heads/main"})
    command = UpdateFederatedCredential(account_id=account.account_id, credential_id="c1", changes=changes)
    outcome = await world.when(command)
    expected = FederatedCredentialUpdated(
        **{**_fields(_created(account.account_id)), "subject": "repo:acme/deploy:ref:refs/heads/main"}  # type: ignore[arg-type]
    )
    assert world.then() == [(f"account-{account.account_id}", expected)]
    assert outcome.state.subject == "repo:acme/deploy:ref:refs/heads/main"
    await world.when(command)
    assert world.then() == []


def _fields(event: FederatedCredentialCreated) -> dict[str, object]:
    return {f: getattr(event, f) for f in event.__struct_fields__}


async def test_update_and_delete_of_an_unknown_credential_are_not_found(world: World) -> None:
    account = account_created()
    await world.given(account)
    changes = FrozenMap({"name": "x"})
    await world.then_raises(
        NotFound,
        UpdateFederatedCredential(account_id=account.account_id, credential_id="c9", changes=changes),
    )
    await world.then_raises(
        NotFound, DeleteFederatedCredential(account_id=account.account_id, credential_id="c9")
    )


async def test_delete_records_it_and_the_account_forgets_it(world: World) -> None:
    account = account_created()
    await world.given(account, _created(account.account_id))
    outcome = await world.when(DeleteFederatedCredential(account_id=account.account_id, credential_id="c1"))
    assert world.then() == [
        (
            f"account-{account.account_id}",
            FederatedCredentialDeleted(account_id=account.account_id, credential_id="c1"),
        )
    ]
    assert outcome.state.federated_credentials == {}


async def test_a_retried_create_answers_the_same_credential_or_is_superseded(world: World) -> None:
    account = account_created()
    await world.given(account)
    command = CreateFederatedCredential(account_id=account.account_id, definition=_definition())
    first = await world.when(command, key="k1")
    again = await world.when(command, key="k1")
    assert world.then() == [] and again.state == first.state
    await world.given(
        FederatedCredentialDeleted(account_id=account.account_id, credential_id=first.state.credential_id)
    )
    await world.then_raises(Superseded, command, key="k1")


def test_globs_match_in_linear_time_without_character_classes() -> None:
    assert federation.glob_match("repo:acme/*:ref:refs/heads/*", "repo:acme/x:ref:refs/heads/main")
    assert not federation.glob_match("repo:acme/*", "repo:acmex/y")
    assert federation.glob_match("a?c", "abc") and not federation.glob_match("a?c", "ac")
    assert not federation.glob_match("[ab]", "a")
    assert not federation.glob_match("*a*a*a*a*a*a*b", "a" * 5000)
