"""Access tokens as callers change them: issue, rename, revoke, rotate and delete, given events, when
the command, then the events it appended (and the name claims it moved) or the refusal, which
appends nothing. Issuing and rotating hand out a secret: the caller must cover what it can do, and
a retry under an idempotency key returns the very secret whose hash is stored, while it works,
and ``SecretUnavailable`` otherwise."""

from datetime import timedelta

import pytest

from events.accounts import AccountDeleted, AccountDisabled, AccountRoleUnassigned
from events.teams import TeamMemberAdded
from events.tokens import TokenDeleted, TokenIssued, TokenRenamed, TokenRevoked, TokenRotated
from services.accounts.commands import DeleteAccount
from services.authorization import SYSTEM
from services.commands import Conflict, Forbidden, Invalid, NotFound, Superseded
from services.policy import TokenPolicy
from services.tokens.commands import DeleteToken, IssueToken, RenameToken, RevokeToken, RotateToken
from services.tokens.handlers import SecretUnavailable
from services.tokens.secrets import derived_secret, is_well_formed, secret_hash
from tests.handlers.world import (
    ADMIN,
    PEPPER,
    POLICY,
    T0,
    World,
    account_created,
    caller,
    role_assigned,
    team_created,
    token_issued,
)

DAY = timedelta(days=1)
WRITER = caller("Admin", scopes=["identity:write"])
"""An Admin whose token carries only identity:write."""
EVERY_ROLE = caller("Admin", "Viewer", "Auditor", "Introspector")
"""A caller holding every Identity role: it covers a token of any account holding Identity roles."""


def _token(token_id: str) -> str:
    return f"token-{token_id}"


def _issue(account_id: str, name: str = "deploy", **fields: object) -> IssueToken:
    fields.setdefault("expires_at", T0 + DAY)
    return IssueToken(account_id=account_id, name=name, **fields)  # type: ignore[arg-type]


# -- IssueToken ---------------------------------------------------------------------------------


async def test_issue_token_records_the_hash_of_the_secret_it_returns_once(world: World) -> None:
    account = account_created()
    await world.given(account, role_assigned(account, "Viewer"))
    outcome = await world.when(_issue(account.account_id, scopes=("identity:read",)), EVERY_ROLE)
    token, secret = outcome.state.token, outcome.state.secret
    assert is_well_formed(secret)
    assert world.then() == [
        (
            _token(token.token_id),
            TokenIssued(
                token_id=token.token_id,
                account_id=account.account_id,
                name="deploy",
                secret_hash=secret_hash(secret, PEPPER),
                expires_at=T0 + DAY,
                scopes=("identity:read",),
            ),
        )
    ]
    assert (token.account_id, token.secret_version, token.created_at) == (account.account_id, 1, T0)
    claims = await world.claims()
    assert claims[f"token-name:{account.account_id}:deploy"] == _token(token.token_id)
    assert secret not in str(world.then_recorded())


async def test_sliding_expiry_is_bounded_by_the_policy(world: World) -> None:
    account = account_created()
    await world.given(account)
    await world.when(_issue(account.account_id, auto_extend_seconds=3600))
    ((_, issued),) = world.then()
    assert isinstance(issued, TokenIssued)
    assert (issued.auto_extend_seconds, issued.max_expires_at) == (3600, T0 + POLICY.max_lifetime)


async def test_issue_token_refuses_bad_scopes_expiries_and_names(world: World) -> None:
    account = account_created()
    await world.given(account)
    account_id = account.account_id
    for command, field in [
        (_issue(account_id, scopes=("tokens:everything",)), "scopes"),
        (_issue(account_id, scopes=("identity:read", "identity:read")), "scopes"),
        (_issue(account_id, expires_at=T0), "expires_at"),
        (_issue(account_id, expires_at=T0 + 366 * DAY), "expires_at"),
        (_issue(account_id, max_expires_at=T0 + 2 * DAY), "max_expires_at"),
        (_issue(account_id, auto_extend_seconds=0), "auto_extend_seconds"),
        (_issue(account_id, auto_extend_seconds=60, max_expires_at=T0 + DAY / 2), "max_expires_at"),
        (_issue(account_id, name="de\u200bploy"), "name"),
        (_issue(account_id, name=" "), "name"),
    ]:
        refused = await world.then_raises(Invalid, command)
        assert isinstance(refused, Invalid) and refused.field.startswith(field), command


