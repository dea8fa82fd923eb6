"""``tokenledger bootstrap --name NAME``: the first way in.

Creates, if missing, a konnect-managed system account holding every Identity role on the
organization: the organization admin, which under the cover rule (``services.authorization``) also
covers every role on other entity types, as Konnect's Organization Admin team does. It issues a new
token for it. Running it again issues another token for the same account: it is also the recovery
path when every admin token is lost. A name that belongs to an ordinary (not managed) account is
refused: bootstrap never turns an existing account into an administrator. It sends its commands
through the dispatcher as tokenledger itself (``SYSTEM``), so everything it does is in the log,
with ``system:bootstrap`` as actor.
"""

from datetime import datetime

import msgspec

from services.accounts import model as account_model
from services.accounts.commands import CreateAccount
from services.authorization import SYSTEM
from services.commands import CommandContext, Conflict
from services.composition import open_runtime
from services.config import Settings
from services.dependencies import Dependencies
from services.dispatch import Dispatcher
from services.role_holders import AccountHolder, AssignRole
from services.roles.catalogue import IDENTITY_ENTITY_TYPE, IDENTITY_ROLES
from services.tokens.commands import IssueToken

ACTOR = "system:bootstrap"


class BootstrapRefused(Exception):
    """The name belongs to an account bootstrap must not touch."""


async def _admin_account(
    deps: Dependencies, dispatcher: Dispatcher, ctx: CommandContext, name: str
) -> account_model.Account:
    for _ in range(2):
        owner = await deps.store.claim_owner(account_model.name_claim(name))
        if owner is not None:
            account = account_model.fold(owner.removeprefix("account-"), await deps.store.read_stream(owner))
            if not account.konnect_managed:
                raise BootstrapRefused(
                    f"the system account {name!r} exists and is not managed by tokenledger: bootstrap "
                    "does not make an existing account an administrator; choose another name"
                )
            return account
        try:
            description = "Administrator created by tokenledger bootstrap"
            command = CreateAccount(name=name, description=description, konnect_managed=True)
            created = await dispatcher.dispatch(command, SYSTEM, ctx)
            state: account_model.Account = created.state
            return state
        except Conflict:
            continue  # another bootstrap created it first
    raise RuntimeError(f"could not create or find the account {name!r}")


async def bootstrap(deps: Dependencies, dispatcher: Dispatcher, name: str, now: datetime) -> str:
    """Returns the new token's secret."""
    ctx = CommandContext(now=now, actor=ACTOR)
    account = await _admin_account(deps, dispatcher, ctx, name)
    held = {(g.role_name, g.entity_type_name, g.entity_id) for g in account.roles.values()}
    for role in IDENTITY_ROLES:
        if (role, IDENTITY_ENTITY_TYPE, deps.organization_id) not in held:
            grant = AssignRole(
                holder=AccountHolder(account_id=account.account_id),
                role_name=role,
                entity_id=deps.organization_id,
                entity_type_name=IDENTITY_ENTITY_TYPE,
                entity_region="*",
            )
            await dispatcher.dispatch(grant, SYSTEM, ctx)
    token_name = f"bootstrap {now.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}"
    expires_at = now + deps.token_policy.max_lifetime
    command = IssueToken(account_id=account.account_id, name=token_name, expires_at=expires_at)
    issued = await dispatcher.dispatch(command, SYSTEM, ctx)
    secret: str = issued.state.secret
    return secret


async def run_bootstrap(settings: Settings, name: str) -> str:
    """``tokenledger bootstrap``: the same database configuration as ``serve``; no workers."""
    alone = msgspec.structs.replace(settings, workers=frozenset())
    async with open_runtime(alone, pool_size=2) as runtime:
        secret = await bootstrap(runtime.deps, runtime.dispatcher, name, runtime.clock())
        return secret
