"""Command handlers for access tokens.

Issuing appends ``token.issued`` to the new token's stream, claims the token's name within its
account and, in the same append, checks that the account stream has not moved since it was read:
a token can never be issued to an account whose deletion committed first. The secret is generated
here, returned once to the caller and never stored: the event carries only its keyed hash.

Under an idempotency key the secret is derived (``secrets.derived_secret``) rather than drawn, and
every handler first looks for its own events in the token's stream (``commands.recorded``): a retry
of an issue or a rotation that committed returns the very secret whose hash is stored, when that
secret still works, and is refused with ``SecretUnavailable`` (409) otherwise; a retry never
decides again, so it never makes a secret nobody was given.

The time-driven handlers (``expire_token``, ``warn_token_expiring``, ``flag_token_rotation_due``,
``retire_token_secret``) are the scheduler's commands: each folds the token, decides at ``ctx.now``
and appends under an idempotency key naming the deadline, so two schedulers, or a retry after a
lost answer, append the event once.

``record_token_usage`` is the usage recorder's: it appends the uses and extensions it is given, as
they are (a use is a fact; an extension was decided on the verifier's view of the token), with no
expected version and content-derived event ids, so a batch retried after a lost answer is
recognised by the store as a retry.
"""

from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

import msgspec

from events import Event, NewEvent
from events.tokens import TokenIssued, TokenRotated
from services import repository
from services.authorization import Actor, SystemActor, check_can_obtain, check_scopes, check_scopes_serve
from services.commands import (
    CommandContext,
    NotFound,
    Outcome,
    Recorded,
    Superseded,
    with_retries,
)
from services.dependencies import Dependencies
from services.lookups import Holdings
from services.names import check_new_name
from services.ports import AppendResult, Claim, StreamAppend, StreamState
from services.tokens import expiry, model, usage_model
from services.tokens.commands import (
    DeleteToken,
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
from services.tokens.model import TOKENS, Token
from services.tokens.secrets import derived_secret, generate_secret, secret_hash


class IssuedToken(msgspec.Struct, frozen=True):
    """A token as just issued or rotated, with its secret: the only time the secret is seen."""

    token: Token
    secret: str


class SecretUnavailable(Superseded):
    """A retried issue or rotation committed, but its secret no longer works (the token was revoked,
    expired, rotated again or deleted since): the secret is not handed out."""

    def __init__(self) -> None:
        super().__init__(
            "this request was carried out before, but the secret it made no longer works;"
            " list the account's access tokens, and rotate or issue one to get a working secret"
        )


def _new_secret(deps: Dependencies, ctx: CommandContext, token_id: str, version: int) -> str:
    """A random secret, or under an idempotency key the one this command derives on every retry."""
    derivation = ctx.derivation(f"secret:{token_id}:{version}")
    return generate_secret() if derivation is None else derived_secret(deps.pepper, derivation)


def _recorded_secret(
    deps: Dependencies, ctx: CommandContext, current: Token, retried: Recorded[Token]
) -> Outcome[IssuedToken]:
    """The original answer of a retried issue or rotation, with its secret re-derived: only when
    that secret is the one whose hash the command stored and still works now."""
    original = retried.original().state
    version = original.secret_version
    secret = _new_secret(deps, ctx, original.token_id, version)
    stored = [e.secret_hash for e in retried.events if isinstance(e, TokenIssued | TokenRotated)]
    if stored != [secret_hash(secret, deps.pepper)] or not model.secret_works(current, version, ctx.now):
        raise SecretUnavailable()
    return Outcome(IssuedToken(original, secret), retried.outcome.cursor)


async def _holdings(deps: Dependencies, account_id: str, retried: Recorded[Token] | None) -> Holdings:
    """What the live account holds; NotFound when it is not live, but for a retry (an issue or a
    rotation that committed) ``SecretUnavailable``: the account was deleted since."""
    try:
        return await deps.directory.holdings(account_id)
    except NotFound:
        if retried is None:
            raise
        raise SecretUnavailable() from None


async def issue_token(
    deps: Dependencies, ctx: CommandContext, actor: Actor | SystemActor, command: IssueToken
) -> Outcome[IssuedToken]:
    """The caller must cover what the new token can do (``check_can_obtain``), and scopes must name a
    right the account holds today (``check_scopes_serve``)."""
    account_id, name, expires_at = command.account_id, command.name, command.expires_at
    scopes = command.scopes
    check_new_name(name)
    check_scopes(scopes)
    token_id = ctx.new_id("token")

    async def attempt() -> Outcome[IssuedToken]:
        current, retried = await repository.load(deps.store, TOKENS, ctx, token_id, new=True)
        holdings = await _holdings(deps, account_id, retried)
        check_can_obtain(actor, deps.organization_id, holdings, scopes)
        if retried is not None:
            return _recorded_secret(deps, ctx, current, retried)
        # Checked against now only when deciding: a retry is answered as of the original decision.
        holdings.account.require_usable(ctx.now)
        check_scopes_serve(holdings, deps.organization_id, scopes)
        resolved = expiry.resolve(
            deps.token_policy,
            ctx.now,
            expires_at=expires_at,
            ttl_seconds=command.ttl_seconds,
            auto_extend_seconds=command.auto_extend_seconds,
            max_expires_at=command.max_expires_at,
        )
        secret = _new_secret(deps, ctx, token_id, 1)
        issued = TokenIssued(
            token_id=token_id,
            account_id=account_id,
            name=name,
            secret_hash=secret_hash(secret, deps.pepper),
            expires_at=resolved.expires_at,
            scopes=scopes,
            auto_extend_seconds=command.auto_extend_seconds,
            max_expires_at=resolved.max_expires_at,
        )
        claim = Claim(model.name_claim(account_id, name), model.stream_of(token_id))
        conditions = [holdings.account.unchanged()]
        outcome = await repository.append(
            deps.store, TOKENS, ctx, current, [issued], conditions=conditions, claims=[claim]
        )
        return Outcome(IssuedToken(outcome.state, secret), outcome.cursor)

    return await with_retries(attempt)


async def rename_token(
    deps: Dependencies, ctx: CommandContext, actor: Actor | SystemActor, command: RenameToken
) -> Outcome[Token]:
    account_id, token_id, name = command.account_id, command.token_id, command.name

    async def attempt() -> Outcome[Token]:
        state, retried = await repository.load(deps.store, TOKENS, ctx, token_id)
        account = await deps.directory.account(account_id)
        if retried is not None:
            return retried.original(holds=account.live)
        model.require_visible(state, account_id)
        # A rename takes a name claim under the account: never once the account is deleted (its
        # deletion releases every such claim), so the append is conditional on the account too.
        account.require_live()
        events = model.rename(state, name)
        claims = [Claim(model.name_claim(account_id, name), model.stream_of(token_id))] if events else []
        releases = [model.name_claim(account_id, state.name)] if events else []
        conditions = [account.unchanged()]
        return await repository.append(
            deps.store, TOKENS, ctx, state, events, conditions=conditions, claims=claims, releases=releases
        )

    return await with_retries(attempt)


async def revoke_token(
    deps: Dependencies, ctx: CommandContext, actor: Actor | SystemActor, command: RevokeToken
) -> Outcome[Token]:
    """Revoking a revoked token changes nothing (its first reason stays)."""
    account_id, token_id = command.account_id, command.token_id
    reason = model.revocation_reason(command.reason)

    async def attempt() -> Outcome[Token]:
        state, retried = await repository.load(deps.store, TOKENS, ctx, token_id)
        if retried is not None:
            return retried.original()
        model.require_visible(state, account_id)
        (await deps.directory.account(account_id)).require_live()
        events = model.revoke(state, reason)
        releases = model.ending_releases(state, events)
        return await repository.append(deps.store, TOKENS, ctx, state, events, releases=releases)

    return await with_retries(attempt)


async def revoke_leaked_token(
    deps: Dependencies, ctx: CommandContext, actor: Actor | SystemActor, command: RevokeLeakedToken
) -> Outcome[Token]:
    """Changes nothing for a token that is not visible or already revoked (the door answers the
    same either way: no oracle)."""

    async def attempt() -> Outcome[Token]:
        state, _retried = await repository.load(deps.store, TOKENS, ctx, command.token_id)
        events = model.revoke(state, "leaked", command.location) if state.visible else []
        releases = model.ending_releases(state, events)
        return await repository.append(deps.store, TOKENS, ctx, state, events, releases=releases)

    return await with_retries(attempt)


async def rotate_token(
    deps: Dependencies, ctx: CommandContext, actor: Actor | SystemActor, command: RotateToken
) -> Outcome[IssuedToken]:
    """The new secret can do what the token can: the caller must cover that (``check_can_obtain``)."""
    account_id, token_id, grace_period_seconds = (
        command.account_id,
        command.token_id,
        command.grace_period_seconds,
    )

    async def attempt() -> Outcome[IssuedToken]:
        state, retried = await repository.load(deps.store, TOKENS, ctx, token_id)
        if retried is None:
            model.require_visible(state, account_id)
        holdings = await _holdings(deps, account_id, retried)
        check_can_obtain(actor, deps.organization_id, holdings, state.scopes)
        if retried is not None:
            return _recorded_secret(deps, ctx, state, retried)
        secret = _new_secret(deps, ctx, token_id, state.secret_version + 1)
        events = model.rotate(state, ctx.now, secret_hash(secret, deps.pepper), grace_period_seconds)
        outcome = await repository.append(deps.store, TOKENS, ctx, state, events)
        return Outcome(IssuedToken(outcome.state, secret), outcome.cursor)

    return await with_retries(attempt)


async def delete_token(
    deps: Dependencies, ctx: CommandContext, actor: Actor | SystemActor, command: DeleteToken
) -> Outcome[Token]:
    account_id, token_id = command.account_id, command.token_id

    async def attempt() -> Outcome[Token]:
        state, retried = await repository.load(deps.store, TOKENS, ctx, token_id)
        if retried is not None:
            return retried.original()
        model.require_visible(state, account_id)
        # Its name claim is the account's to release once the account is deleted.
        account = (await deps.directory.account(account_id)).require_live()
        events = model.delete(state)
        releases = [model.name_claim(account_id, state.name), *model.ending_releases(state, events)]
        return await repository.append(
            deps.store,
            TOKENS,
            ctx,
            state,
            events,
            conditions=[account.unchanged()],
            releases=releases,
        )

    return await with_retries(attempt)


async def _append_scheduled(
    deps: Dependencies,
    ctx: CommandContext,
    token_id: str,
    decide: Callable[[Token], Awaitable[Sequence[Event]]],
) -> Outcome[Token]:
    async def attempt() -> Outcome[Token]:
        state = TOKENS.fold(token_id, await deps.store.read_stream(model.stream_of(token_id)))
        events = await decide(state)
        if not events:
            return Outcome(state, None)
        keyed = msgspec.structs.replace(ctx, idempotency_key=model.deadline_key(state, events[0]))
        releases = model.ending_releases(state, events)
        return await repository.append(deps.store, TOKENS, keyed, state, events, releases=releases)

    return await with_retries(attempt)


async def expire_token(
    deps: Dependencies, ctx: CommandContext, actor: Actor | SystemActor, command: ExpireToken
) -> Outcome[Token]:
    async def decide(state: Token) -> Sequence[Event]:
        return model.expire(state, ctx.now)

    return await _append_scheduled(deps, ctx, command.token_id, decide)


async def warn_token_expiring(
    deps: Dependencies, ctx: CommandContext, actor: Actor | SystemActor, command: WarnTokenExpiring
) -> Outcome[Token]:
    async def decide(state: Token) -> Sequence[Event]:
        return model.warn_expiring_soon(state, ctx.now, command.leads)

    return await _append_scheduled(deps, ctx, command.token_id, decide)


async def flag_token_rotation_due(
    deps: Dependencies, ctx: CommandContext, actor: Actor | SystemActor, command: FlagTokenRotationDue
) -> Outcome[Token]:
    """The period is the token's account's own, else the deployment's."""

    async def decide(state: Token) -> Sequence[Event]:
        if not state.exists:
            return []
        seconds = (await deps.directory.account(state.account_id)).rotation_period_seconds
        period = command.deployment_period if seconds is None else timedelta(seconds=seconds)
        return model.flag_rotation_due(state, ctx.now, period)

    return await _append_scheduled(deps, ctx, command.token_id, decide)


async def retire_token_secret(
    deps: Dependencies, ctx: CommandContext, actor: Actor | SystemActor, command: RetireTokenSecret
) -> Outcome[Token]:
    async def decide(state: Token) -> Sequence[Event]:
        return model.retire_secret(state, ctx.now, command.secret_version)

    return await _append_scheduled(deps, ctx, command.token_id, decide)


class RecordedUsage(msgspec.Struct, frozen=True):
    """What ``record_token_usage`` appended (one ``StreamAppend`` per stream) and where it landed;
    no result when the batch was empty."""

    appends: tuple[StreamAppend, ...]
    result: AppendResult | None


async def record_token_usage(
    deps: Dependencies, ctx: CommandContext, actor: Actor | SystemActor, command: RecordTokenUsage
) -> Outcome[RecordedUsage]:
    """One ``append_many``: the uses to their tokens' usage streams, the extensions to the tokens'
    streams, each event's id derived from its content (``usage_model.used``, ``usage_model.extended``)."""
    by_stream: dict[str, list[NewEvent]] = {}
    for use in command.uses:
        new_event = usage_model.used(
            token_id=use.token_id,
            account_id=use.account_id,
            used_at=use.used_at,
            operation=use.operation,
            client_address=use.client_address,
            user_agent=use.user_agent,
        )
        by_stream.setdefault(model.usage_stream_of(use.token_id), []).append(new_event)
    for extension in command.extensions:
        new_event = usage_model.extended(
            token_id=extension.token_id,
            account_id=extension.account_id,
            expires_at=extension.expires_at,
            decided_at=extension.decided_at,
        )
        by_stream.setdefault(model.stream_of(extension.token_id), []).append(new_event)
    appends = tuple(
        StreamAppend(stream, tuple(events), StreamState.ANY) for stream, events in by_stream.items()
    )
    if not appends:
        return Outcome(RecordedUsage((), None), None)
    result = await deps.store.append_many(appends)
    return Outcome(RecordedUsage(appends, result), result.cursor)