async def test_a_token_that_never_expires_needs_the_deployment_to_allow_it() -> None:
    world = World(policy=TokenPolicy(max_lifetime=POLICY.max_lifetime, allow_non_expiring=False))
    account = account_created()
    await world.given(account)
    await world.then_raises(Invalid, _issue(account.account_id, expires_at=None), match="expires_at")


async def test_ttl_seconds_is_an_expiry_counted_from_the_issue_in_whole_seconds(world: World) -> None:
    account = account_created()
    await world.given(account)
    world.now = T0 + timedelta(microseconds=700_000)
    await world.when(_issue(account.account_id, expires_at=None, ttl_seconds=30 * 86400))
    ((_, issued),) = world.then()
    assert isinstance(issued, TokenIssued)
    assert issued.expires_at == T0 + 30 * DAY  # rounded down: never past the lifetime asked for


async def test_ttl_seconds_and_expires_at_together_are_refused(world: World) -> None:
    account = account_created()
    await world.given(account)
    refused = await world.then_raises(Invalid, _issue(account.account_id, ttl_seconds=3600))
    assert isinstance(refused, Invalid) and refused.field == "ttl_seconds"
    assert "not both" in refused.reason and refused.rule == "dependent_fields"


async def test_an_expiry_past_the_policy_is_refused_saying_what_the_policy_allows() -> None:
    strict = World(policy=TokenPolicy(max_lifetime=timedelta(days=90), allow_non_expiring=False))
    account = account_created()
    await strict.given(account)
    for command, field in [
        (_issue(account.account_id, expires_at=None, ttl_seconds=91 * 86400), "ttl_seconds"),
        (_issue(account.account_id, expires_at=None, ttl_seconds=0), "ttl_seconds"),
        (_issue(account.account_id, expires_at=T0 + 91 * DAY), "expires_at"),
        (_issue(account.account_id, expires_at=None), "expires_at"),
    ]:
        refused = await strict.then_raises(Invalid, command)
        assert isinstance(refused, Invalid) and refused.field == field, command
        assert "at most 90 days (7776000 seconds)" in refused.reason, refused.reason
        assert "does not allow tokens that never expire" in refused.reason, refused.reason
    lenient = World()
    await lenient.given(account)
    refused = await lenient.then_raises(Invalid, _issue(account.account_id, expires_at=T0 + 366 * DAY))
    assert isinstance(refused, Invalid) and "and allows tokens that never expire" in refused.reason
    await strict.when(_issue(account.account_id, expires_at=None, ttl_seconds=90 * 86400))


async def test_sliding_expiry_without_an_expiry_is_an_idle_timeout(world: World) -> None:
    """On a deployment that allows tokens that never expire too: the window starts at the issue."""
    account = account_created()
    await world.given(account)
    world.now = T0 + timedelta(microseconds=250_000)
    await world.when(_issue(account.account_id, expires_at=None, auto_extend_seconds=3600))
    ((_, issued),) = world.then()
    assert isinstance(issued, TokenIssued)
    assert (issued.expires_at, issued.max_expires_at) == (
        T0 + timedelta(hours=1),
        world.now + POLICY.max_lifetime,
    )
    # A ceiling sooner than the window ends the first one.
    ceiling = T0 + timedelta(minutes=10)
    await world.when(
        _issue(account.account_id, "short", expires_at=None, auto_extend_seconds=3600, max_expires_at=ceiling)
    )
    ((_, short),) = world.then()
    assert isinstance(short, TokenIssued) and (short.expires_at, short.max_expires_at) == (ceiling, ceiling)


