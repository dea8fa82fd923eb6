"""``tokenledger bootstrap --name NAME``: the first way in.

Creates, if missing, a Konnect-managed system account holding every Identity role on the
organization (so it can grant them), and issues a new token for it. Running it again issues another
token for the same account: it is also the recovery path when every admin token is lost. It writes
through the ordinary handlers, so everything it does is in the log, with ``system:bootstrap`` as actor.
"""

from datetime import datetime

import msgspec

from services.accounts import handlers as accounts
from services.accounts import model as account_model
from services.commands import CommandContext, Conflict
from services.composition import open_runtime
from services.config import Settings
from services.dependencies import Dependencies
from services.roles.assignment import RoleAssignment
from services.roles.catalogue import IDENTITY_ENTITY_TYPE, IDENTITY_ROLES
from services.tokens import handlers as tokens

ACTOR = "system:bootstrap"


class _SystemActor(msgspec.Struct, frozen=True):
    account_id: str = ACTOR
    scopes: list[str] | None = None
    roles: list[RoleAssignment] = []


async def _admin_account(deps: Dependencies, ctx: CommandContext, name: str) -> account_model.Account:
    for _ in range(2):
        owner = await deps.store.claim_owner(account_model.name_claim(name))
        if owner is not None:
            return await accounts.load(deps, owner.removeprefix("account-"))
        try:
            description = "Administrator created by tokenledger bootstrap"
            return (await accounts.create_account(deps, ctx, name, description, konnect_managed=True)).state
        except Conflict:
            continue  # another bootstrap created it first
    raise RuntimeError(f"could not create or find the account {name!r}")


async def bootstrap(deps: Dependencies, name: str, now: datetime) -> str:
    """Returns the new token's secret."""
    ctx = CommandContext(now=now, actor=ACTOR)
    account = await _admin_account(deps, ctx, name)
    held = {(g.role_name, g.entity_type_name, g.entity_id) for g in account.roles.values()}
    missing = [
        role for role in IDENTITY_ROLES if (role, IDENTITY_ENTITY_TYPE, deps.organization_id) not in held
    ]
    if missing:
        events = []
        for role in missing:
            grant = RoleAssignment(
                assignment_id=ctx.new_id(f"role:{role}"),
                role_name=role,
                entity_id=deps.organization_id,
                entity_type_name=IDENTITY_ENTITY_TYPE,
                entity_region="*",
            )
            events += account_model.assign_role(account, deps.catalogue, grant)
        stream = account_model.stream_of(account.account_id)
        await deps.store.append(stream, ctx.new_events(stream, events), account.version)
    token_name = f"bootstrap {now.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}"
    expires_at = now + deps.token_policy.max_lifetime
    issued = await tokens.issue_token(deps, ctx, _SystemActor(), account.account_id, token_name, expires_at)
    return issued.state.secret


async def run_bootstrap(settings: Settings, name: str) -> str:
    """``tokenledger bootstrap``: the same database configuration as ``serve``; no workers."""
    alone = msgspec.structs.replace(settings, workers=frozenset())
    async with open_runtime(alone, pool_size=2) as runtime:
        secret = await bootstrap(runtime.deps, name, runtime.clock())
        return secret
