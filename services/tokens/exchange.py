"""The handler of the OIDC token exchange: a short-lived token of an account for the holder of an
id-token that one of the account's federated credentials trusts.

The door (``services.api.routes.oauth``) has verified the id-token (signature, issuer, audience,
times, size) and sends ``ExchangeFederatedToken`` as the ``FederatedActor`` of the credential. Here,
on the account as its stream has it now: the account is live, enabled and within its lifetime (the
token ends with it at the latest), the credential exists, is
the actor's and trusts the issuer, the claims match its subject, required claims and conditions,
the lifetime is within its maximum, and the scopes name rights the account holds. The token is
issued with its provenance (``token.issued.federated``), takes no name claim but a claim under
the account (``model.federated_claim``: its account's deletion finds and revokes it), and claims the
id-token's ``(issuer, jti)`` in the same append: a replayed id-token, on any process or node, finds
the claim taken and is refused. The claim's key carries the id-token's ``exp``, and the claim is
released once that has passed by more than the exchange's leeway, when no node accepts the token
any more (``services.oidc.replays``). The append is conditional on the account stream, so a credential
deleted meanwhile issues nothing.
"""

import hashlib
import math
from datetime import datetime, timedelta

from events.tokens import Provenance, TokenIssued
from services import federation, repository
from services.authorization import Actor, FederatedActor, SystemActor, check_scopes, check_scopes_serve
from services.commands import CommandContext, Conflict, Forbidden, Invalid, NotFound, Outcome, with_retries
from services.dependencies import Dependencies
from services.ports import Claim
from services.tokens import model
from services.tokens.commands import ExchangeFederatedToken
from services.tokens.handlers import IssuedToken
from services.tokens.model import TOKENS
from services.tokens.secrets import generate_secret, secret_hash


class ExchangeRefused(Forbidden):
    """The id-token does not obtain a token of the account; ``reason`` is for the logs only."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ReplayedIdToken(Conflict):
    """This id-token (its issuer and ``jti``) was exchanged before."""


JTI_CLAIMS = "oidc-jti:"
"""The prefix of every id-token's uniqueness claim."""


def _epoch_key(at: datetime) -> str:
    """``at`` as the key part that sorts in time order (whole seconds, rounded up: twelve digits
    hold every second until the year 33658)."""
    return f"{math.ceil(at.timestamp()):012d}"


def jti_claim(issuer: str, jti: str, expires_at: datetime) -> str:
    """The uniqueness claim of one exchanged id-token: its ``exp``, then its issuer and ``jti``
    (hashed: both are client text). A replay is the same token, so the same ``exp``."""
    digest = hashlib.sha256(f"{issuer}\x00{jti}".encode()).hexdigest()
    return f"{JTI_CLAIMS}{_epoch_key(expires_at)}:{digest}"


def lapsed_jti_claims_bound(before: datetime) -> str:
    """The key every claim of an id-token whose ``exp`` is before ``before`` sorts below (byte
    order), and no other claim of an id-token does."""
    return f"{JTI_CLAIMS}{_epoch_key(before)}:"


async def exchange_federated_token(
    deps: Dependencies, ctx: CommandContext, actor: Actor | SystemActor, command: ExchangeFederatedToken
) -> Outcome[IssuedToken]:
    if not isinstance(actor, FederatedActor) or actor.credential_id != command.credential_id:
        raise Forbidden("only the federated credential's own exchange sends this command")
    if actor.account_id != command.account_id or actor.issuer != command.issuer:
        raise Forbidden("only the federated credential's own exchange sends this command")
    check_scopes(command.scopes)

    async def attempt() -> Outcome[IssuedToken]:
        holdings = await deps.directory.holdings(command.account_id)
        account = holdings.account
        if not account.enabled:
            raise ExchangeRefused("account_disabled")
        if account.expires_at is not None and account.expires_at <= ctx.now:
            raise ExchangeRefused("account_expired")
        credential = account.federated_credentials.get(command.credential_id)
        if credential is None:
            raise NotFound("federated credential not found")
        if credential.issuer != command.issuer:
            raise ExchangeRefused("issuer_mismatch")
        refused = federation.mismatch(credential, command.claims)
        if refused is not None:
            raise ExchangeRefused(refused)
        lifetime = command.requested_lifetime_seconds or credential.max_token_lifetime_seconds
        if not 1 <= lifetime <= credential.max_token_lifetime_seconds:
            raise Invalid("requested_lifetime", "is over what the federated credential allows")
        check_scopes_serve(holdings, deps.organization_id, command.scopes)
        expires_at = ctx.now + timedelta(seconds=lifetime)
        if account.expires_at is not None:
            expires_at = min(expires_at, account.expires_at)
        token_id = ctx.new_id("token")
        current, _ = await repository.load(deps.store, TOKENS, ctx, token_id, new=True)
        secret = generate_secret()
        provenance = Provenance(
            credential_id=credential.credential_id,
            issuer=command.issuer,
            subject=command.claims["sub"],
            jti=command.jti,
            claims=command.claims,
        )
        issued = TokenIssued(
            token_id=token_id,
            account_id=command.account_id,
            name=f"federated:{credential.name}",
            secret_hash=secret_hash(secret, deps.pepper),
            expires_at=expires_at,
            scopes=command.scopes,
            federated=provenance,
        )
        stream = model.stream_of(token_id)
        key = jti_claim(command.issuer, command.jti, command.id_token_expires_at)
        claims = [Claim(key, stream), Claim(model.federated_claim(command.account_id, token_id), stream)]
        conditions = [account.unchanged()]
        try:
            outcome = await repository.append(
                deps.store, TOKENS, ctx, current, [issued], conditions=conditions, claims=claims
            )
        except Conflict:
            raise ReplayedIdToken("this id-token was exchanged before") from None
        return Outcome(IssuedToken(outcome.state, secret), outcome.cursor)

    return await with_retries(attempt)