async def test_an_idle_timeout_is_an_expiry_where_tokens_must_expire() -> None:
    world = World(policy=TokenPolicy(max_lifetime=timedelta(days=30), allow_non_expiring=False))
    account = account_created()
    await world.given(account)
    await world.when(_issue(account.account_id, expires_at=None, auto_extend_seconds=86400))
    ((_, issued),) = world.then()
    assert isinstance(issued, TokenIssued) and issued.expires_at == T0 + DAY
    refused = await world.then_raises(
        Invalid, _issue(account.account_id, "x", expires_at=None, auto_extend_seconds=31 * 86400)
    )
    assert isinstance(refused, Invalid) and refused.field == "auto_extend_seconds"


async def test_issue_token_refuses_a_missing_account_or_a_taken_name(world: World) -> None:
    account, gone = account_created(), account_created()
    await world.given(
        account, token_issued(account.account_id, "deploy"), gone, AccountDeleted(account_id=gone.account_id)
    )
    await world.then_raises(NotFound, _issue("nobody"), match="system account not found")
    await world.then_raises(NotFound, _issue(gone.account_id))
    await world.then_raises(
        Conflict, _issue(account.account_id, "deploy"), match="already has an access token"
    )
    other = account_created()
    await world.given(other)
    await world.when(_issue(other.account_id, "deploy"))
    assert len(world.then()) == 1


async def test_issue_token_refuses_an_account_disabled_or_past_its_lifetime(world: World) -> None:
    """A secret is shown once: none is made for an account that cannot use it now. Rotation stays
    open (rotating a leaked secret while the account is disabled is the incident response)."""
    disabled, ending = account_created(), account_created(expires_at=T0 + DAY)
    await world.given(disabled, AccountDisabled(account_id=disabled.account_id), ending)
    kept = token_issued(disabled.account_id, "kept")
    await world.given(kept)
    await world.then_raises(Conflict, _issue(disabled.account_id), match="is disabled: enable it")
    await world.when(RotateToken(account_id=disabled.account_id, token_id=kept.token_id))
    assert [type(event) for _, event in world.then()] == [TokenRotated]
    world.now = T0 + DAY
    await world.then_raises(Conflict, _issue(ending.account_id), match="lifetime ended at")
    world.now = T0
    await world.when(_issue(ending.account_id))
    assert len(world.then()) == 1


async def test_issue_token_needs_covering_what_the_token_can_do(world: World) -> None:
    auditor, admin, team = account_created(), account_created(), team_created()
    managed = account_created(konnect_managed=True)
    await world.given(
        auditor,
        role_assigned(auditor, "Auditor"),
        role_assigned(auditor, "Viewer"),
        admin,
        role_assigned(admin, "Admin"),
        team,
        role_assigned(team, "Admin", entity_type_name="Control Planes", entity_id="cp-1", entity_region="us"),
        TeamMemberAdded(team_id=team.team_id, account_id=admin.account_id),
        managed,
        role_assigned(managed, "Admin"),
    )
    await world.then_raises(Forbidden, _issue(auditor.account_id), match="the Identity role Auditor")
    await world.then_raises(Forbidden, _issue(admin.account_id), match="Control Planes cp-1")
    await world.then_raises(
        Forbidden, _issue(admin.account_id, scopes=("identity:read",)), WRITER, match="identity:read"
    )
    await world.then_raises(Forbidden, _issue(managed.account_id), match="organization admin")
    scoped = await world.when(
        _issue(auditor.account_id, scopes=("identity:read",)), caller("Viewer", "Admin")
    )
    assert scoped.state.token.scopes == ("identity:read",)
    await world.when(_issue(managed.account_id), SYSTEM)
    assert len(world.then()) == 1


