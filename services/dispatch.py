"""The one door to the command side. Every door (the HTTP routes, the scheduler, bootstrap, and the
coming CLI and console) sends commands as data through
``Dispatcher.dispatch(command, actor, ctx, idempotency_key)``, which authorises the actor for the
command before anything is read, decided or replayed, then runs the command's one handler (the
message map ``HANDLERS``) and returns its ``Outcome``, whose cursor is what read-your-writes waits for.

Idempotency is part of dispatch too, after authorisation. Under a key, and for a caller with a
credential (``ctx.actor_token_id``), the run claims the key (``IdempotencyClaims``) for the
credential and the command's kind, with the command as data as its fingerprint; another command
under the key is ``KeyReused``, a retry while a run is pending ``KeyInProgress``. The handler then
runs with ``ctx.idempotency_key`` set to the digest of (credential, key, fingerprint): it derives its
ids and secrets from it and answers a retry from the log (``services.commands.recorded``); nothing
is replayed from here. However the run ends, the claim is ended, so a failed command may be retried;
a run that changed nothing ends it with what its answer was decided on (``Outcome.unchanged``), which
the claim of a retry hands to the handler (``ctx.unchanged``), so the retry is answered the same.
Another credential never shares a claim nor a digest: for it the key names another command.

Authorisation here is the right a command needs (``RIGHTS``: the write right of the resource
family it changes, ``accounts:write``, ``tokens:write``, ``roles:write`` or ``teams:write``; an
account created with roles or teams needs ``roles:write`` or ``teams:write`` too), refused as a
right the token's scopes exclude or one its account lacks (``MissingRight``); what the command
would hand out (a token's rights, a role) is checked by its handler under the
cover rule (``services.authorization``), on the state it folds. The scheduler's and the usage
recorder's commands are tokenledger's own: refused to every caller. ``SYSTEM`` (tokenledger
itself) is never checked.

Each dispatch is reported to the ``CommandObserver`` the dispatcher is given (the composition root
gives the metrics' one): the command's type tag, the exception it ended with (None on success) and
its duration. The command side imports no metrics library: it only calls that port.
"""

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import msgspec

from services import role_holders
from services.accounts import commands as account_commands
from services.accounts import handlers as accounts
from services.authorization import Actor, FederatedActor, Right, SystemActor, require
from services.commands import CommandContext, Forbidden, Outcome
from services.dependencies import Dependencies
from services.idempotency_claims import (
    IdempotencyClaims,
    InProgress,
    KeyInProgress,
    KeyReused,
    Mismatch,
    command_fingerprint,
    command_tag,
    scope_digest,
)
from services.teams import commands as team_commands
from services.teams import handlers as teams
from services.tokens import commands as token_commands
from services.tokens import exchange
from services.tokens import handlers as tokens

Handler = Callable[[Dependencies, CommandContext, Actor | SystemActor, Any], Awaitable[Outcome[Any]]]

HANDLERS: Mapping[type, Handler] = {
    account_commands.CreateAccount: accounts.create_account,
    account_commands.UpdateAccount: accounts.update_account,
    account_commands.DeleteAccount: accounts.delete_account,
    account_commands.ExpireAccount: accounts.expire_account,
    account_commands.WarnAccountExpiring: accounts.warn_account_expiring,
    account_commands.CreateFederatedCredential: accounts.create_federated_credential,
    account_commands.UpdateFederatedCredential: accounts.update_federated_credential,
    account_commands.DeleteFederatedCredential: accounts.delete_federated_credential,
    team_commands.CreateTeam: teams.create_team,
    team_commands.UpdateTeam: teams.update_team,
    team_commands.DeleteTeam: teams.delete_team,
    team_commands.AddMember: teams.add_member,
    team_commands.RemoveMember: teams.remove_member,
    role_holders.AssignRole: role_holders.assign_role,
    role_holders.UnassignRole: role_holders.unassign_role,
    token_commands.IssueToken: tokens.issue_token,
    token_commands.RenameToken: tokens.rename_token,
    token_commands.RevokeToken: tokens.revoke_token,
    token_commands.RotateToken: tokens.rotate_token,
    token_commands.DeleteToken: tokens.delete_token,
    token_commands.ExpireToken: tokens.expire_token,
    token_commands.WarnTokenExpiring: tokens.warn_token_expiring,
    token_commands.FlagTokenRotationDue: tokens.flag_token_rotation_due,
    token_commands.RetireTokenSecret: tokens.retire_token_secret,
    token_commands.RecordTokenUsage: tokens.record_token_usage,
    token_commands.ExchangeFederatedToken: exchange.exchange_federated_token,
    token_commands.RevokeLeakedToken: tokens.revoke_leaked_token,
}

SYSTEM_COMMANDS = frozenset(
    {
        account_commands.ExpireAccount,
        account_commands.WarnAccountExpiring,
        token_commands.ExpireToken,
        token_commands.WarnTokenExpiring,
        token_commands.FlagTokenRotationDue,
        token_commands.RetireTokenSecret,
        token_commands.RecordTokenUsage,
        token_commands.RevokeLeakedToken,
    }
)
"""Commands only tokenledger itself sends (the scheduler's, the usage recorder's, and the leaked-token
revocation door's, which authenticates a secret scanner by the deployment's shared secret)."""

FEDERATED_COMMANDS = frozenset({token_commands.ExchangeFederatedToken})
"""Commands only a ``FederatedActor`` (the exchange door's) sends; it may send nothing else."""

