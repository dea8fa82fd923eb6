"""The token exchange's handler (and the revocation of a leaked token, the other door that mints
nothing a caller asked for): given an account and its federated credential, when the exchange
door sends the verified claims as the credential's ``FederatedActor``, then a short-lived token with
its provenance and the id-token's replay claim, or a refusal that appends nothing."""

from datetime import timedelta

import pytest

from events import FrozenMap
from events.accounts import AccountDisabled
from events.federation import ClaimCondition, FederatedCredentialCreated, FederatedCredentialDeleted
from events.tokens import TokenIssued, TokenRevoked
from services.accounts.commands import DeleteAccount
from services.authorization import SYSTEM, FederatedActor
from services.commands import Forbidden, Invalid, NotFound
from services.tokens.commands import ExchangeFederatedToken, RevokeLeakedToken, RevokeToken
from services.tokens.exchange import ExchangeRefused, ReplayedIdToken, jti_claim
from services.tokens.model import federated_claim
from tests.handlers.world import T0, World, account_created, role_assigned, token_issued

ISSUER = "https://issuer.example"
ID_TOKEN_EXPIRES_AT = T0 + timedelta(minutes=5)
CREDENTIAL = "3f0e6a0c-7a51-4c51-9a0d-2f6f3f0b1c01"


def _credential(account_id: str) -> FederatedCredentialCreated:
    return FederatedCredentialCreated(
        account_id=account_id,
        credential_id=CREDENTIAL,
        name="deploy",
        issuer=ISSUER,
        audiences=("urn:tokenledger:local",),
        subject="repo:acme/deploy:*",
        conditions=(ClaimCondition(claim="environment", operator="equals", values=("production",)),),
        required_claims=("repository_owner_id",),
        max_token_lifetime_seconds=900,
    )


def _exchange(account_id: str, jti: str = "jti-1", **claims: str) -> ExchangeFederatedToken:
    values = {
        "sub": "repo:acme/deploy:ref:refs/heads/main",
        "environment": "production",
        "repository_owner_id": "42",
        **claims,
    }
    return ExchangeFederatedToken(
        account_id=account_id,
        credential_id=CREDENTIAL,
        issuer=ISSUER,
        jti=jti,
        id_token_expires_at=ID_TOKEN_EXPIRES_AT,
        claims=FrozenMap(values),
    )


def _actor(account_id: str) -> FederatedActor:
    return FederatedActor(account_id=account_id, credential_id=CREDENTIAL, issuer=ISSUER, subject="s")


async def _trusting(world: World) -> str:
    account = account_created()
    await world.given(account, role_assigned(account, "Viewer"), _credential(account.account_id))
    return account.account_id


async def test_an_exchange_issues_a_short_lived_token_with_its_provenance_and_replay_claim(
    world: World,
) -> None:
    account_id = await _trusting(world)
    outcome = await world.when(_exchange(account_id), _actor(account_id))
    ((stream, issued),) = world.then()
    assert isinstance(issued, TokenIssued) and stream == f"token-{issued.token_id}"
    assert issued.expires_at == T0 + timedelta(seconds=900)
    assert issued.federated is not None and issued.federated.jti == "jti-1"
    assert issued.federated.claims["environment"] == "production"
    assert outcome.state.secret.startswith("spat_")
    claims = await world.claims()
    assert claims[jti_claim(ISSUER, "jti-1", ID_TOKEN_EXPIRES_AT)] == stream
    assert not any(name.startswith("token-name:") for name in claims)


async def test_a_replayed_id_token_is_refused(world: World) -> None:
    account_id = await _trusting(world)
    await world.when(_exchange(account_id), _actor(account_id))
    await world.then_raises(ReplayedIdToken, _exchange(account_id), _actor(account_id))


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"sub": "repo:evil/deploy:ref:refs/heads/main"}, "subject_mismatch"),
        ({"environment": "dev"}, "condition_false"),
        ({"repository_owner_id": ""}, "missing_required_claim"),
    ],
)
async def test_claims_that_do_not_match_are_refused(
    world: World, claims: dict[str, str], reason: str
) -> None:
    account_id = await _trusting(world)
    refused = await world.then_raises(ExchangeRefused, _exchange(account_id, **claims), _actor(account_id))
    assert isinstance(refused, ExchangeRefused) and refused.reason == reason