async def test_issue_token_refuses_scopes_that_grant_nothing_the_account_can_do(world: World) -> None:
    """Scopes none of whose rights the account holds today (directly or through a team) make a token
    that is refused everything it names: a 400 naming ``scopes`` and what the account does hold."""
    bare, auditor, member, team = account_created(), account_created(), account_created(), team_created()
    await world.given(
        bare,
        auditor,
        role_assigned(auditor, "Auditor"),
        team,
        role_assigned(team, "Viewer"),
        member,
        TeamMemberAdded(team_id=team.team_id, account_id=member.account_id),
    )
    refusals = [
        (bare.account_id, ("accounts:read",), "holds no Identity role"),
        (auditor.account_id, ("identity:read",), "confer only audit:read"),
        (member.account_id, ("accounts:write", "audit:read"), "confer only identity:read"),
    ]
    for account_id, scopes, reason in refusals:
        refused = await world.then_raises(
            Invalid, _issue(account_id, scopes=scopes), EVERY_ROLE, match=reason
        )
        assert isinstance(refused, Invalid) and refused.field == "scopes"
    for account_id, scopes in [
        (auditor.account_id, ("accounts:read", "audit:read")),  # one right it holds is enough
        (member.account_id, ("teams:read",)),  # held through the team
        (bare.account_id, ()),  # no tokenledger right asked for: a token for other entity types
        (bare.account_id, None),  # unscoped: the account's roles, whenever it gets them
    ]:
        await world.when(_issue(account_id, name=f"t{scopes}", scopes=scopes), EVERY_ROLE)
        assert len(world.then()) == 1, (account_id, scopes)


async def test_a_retried_issue_token_is_answered_after_the_account_lost_the_scoped_right(
    world: World,
) -> None:
    """The check is part of the decision: a retry answers with the token it issued, as before."""
    account = account_created()
    viewer = role_assigned(account, "Viewer")
    await world.given(account, viewer)
    command = _issue(account.account_id, scopes=("accounts:read",))
    first = await world.when(command, key="k")
    await world.given(
        AccountRoleUnassigned(account_id=account.account_id, assignment_id=viewer.assignment_id)
    )
    retry = await world.when(command, key="k")
    assert world.then() == [] and retry == first
    await world.then_raises(Invalid, _issue(account.account_id, name="again", scopes=("accounts:read",)))


async def test_a_retried_issue_token_returns_the_very_secret_it_stored(world: World) -> None:
    account = account_created()
    await world.given(account)
    command = _issue(account.account_id)
    first = await world.when(command, key="k")
    token_id = first.state.token.token_id
    ctx = world.context(ADMIN, "k")
    assert first.state.secret == derived_secret(PEPPER, ctx.derivation(f"secret:{token_id}:1") or "")
    world.now = T0 + timedelta(hours=1)
    retry = await world.when(command, key="k")
    assert world.then() == []
    assert retry == first


async def test_a_retried_issue_token_whose_secret_no_longer_works_is_refused(world: World) -> None:
    account = account_created()
    await world.given(account)
    command = _issue(account.account_id)
    first = await world.when(command, key="k")
    await world.when(RevokeToken(account_id=account.account_id, token_id=first.state.token.token_id))
    refused = await world.then_raises(SecretUnavailable, command, key="k", match="rotate")
    assert first.state.secret not in str(refused)


async def test_a_retried_issue_token_after_its_expiry_or_deletion_is_refused(world: World) -> None:
    """Refused as a retry whose secret no longer works, not as a request whose expiry has passed:
    the request was carried out, as of its own time."""
    account = account_created()
    await world.given(account)
    command = _issue(account.account_id)
    first = await world.when(command, key="k")
    world.now = T0 + 2 * DAY
    await world.then_raises(SecretUnavailable, command, key="k", match="rotate")
    await world.when(DeleteToken(account_id=account.account_id, token_id=first.state.token.token_id))
    await world.then_raises(Superseded, command, key="k")


async def test_a_retried_issue_token_after_the_accounts_deletion_is_refused(world: World) -> None:
    account = account_created()
    await world.given(account)
    command = _issue(account.account_id)
    await world.when(command, key="k")
    await world.given(AccountDeleted(account_id=account.account_id))
    await world.then_raises(SecretUnavailable, command, key="k")


async def test_a_retried_issue_token_is_authorised_again(world: World) -> None:
    account = account_created()
    await world.given(account)
    command = _issue(account.account_id)
    await world.when(command, key="k")
    await world.given(role_assigned(account, "Auditor"))
    await world.then_raises(Forbidden, command, key="k", match="Auditor")


