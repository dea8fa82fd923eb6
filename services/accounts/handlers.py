"""Command handlers for system accounts: load the write model, decide, append with claims.

Creating an account may give it roles and teams at once: its ``account.role_assigned`` events and
the teams' ``team.member_added`` (found and made conditional by the directory) go in the append that
creates it, after the same checks as assigning each role and adding it to each team.

Deleting an account also revokes each of its tokens (one ``token.revoked`` each, reason
``account_deleted``) and ends its team memberships, in the same append: the directory
(``services.lookups``) finds them through the uniqueness claims they hold, which commit with them.
Issuing a token or adding a membership checks, in its own append, that the account stream has not
moved; so once ``account.deleted`` is in, no new token or membership can appear, and a second sweep
after it catches any that committed while the first one was being decided.

Every handler first looks for its own events in the account's stream (``commands.recorded``): a
retry of a command that committed answers with its original outcome and never decides again. A
deletion's outcome carries the cursor of everything it appended (the cascade and every sweep), so
that read-your-writes covers the revocations; a retried deletion's reaches to the end of the
original append, whose cascade went to other streams.

The time-driven handlers (``expire_account``, ``warn_account_expiring``) are the scheduler's: each
folds the account, decides at ``ctx.now`` and appends under an idempotency key naming the deadline
(``model.deadline_key``), so two schedulers, or a retry after a lost answer, append the event once.

A federated credential lets whoever holds a matching id-token obtain tokens of the account with all
of its rights: creating or changing one needs what issuing an unscoped token of the account needs
(``check_can_obtain``, on the holdings of now); deleting one gives nothing away.
"""

from collections.abc import Callable, Mapping, Sequence

import msgspec

from events import Event, LogCursor
from services import federation, repository
from services.accounts import model
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
from services.accounts.model import ACCOUNTS, Account
from services.authorization import Actor, SystemActor, check_can_grant, check_can_obtain
from services.commands import CommandContext, Invalid, Outcome, with_retries
from services.dependencies import Dependencies
from services.federation import FederatedCredential
from services.ports import Claim, StreamAppend
from services.roles.assignment import RoleAssignment, check_in_catalogue

Decision = Callable[[Account], Sequence[Event]]
"""A time-driven decision on the account's state at the command's ``now``."""
_END_OF_APPEND_PAGE = 100
"""Events read at a time when looking for the end of a retried deletion's append."""


async def create_account(
    deps: Dependencies, ctx: CommandContext, actor: Actor | SystemActor, command: CreateAccount
) -> Outcome[Account]:
    """Only tokenledger itself makes konnect-managed accounts (which nobody can change or delete).

    The account's ``assigned_roles`` and ``team_ids`` are decided as the separate commands would be
    (every role in the catalogue, then the cover rule for them and for every role of the teams) and
    appended with the creation, in one append over the account's and the teams' streams: a refusal
    of any of them appends nothing. A retry checks the roles it assigned against the caller's
    rights of now; the teams' roles, checked when it joined them, may have changed since through
    commands of their own."""
    name, description, konnect_managed = command.name, command.description, command.konnect_managed
    rotation_period_seconds = command.rotation_period_seconds
    if konnect_managed and not isinstance(actor, SystemActor):
        raise Invalid("konnect_managed", "only tokenledger bootstrap makes konnect-managed system accounts")
    if konnect_managed and command.team_ids:
        raise Invalid("team_ids", "a konnect-managed system account never joins a team")
    account_id = ctx.new_id("account")
    grants = [
        RoleAssignment(assignment_id=ctx.new_id(f"assignment:{n}"), **msgspec.structs.asdict(role))
        for n, role in enumerate(command.assigned_roles)
    ]
    fields = [f"assigned_roles[{n}]" for n in range(len(grants))]
    for field, grant in zip(fields, grants, strict=True):
        _in_catalogue(deps, field, grant)
    check_can_grant(actor, deps.organization_id, grants, fields)

    async def attempt() -> Outcome[Account]:
        state, retried = await repository.load(deps.store, ACCOUNTS, ctx, account_id, new=True)
        if retried is not None:
            original = retried.original()
            return Outcome(original.state, await _end_of_append(deps, original.cursor))
        events = model.create(
            account_id,
            name,
            description,
            konnect_managed,
            rotation_period_seconds,
            grants,
            expires_at=command.expires_at,
            now=ctx.now,
        )
        joining = await deps.directory.joining(ctx, account_id, command.team_ids)
        check_can_grant(actor, deps.organization_id, joining.grants)
        claims = [Claim(model.name_claim(name), model.stream_of(account_id)), *joining.claims]
        return await repository.append(
            deps.store, ACCOUNTS, ctx, state, events, conditions=joining.appends, claims=claims
        )

    return await with_retries(attempt)