async def test_a_lifetime_over_the_credentials_is_refused(world: World) -> None:
    account_id = await _trusting(world)
    command = ExchangeFederatedToken(**{**_fields(_exchange(account_id)), "requested_lifetime_seconds": 901})
    await world.then_raises(Invalid, command, _actor(account_id))


def _fields(command: ExchangeFederatedToken) -> dict[str, object]:
    return {name: getattr(command, name) for name in command.__struct_fields__}


async def test_a_disabled_account_or_a_deleted_credential_obtains_nothing(world: World) -> None:
    account_id = await _trusting(world)
    await world.given(FederatedCredentialDeleted(account_id=account_id, credential_id=CREDENTIAL))
    await world.then_raises(NotFound, _exchange(account_id), _actor(account_id))
    other = await _trusting(world)
    await world.given(AccountDisabled(account_id=other))
    await world.then_raises(ExchangeRefused, _exchange(other), _actor(other))


async def test_only_the_credentials_own_actor_sends_it(world: World) -> None:
    account_id = await _trusting(world)
    stranger = FederatedActor(account_id=account_id, credential_id="another", issuer=ISSUER, subject="s")
    await world.then_raises(Forbidden, _exchange(account_id), stranger)


async def test_a_leaked_token_is_revoked_once_with_its_location(world: World) -> None:
    account = account_created()
    token = token_issued(account.account_id)
    await world.given(account, token)
    command = RevokeLeakedToken(token_id=token.token_id, location="https://scanner.example/1")
    await world.when(command, SYSTEM)
    assert world.then() == [
        (
            f"token-{token.token_id}",
            TokenRevoked(
                token_id=token.token_id,
                account_id=account.account_id,
                reason="leaked",
                location=command.location,
            ),
        )
    ]
    await world.when(command, SYSTEM)
    assert world.then() == []
    await world.when(RevokeLeakedToken(token_id="00000000-0000-4000-8000-000000000000", location="x"), SYSTEM)
    assert world.then() == []


async def test_a_token_never_outlives_its_account_and_an_ended_account_obtains_none(world: World) -> None:
    account = account_created(expires_at=T0 + timedelta(minutes=5))
    await world.given(account, role_assigned(account, "Viewer"), _credential(account.account_id))
    outcome = await world.when(_exchange(account.account_id), _actor(account.account_id))
    assert outcome.state.token.expires_at == T0 + timedelta(minutes=5)
    world.now = T0 + timedelta(minutes=6)
    refused = await world.then_raises(
        ExchangeRefused, _exchange(account.account_id, jti="j2"), _actor(account.account_id)
    )
    assert isinstance(refused, ExchangeRefused) and refused.reason == "account_expired"


async def test_deleting_the_account_revokes_its_federated_tokens(world: World) -> None:
    account_id = await _trusting(world)
    outcome = await world.when(_exchange(account_id), _actor(account_id))
    token_id = outcome.state.token.token_id
    await world.when(DeleteAccount(account_id=account_id))
    events = [event for stream, event in world.then() if stream == f"token-{token_id}"]
    assert any(isinstance(event, TokenRevoked) and event.reason == "account_deleted" for event in events)


async def test_a_federated_token_holds_its_claim_under_the_account_while_it_lives(world: World) -> None:
    account_id = await _trusting(world)
    outcome = await world.when(_exchange(account_id), _actor(account_id))
    token_id = outcome.state.token.token_id
    claim = federated_claim(account_id, token_id)
    assert (await world.claims())[claim] == f"token-{token_id}"
    await world.when(RevokeToken(account_id=account_id, token_id=token_id), SYSTEM)
    assert claim not in await world.claims()