RIGHTS: Mapping[type, Right] = {
    account_commands.CreateAccount: Right.ACCOUNTS_WRITE,
    account_commands.UpdateAccount: Right.ACCOUNTS_WRITE,
    account_commands.DeleteAccount: Right.ACCOUNTS_WRITE,
    account_commands.CreateFederatedCredential: Right.TOKENS_WRITE,
    account_commands.UpdateFederatedCredential: Right.TOKENS_WRITE,
    account_commands.DeleteFederatedCredential: Right.TOKENS_WRITE,
    team_commands.CreateTeam: Right.TEAMS_WRITE,
    team_commands.UpdateTeam: Right.TEAMS_WRITE,
    team_commands.DeleteTeam: Right.TEAMS_WRITE,
    team_commands.AddMember: Right.TEAMS_WRITE,
    team_commands.RemoveMember: Right.TEAMS_WRITE,
    role_holders.AssignRole: Right.ROLES_WRITE,
    role_holders.UnassignRole: Right.ROLES_WRITE,
    token_commands.IssueToken: Right.TOKENS_WRITE,
    token_commands.RenameToken: Right.TOKENS_WRITE,
    token_commands.RevokeToken: Right.TOKENS_WRITE,
    token_commands.RotateToken: Right.TOKENS_WRITE,
    token_commands.DeleteToken: Right.TOKENS_WRITE,
}
"""The right a caller needs to send each of the callers' commands."""


class CommandObserver(Protocol):
    def __call__(self, command_type: str, error: BaseException | None, seconds: float) -> None: ...


class Dispatcher:
    def __init__(
        self,
        deps: Dependencies,
        *,
        claims: IdempotencyClaims | None = None,
        handlers: Mapping[type, Handler] = HANDLERS,
        observe: CommandObserver | None = None,
        rights: Mapping[type, Right] = RIGHTS,
    ) -> None:
        """``claims`` may be left out by doors that never send a key (the scheduler, bootstrap). A
        command of ``handlers`` without a right in ``rights`` is refused to every caller."""
        self._deps = deps
        self._claims = claims
        self._handlers = handlers
        self._observe = observe
        self._rights = rights

    def authorize(self, kind: type, actor: Actor | SystemActor) -> None:
        """Refuses (``Forbidden``) an actor that may not send commands of type ``kind`` at all. A door
        may ask before it reads the rest of a request (a refusal then comes before a bad body)."""
        if isinstance(actor, SystemActor):
            return
        if (kind in FEDERATED_COMMANDS) != isinstance(actor, FederatedActor):
            raise Forbidden("the token exchange is sent by a federated credential, and only it")
        if isinstance(actor, FederatedActor):
            return
        if kind in SYSTEM_COMMANDS or kind not in self._rights:
            raise Forbidden("this command is tokenledger's own")
        require(actor, self._deps.organization_id, self._rights[kind])

    @staticmethod
    def _also_needed(command: object) -> tuple[Right, ...]:
        """The rights ``command`` needs besides its kind's: for an account created with roles or
        teams, those of assigning roles and of adding members."""
        also = []
        if isinstance(command, account_commands.CreateAccount):
            if command.assigned_roles:
                also.append(Right.ROLES_WRITE)
            if command.team_ids:
                also.append(Right.TEAMS_WRITE)
        return tuple(also)

    async def dispatch(
        self,
        command: object,
        actor: Actor | SystemActor,
        ctx: CommandContext,
        idempotency_key: str | None = None,
    ) -> Outcome[Any]:
        if self._observe is None:
            return await self._dispatch(command, actor, ctx, idempotency_key)
        started = time.perf_counter()
        try:
            outcome = await self._dispatch(command, actor, ctx, idempotency_key)
        except Exception as error:
            self._observe(command_tag(command), error, time.perf_counter() - started)
            raise
        self._observe(command_tag(command), None, time.perf_counter() - started)
        return outcome

    async def _dispatch(
        self,
        command: object,
        actor: Actor | SystemActor,
        ctx: CommandContext,
        idempotency_key: str | None,
    ) -> Outcome[Any]:
        handler = self._handlers.get(type(command))
        if handler is None:
            raise TypeError(f"no handler for {type(command).__name__}")
        self.authorize(type(command), actor)
        if not isinstance(actor, SystemActor):
            for right in self._also_needed(command):
                require(actor, self._deps.organization_id, right)
        credential = ctx.actor_token_id
        if idempotency_key is None or credential is None:
            return await handler(self._deps, ctx, actor, command)
        if self._claims is None:
            raise RuntimeError("an idempotency key was sent to a dispatcher without idempotency claims")
        scope = f"{credential} {command_tag(command)}"
        fingerprint = command_fingerprint(command)
        claim = await self._claims.claim(scope, idempotency_key, fingerprint)
        if isinstance(claim, Mismatch):
            raise KeyReused("the idempotency key was already used with another command")
        if isinstance(claim, InProgress):
            raise KeyInProgress("a command with this idempotency key is in progress")
        keyed = msgspec.structs.replace(
            ctx,
            idempotency_key=scope_digest((credential, idempotency_key, fingerprint)),
            unchanged=claim.unchanged,
        )
        unchanged = None
        try:
            outcome = await handler(self._deps, keyed, actor, command)
            unchanged = outcome.unchanged
            return outcome
        finally:
            await self._claims.end(scope, idempotency_key, claim, unchanged)