# -- RenameToken --------------------------------------------------------------------------------


async def test_rename_token_records_the_name_and_moves_its_claim(world: World) -> None:
    account = account_created()
    token = token_issued(account.account_id, "old")
    await world.given(account, token)
    outcome = await world.when(
        RenameToken(account_id=account.account_id, token_id=token.token_id, name="new")
    )
    assert world.then() == [
        (
            _token(token.token_id),
            TokenRenamed(token_id=token.token_id, account_id=account.account_id, name="new"),
        )
    ]
    assert outcome.state.name == "new"
    claims = await world.claims()
    assert claims[f"token-name:{account.account_id}:new"] == _token(token.token_id)
    assert f"token-name:{account.account_id}:old" not in claims


async def test_renaming_a_token_to_its_name_appends_nothing(world: World) -> None:
    account = account_created()
    token = token_issued(account.account_id, "same")
    await world.given(account, token)
    outcome = await world.when(
        RenameToken(account_id=account.account_id, token_id=token.token_id, name="same")
    )
    assert world.then() == []
    assert outcome.cursor is None


async def test_rename_token_refuses_a_missing_token_a_taken_name_or_a_bad_one(world: World) -> None:
    account, other = account_created(), account_created()
    token, sibling = token_issued(account.account_id, "mine"), token_issued(account.account_id, "taken")
    await world.given(account, other, token, sibling)
    await world.then_raises(NotFound, RenameToken(account_id=account.account_id, token_id="nope", name="x"))
    await world.then_raises(
        NotFound,
        RenameToken(account_id=other.account_id, token_id=token.token_id, name="x"),
        match="access token",
    )
    await world.then_raises(
        Conflict, RenameToken(account_id=account.account_id, token_id=token.token_id, name="taken")
    )
    await world.then_raises(
        Invalid, RenameToken(account_id=account.account_id, token_id=token.token_id, name="\t")
    )
    await world.when(DeleteToken(account_id=account.account_id, token_id=sibling.token_id))
    await world.then_raises(
        NotFound, RenameToken(account_id=account.account_id, token_id=sibling.token_id, name="x")
    )


async def test_a_retried_rename_token_appends_nothing_and_answers_as_before(world: World) -> None:
    account = account_created()
    token = token_issued(account.account_id, "old")
    await world.given(account, token)
    command = RenameToken(account_id=account.account_id, token_id=token.token_id, name="new")
    first = await world.when(command, key="k")
    retry = await world.when(command, key="k")
    assert world.then() == []
    assert retry == first
    await world.when(DeleteToken(account_id=account.account_id, token_id=token.token_id))
    await world.then_raises(Superseded, command, key="k")


# -- RevokeToken --------------------------------------------------------------------------------


async def test_revoke_token_records_the_revocation_once(world: World) -> None:
    account = account_created()
    token = token_issued(account.account_id)
    await world.given(account, token)
    command = RevokeToken(account_id=account.account_id, token_id=token.token_id)
    outcome = await world.when(command)
    assert world.then() == [
        (
            _token(token.token_id),
            TokenRevoked(token_id=token.token_id, account_id=account.account_id, reason="revoked"),
        )
    ]
    assert (outcome.state.state, outcome.state.revoked_at) == ("REVOKED", T0)
    again = await world.when(command)
    assert (world.then(), again.cursor) == ([], None)


async def test_revoke_token_records_the_reason_given(world: World) -> None:
    account = account_created()
    coded, texted = token_issued(account.account_id), token_issued(account.account_id, name="other")
    await world.given(account, coded, texted)
    outcome = await world.when(
        RevokeToken(account_id=account.account_id, token_id=coded.token_id, reason="compromised")
    )
    assert world.then() == [
        (
            _token(coded.token_id),
            TokenRevoked(token_id=coded.token_id, account_id=account.account_id, reason="compromised"),
        )
    ]
    assert outcome.state.revoke_reason == "compromised"
    text = " leaked in a CI log\u0301 "  # normalised as names are: NFC, trimmed
    await world.when(RevokeToken(account_id=account.account_id, token_id=texted.token_id, reason=text))
    ((_, revoked),) = world.then()
    assert isinstance(revoked, TokenRevoked) and revoked.reason == "leaked in a CI lo\u01f5"
    # The first reason stays.
    again = RevokeToken(account_id=account.account_id, token_id=coded.token_id, reason="unused")
    assert (await world.when(again)).state.revoke_reason == "compromised" and world.then() == []