def _in_catalogue(deps: Dependencies, field: str, grant: RoleAssignment) -> None:
    """``check_in_catalogue``, its refusal naming the field under ``field`` (``assigned_roles[0]``)."""
    try:
        check_in_catalogue(deps.catalogue, grant)
    except Invalid as refused:
        raise Invalid(f"{field}.{refused.field}", refused.reason, refused.rule, refused.choices) from None


async def update_account(
    deps: Dependencies, ctx: CommandContext, actor: Actor | SystemActor, command: UpdateAccount
) -> Outcome[Account]:
    """``rotation_period_seconds``: None keeps the account's period, 0 clears it."""
    account_id, name, description, enabled = (
        command.account_id,
        command.name,
        command.description,
        command.enabled,
    )
    rotation_period_seconds = command.rotation_period_seconds

    async def attempt() -> Outcome[Account]:
        state, retried = await repository.load(deps.store, ACCOUNTS, ctx, account_id)
        if retried is not None:
            return retried.original()
        events = model.update(
            state,
            name,
            description,
            enabled,
            rotation_period_seconds,
            expires_at=command.expires_at,
            now=ctx.now,
        )
        renamed = name is not None and name != state.name
        claims = [Claim(model.name_claim(name), model.stream_of(account_id))] if renamed and name else []
        releases = [model.name_claim(state.name)] if renamed else []
        return await repository.append(
            deps.store, ACCOUNTS, ctx, state, events, claims=claims, releases=releases
        )

    return await with_retries(attempt)


async def delete_account(
    deps: Dependencies, ctx: CommandContext, actor: Actor | SystemActor, command: DeleteAccount
) -> Outcome[Account]:
    account_id = command.account_id

    async def attempt() -> Outcome[Account]:
        state, retried = await repository.load(deps.store, ACCOUNTS, ctx, account_id)
        if retried is not None:
            original = retried.original()
            return Outcome(original.state, await _end_of_append(deps, original.cursor))
        events = model.delete(state)
        cascade = await deps.directory.deletion_cascade(ctx, account_id)
        releases = [model.name_claim(state.name), *cascade.releases]
        return await repository.append(
            deps.store, ACCOUNTS, ctx, state, events, conditions=cascade.appends, releases=releases
        )

    outcome = await with_retries(attempt)
    cursor = outcome.cursor

    async def sweep() -> bool:
        """Cascades what committed while the deletion was decided; True when nothing was left."""
        nonlocal cursor
        cascade = await deps.directory.deletion_cascade(ctx, account_id)
        if not cascade.releases:
            return True
        settled = StreamAppend(model.stream_of(account_id), (), outcome.state.version)
        result = await deps.store.append_many([settled, *cascade.appends], releases=cascade.releases)
        if result.events:
            cursor = result.cursor if cursor is None else max(cursor, result.cursor)
        return False

    while not await with_retries(sweep):
        pass
    return Outcome(outcome.state, cursor)


async def _append_scheduled(
    deps: Dependencies, ctx: CommandContext, account_id: str, decide: Decision
) -> Outcome[Account]:
    async def attempt() -> Outcome[Account]:
        state = ACCOUNTS.fold(account_id, await deps.store.read_stream(model.stream_of(account_id)))
        events = decide(state)
        if not events:
            return Outcome(state, None)
        keyed = msgspec.structs.replace(ctx, idempotency_key=model.deadline_key(events[0]))
        return await repository.append(deps.store, ACCOUNTS, keyed, state, events)

    return await with_retries(attempt)


async def expire_account(
    deps: Dependencies, ctx: CommandContext, actor: Actor | SystemActor, command: ExpireAccount
) -> Outcome[Account]:
    return await _append_scheduled(deps, ctx, command.account_id, lambda state: model.expire(state, ctx.now))


async def warn_account_expiring(
    deps: Dependencies, ctx: CommandContext, actor: Actor | SystemActor, command: WarnAccountExpiring
) -> Outcome[Account]:
    def decide(state: Account) -> Sequence[Event]:
        return model.warn_expiring_soon(state, ctx.now, command.leads)

    return await _append_scheduled(deps, ctx, command.account_id, decide)


async def _end_of_append(deps: Dependencies, cursor: LogCursor | None) -> LogCursor | None:
    """The cursor of the last event of the append (one transaction) whose event is at ``cursor``."""
    if cursor is None:
        return None
    end = cursor
    while same := [
        e.cursor for e in await deps.store.read_all(end, _END_OF_APPEND_PAGE) if e.tx_id == cursor.tx_id
    ]:
        end = same[-1]
    return end


async def create_federated_credential(
    deps: Dependencies, ctx: CommandContext, actor: Actor | SystemActor, command: CreateFederatedCredential
) -> Outcome[FederatedCredential]:
    credential_id = ctx.new_id("federated-credential")

    def decide(credentials: Mapping[str, FederatedCredential]) -> list[Event]:
        return federation.create(
            deps.federation, command.account_id, credentials, credential_id, command.definition
        )

    return await _change_credential(deps, ctx, actor, command.account_id, credential_id, decide)


async def update_federated_credential(
    deps: Dependencies, ctx: CommandContext, actor: Actor | SystemActor, command: UpdateFederatedCredential
) -> Outcome[FederatedCredential]:
    account_id, credential_id = command.account_id, command.credential_id

    def decide(credentials: Mapping[str, FederatedCredential]) -> list[Event]:
        return federation.update(deps.federation, account_id, credentials, credential_id, command.changes)

    return await _change_credential(deps, ctx, actor, account_id, credential_id, decide)


async def _change_credential(
    deps: Dependencies,
    ctx: CommandContext,
    actor: Actor | SystemActor,
    account_id: str,
    credential_id: str,
    decide: Callable[[Mapping[str, FederatedCredential]], list[Event]],
) -> Outcome[FederatedCredential]:
    """Creates or changes one federated credential of a live account: whoever holds a matching
    id-token gets the account's rights, so the caller must cover them (``check_can_obtain``)."""

    async def attempt() -> Outcome[FederatedCredential]:
        state, retried = await repository.load(deps.store, ACCOUNTS, ctx, account_id)
        check_can_obtain(actor, deps.organization_id, await deps.directory.holdings(account_id), None)
        if retried is not None:
            original = retried.original(holds=credential_id in state.federated_credentials)
            return Outcome(original.state.federated_credentials[credential_id], original.cursor)
        model.require_live(state)
        appended = await repository.append(
            deps.store, ACCOUNTS, ctx, state, decide(state.federated_credentials)
        )
        credential = appended.state.federated_credentials[credential_id]
        return Outcome(credential, appended.cursor, appended.unchanged)

    return await with_retries(attempt)


async def delete_federated_credential(
    deps: Dependencies, ctx: CommandContext, actor: Actor | SystemActor, command: DeleteFederatedCredential
) -> Outcome[Account]:
    account_id, credential_id = command.account_id, command.credential_id

    async def attempt() -> Outcome[Account]:
        state, retried = await repository.load(deps.store, ACCOUNTS, ctx, account_id)
        if retried is not None:
            return retried.original()
        model.require_live(state)
        events = federation.delete(account_id, state.federated_credentials, credential_id)
        return await repository.append(deps.store, ACCOUNTS, ctx, state, events)

    return await with_retries(attempt)