async def test_revoke_token_refuses_tokenledgers_own_reasons_and_bad_text(world: World) -> None:
    account = account_created()
    token = token_issued(account.account_id)
    await world.given(account, token)
    for reason in ("deleted", " account_deleted", "", "a\x00b", "x\u200by", "r" * 256):
        command = RevokeToken(account_id=account.account_id, token_id=token.token_id, reason=reason)
        refused = await world.then_raises(Invalid, command)
        assert isinstance(refused, Invalid) and refused.field == "reason", reason
    longest = RevokeToken(account_id=account.account_id, token_id=token.token_id, reason="r" * 255)
    await world.when(longest)


async def test_revoke_token_refuses_a_missing_token(world: World) -> None:
    account, other = account_created(), account_created()
    token = token_issued(account.account_id)
    await world.given(account, other, token)
    await world.then_raises(NotFound, RevokeToken(account_id=account.account_id, token_id="nope"))
    await world.then_raises(NotFound, RevokeToken(account_id=other.account_id, token_id=token.token_id))
    await world.when(DeleteToken(account_id=account.account_id, token_id=token.token_id))
    await world.then_raises(NotFound, RevokeToken(account_id=account.account_id, token_id=token.token_id))


async def test_a_retried_revoke_token_appends_nothing_and_answers_as_before(world: World) -> None:
    account = account_created()
    token = token_issued(account.account_id)
    await world.given(account, token)
    command = RevokeToken(account_id=account.account_id, token_id=token.token_id)
    first = await world.when(command, key="k")
    retry = await world.when(command, key="k")
    assert world.then() == []
    assert retry == first
    await world.when(DeleteToken(account_id=account.account_id, token_id=token.token_id))
    await world.then_raises(Superseded, command, key="k")


# -- RotateToken --------------------------------------------------------------------------------


@pytest.mark.parametrize(("grace", "previous_valid_until"), [(60, T0 + timedelta(seconds=60)), (0, None)])
async def test_rotate_token_records_the_new_secrets_hash(
    world: World, grace: int, previous_valid_until: object
) -> None:
    account = account_created()
    token = token_issued(account.account_id, expires_at=T0 + DAY)
    await world.given(account, token)
    outcome = await world.when(
        RotateToken(account_id=account.account_id, token_id=token.token_id, grace_period_seconds=grace)
    )
    secret = outcome.state.secret
    assert is_well_formed(secret)
    assert world.then() == [
        (
            _token(token.token_id),
            TokenRotated(
                token_id=token.token_id,
                account_id=account.account_id,
                secret_hash=secret_hash(secret, PEPPER),
                secret_version=2,
                previous_valid_until=previous_valid_until,  # type: ignore[arg-type]
            ),
        )
    ]
    assert outcome.state.token.secret_version == 2


async def test_rotate_token_refuses_a_token_that_cannot_be_rotated(world: World) -> None:
    account, other = account_created(), account_created()
    revoked, expiring = (
        token_issued(account.account_id),
        token_issued(account.account_id, expires_at=T0 + DAY),
    )
    await world.given(
        account,
        other,
        revoked,
        TokenRevoked(token_id=revoked.token_id, account_id=account.account_id, reason="revoked"),
        expiring,
    )
    await world.then_raises(NotFound, RotateToken(account_id=account.account_id, token_id="nope"))
    await world.then_raises(NotFound, RotateToken(account_id=other.account_id, token_id=expiring.token_id))
    await world.then_raises(
        Conflict, RotateToken(account_id=account.account_id, token_id=revoked.token_id), match="REVOKED"
    )
    for grace in (-1, 7 * 86400 + 1):
        await world.then_raises(
            Invalid,
            RotateToken(
                account_id=account.account_id, token_id=expiring.token_id, grace_period_seconds=grace
            ),
            match="grace_period_seconds",
        )
    world.now = T0 + 2 * DAY
    await world.then_raises(
        Conflict, RotateToken(account_id=account.account_id, token_id=expiring.token_id), match="EXPIRED"
    )


async def test_rotate_token_needs_covering_what_the_token_can_do(world: World) -> None:
    account = account_created()
    unscoped, read_only = (
        token_issued(account.account_id),
        token_issued(account.account_id, scopes=("identity:read",)),
    )
    await world.given(account, role_assigned(account, "Admin"), unscoped, read_only)
    await world.then_raises(
        Forbidden,
        RotateToken(account_id=account.account_id, token_id=unscoped.token_id),
        WRITER,
        match="identity:read",
    )
    await world.then_raises(
        Forbidden,
        RotateToken(account_id=account.account_id, token_id=read_only.token_id),
        WRITER,
        match="identity:read",
    )
    await world.when(RotateToken(account_id=account.account_id, token_id=read_only.token_id), caller("Admin"))
    assert len(world.then()) == 1


async def test_a_retried_rotation_returns_its_secret_until_rotated_again(world: World) -> None:
    account = account_created()
    token = token_issued(account.account_id, expires_at=T0 + DAY)
    await world.given(account, token)
    command = RotateToken(account_id=account.account_id, token_id=token.token_id, grace_period_seconds=60)
    first = await world.when(command, key="k")
    retry = await world.when(command, key="k")
    assert world.then() == []
    assert retry == first
    await world.when(
        RotateToken(account_id=account.account_id, token_id=token.token_id, grace_period_seconds=60)
    )
    assert await world.when(command, key="k") == first  # the replaced secret, in its grace period
    world.now = T0 + timedelta(minutes=2)
    await world.then_raises(SecretUnavailable, command, key="k", match="rotate")


async def test_a_retried_rotation_after_an_emergency_rotation_is_refused(world: World) -> None:
    account = account_created()
    token = token_issued(account.account_id, expires_at=T0 + DAY)
    await world.given(account, token)
    command = RotateToken(account_id=account.account_id, token_id=token.token_id, grace_period_seconds=60)
    await world.when(command, key="k")
    await world.when(RotateToken(account_id=account.account_id, token_id=token.token_id))
    await world.then_raises(SecretUnavailable, command, key="k")


async def test_a_retried_rotation_is_authorised_again(world: World) -> None:
    account = account_created()
    token = token_issued(account.account_id, expires_at=T0 + DAY)
    await world.given(account, token)
    command = RotateToken(account_id=account.account_id, token_id=token.token_id)
    await world.when(command, key="k")
    await world.given(role_assigned(account, "Auditor"))
    await world.then_raises(Forbidden, command, key="k", match="Auditor")


async def test_a_retried_rotation_of_a_deleted_token_is_refused(world: World) -> None:
    account = account_created()
    token = token_issued(account.account_id, expires_at=T0 + DAY)
    await world.given(account, token)
    command = RotateToken(account_id=account.account_id, token_id=token.token_id)
    await world.when(command, key="k")
    await world.when(DeleteToken(account_id=account.account_id, token_id=token.token_id))
    await world.then_raises(Superseded, command, key="k")


# -- DeleteToken --------------------------------------------------------------------------------


async def test_delete_token_revokes_then_deletes_and_frees_the_name(world: World) -> None:
    account = account_created()
    token = token_issued(account.account_id, "deploy")
    await world.given(account, token)
    outcome = await world.when(DeleteToken(account_id=account.account_id, token_id=token.token_id))
    stream = _token(token.token_id)
    assert world.then() == [
        (stream, TokenRevoked(token_id=token.token_id, account_id=account.account_id, reason="deleted")),
        (stream, TokenDeleted(token_id=token.token_id, account_id=account.account_id)),
    ]
    assert not outcome.state.visible
    assert f"token-name:{account.account_id}:deploy" not in await world.claims()
    await world.when(_issue(account.account_id, "deploy"))
    assert len(world.then()) == 1


async def test_deleting_a_revoked_token_only_deletes_it(world: World) -> None:
    account = account_created()
    token = token_issued(account.account_id)
    await world.given(
        account, token, TokenRevoked(token_id=token.token_id, account_id=account.account_id, reason="revoked")
    )
    await world.when(DeleteToken(account_id=account.account_id, token_id=token.token_id))
    assert world.then() == [
        (_token(token.token_id), TokenDeleted(token_id=token.token_id, account_id=account.account_id))
    ]


async def test_delete_token_refuses_a_missing_token(world: World) -> None:
    account, other = account_created(), account_created()
    token = token_issued(account.account_id)
    await world.given(account, other, token)
    await world.then_raises(NotFound, DeleteToken(account_id=account.account_id, token_id="nope"))
    await world.then_raises(NotFound, DeleteToken(account_id=other.account_id, token_id=token.token_id))
    await world.when(DeleteToken(account_id=account.account_id, token_id=token.token_id))
    await world.then_raises(NotFound, DeleteToken(account_id=account.account_id, token_id=token.token_id))


async def test_a_retried_delete_token_appends_nothing_and_answers_as_before(world: World) -> None:
    account = account_created()
    token = token_issued(account.account_id)
    await world.given(account, token)
    command = DeleteToken(account_id=account.account_id, token_id=token.token_id)
    first = await world.when(command, key="k")
    retry = await world.when(command, key="k")
    assert world.then() == []
    assert retry == first


# -- the tokens of a deleted account ------------------------------------------------------------


async def test_the_tokens_of_a_deleted_account_are_not_found_as_the_account(world: World) -> None:
    """Its deletion revoked them and released their names: renaming, revoking, rotating or deleting
    one is refused as the account is, not carried out on a token nobody can reach."""
    account = account_created()
    token = token_issued(account.account_id, "deploy")
    await world.given(account, token)
    await world.when(DeleteAccount(account_id=account.account_id))
    ids = {"account_id": account.account_id, "token_id": token.token_id}
    for command in (
        RenameToken(**ids, name="other"),
        RevokeToken(**ids),
        RotateToken(**ids),
        DeleteToken(**ids),
    ):
        await world.then_raises(NotFound, command, match="system account not found")


async def test_a_retried_rename_after_the_accounts_deletion_is_superseded(world: World) -> None:
    account = account_created()
    token = token_issued(account.account_id, "old")
    await world.given(account, token)
    command = RenameToken(account_id=account.account_id, token_id=token.token_id, name="new")
    await world.when(command, key="k")
    await world.when(DeleteAccount(account_id=account.account_id))
    await world.then_raises(Superseded, command, key="k")


async def test_a_retried_rotation_after_the_accounts_deletion_is_refused(world: World) -> None:
    account = account_created()
    token = token_issued(account.account_id, expires_at=T0 + DAY)
    await world.given(account, role_assigned(account, "Admin"), token)
    command = RotateToken(account_id=account.account_id, token_id=token.token_id)
    await world.when(command, key="k")
    await world.when(DeleteAccount(account_id=account.account_id))
    await world.then_raises(SecretUnavailable, command, key="k")


async def test_a_retried_revoke_or_delete_after_the_accounts_deletion_answers_as_before(
    world: World,
) -> None:
    """What they did (a revocation, a deletion) still holds once the account is gone."""
    account = account_created()
    revoked, deleted = token_issued(account.account_id), token_issued(account.account_id)
    await world.given(account, revoked, deleted)
    revoke = RevokeToken(account_id=account.account_id, token_id=revoked.token_id)
    delete = DeleteToken(account_id=account.account_id, token_id=deleted.token_id)
    first_revoke, first_delete = await world.when(revoke, key="r"), await world.when(delete, key="d")
    await world.when(DeleteAccount(account_id=account.account_id))
    assert await world.when(revoke, key="r") == first_revoke
    assert await world.when(delete, key="d") == first_delete
    assert world.then() == []
