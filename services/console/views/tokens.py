"""An account's tokens: issue (expiry presets or a date, "never" only where the deployment allows
it, scopes, sliding expiry), rotate (with a grace period), revoke, rename, delete. Issue and rotate
answer with the account page and its one-time secret panel."""

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from aiohttp import web

from services.api.routes.tokens import (
    CreateAccessToken,
    RevokeAccessToken,
    RotateAccessToken,
    UpdateAccessToken,
)
from services.console.context import (
    FORM,
    act,
    admit,
    decoded,
    form_text,
    invalid,
    now,
    redirect,
)
from services.console.views.accounts import account_page_with_secret, account_path, path_uuid
from services.tokens.commands import DeleteToken, IssueToken, RenameToken, RevokeToken, RotateToken

EXPIRY_PRESETS = {"30": 30, "60": 60, "90": 90, "365": 365}
GRACE_PRESETS = {"0": 0, "3600": 3600, "86400": 86400, "604800": 604800}
MAX_SLIDING_DAYS = 3650
FORM_LIFETIME = timedelta(days=1)


def _day(field: str, raw: str | None) -> datetime:
    """A date of the form (``YYYY-MM-DD``) as the start of that day in UTC."""
    try:
        return datetime.combine(date.fromisoformat(raw or ""), time(), tzinfo=UTC)
    except ValueError:
        raise invalid(field, "must be a date (YYYY-MM-DD)", "is_date_time") from None


def _preset_base(request: web.Request, now: datetime) -> datetime:
    """What "in N days" counts from: the instant the form was rendered (its ``expiry_from``), so a
    form sent twice asks for the very same token and its retry is answered with the same secret.
    A form older than ``FORM_LIFETIME`` is refused; without the field, now."""
    raw = form_text(request, "expiry_from")
    if raw is None:
        return now
    try:
        base = datetime.fromisoformat(raw)
    except ValueError:
        raise invalid("expiry_from", "must be the form's own value: reload the page") from None
    if base.tzinfo is None or not now - FORM_LIFETIME <= base <= now + timedelta(minutes=1):
        raise invalid("expiry_from", "this form is too old: reload the page")
    return base


def _expires_at(request: web.Request, now: datetime) -> str | None:
    expiry = form_text(request, "expiry") or ""
    if expiry in EXPIRY_PRESETS:
        return (_preset_base(request, now) + timedelta(days=EXPIRY_PRESETS[expiry])).isoformat()
    if expiry == "date":
        return _day("expires_on", form_text(request, "expires_on")).isoformat()
    if expiry == "never":
        return None  # the domain policy refuses it where the deployment does not allow it
    raise invalid("expiry", "must be one of 30, 60, 90, 365, date or never", "invalid")


def _sliding(request: web.Request) -> dict[str, Any]:
    raw = (form_text(request, "auto_extend_days") or "").strip()
    if not raw:
        return {}
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_SLIDING_DAYS:
        reason = f"must be a whole number of days from 1 to {MAX_SLIDING_DAYS}"
        raise invalid("auto_extend_days", reason)
    fields: dict[str, Any] = {"auto_extend_seconds": int(raw) * 86400}
    if form_text(request, "max_expires_on"):
        fields["max_expires_at"] = _day("max_expires_on", form_text(request, "max_expires_on")).isoformat()
    return fields


async def issue(request: web.Request) -> web.Response:
    admit(request, IssueToken)
    account_id = path_uuid(request, "accountId", "system account")
    scopes = [value for value in request[FORM].getall("scopes", []) if isinstance(value, str)]
    body = decoded(
        {
            "name": form_text(request, "name") or "",
            "expires_at": _expires_at(request, now(request)),
            "scopes": scopes or None,
            **_sliding(request),
        },
        CreateAccessToken,
    )
    command = IssueToken(
        account_id=account_id,
        name=body.name,
        expires_at=body.expires_at,
        scopes=tuple(body.scopes) if body.scopes is not None else None,
        auto_extend_seconds=body.auto_extend_seconds,
        max_expires_at=body.max_expires_at,
    )
    outcome = await act(request, command)
    return await account_page_with_secret(request, account_id, outcome.state)


async def rotate(request: web.Request) -> web.Response:
    admit(request, RotateToken)
    account_id = path_uuid(request, "accountId", "system account")
    token_id = path_uuid(request, "tokenId", "access token")
    grace = form_text(request, "grace_period_seconds") or "0"
    if grace not in GRACE_PRESETS:
        raise invalid("grace_period_seconds", "must be one of the offered grace periods")
    body = decoded({"grace_period_seconds": GRACE_PRESETS[grace]}, RotateAccessToken)
    command = RotateToken(
        account_id=account_id, token_id=token_id, grace_period_seconds=body.grace_period_seconds
    )
    outcome = await act(request, command)
    return await account_page_with_secret(request, account_id, outcome.state)


async def revoke(request: web.Request) -> web.Response:
    admit(request, RevokeToken)
    account_id = path_uuid(request, "accountId", "system account")
    token_id = path_uuid(request, "tokenId", "access token")
    reason = (form_text(request, "reason") or "").strip()
    body = decoded({"reason": reason} if reason else {}, RevokeAccessToken)
    await act(request, RevokeToken(account_id=account_id, token_id=token_id, reason=body.reason))
    return redirect(account_path(account_id, "revoked"))


async def rename(request: web.Request) -> web.Response:
    admit(request, RenameToken)
    account_id = path_uuid(request, "accountId", "system account")
    token_id = path_uuid(request, "tokenId", "access token")
    body = decoded({"name": form_text(request, "name") or ""}, UpdateAccessToken)
    await act(request, RenameToken(account_id=account_id, token_id=token_id, name=body.name))
    return redirect(account_path(account_id, "renamed"))


async def delete(request: web.Request) -> web.Response:
    admit(request, DeleteToken)
    account_id = path_uuid(request, "accountId", "system account")
    token_id = path_uuid(request, "tokenId", "access token")
    await act(request, DeleteToken(account_id=account_id, token_id=token_id))
    return redirect(account_path(account_id, "token-deleted"))


async def issued_address(request: web.Request) -> web.Response:
    """The address a browser without JavaScript shows after issuing: reloaded, it is the account."""
    return redirect(account_path(path_uuid(request, "accountId", "system account")))


def add_routes(app: web.Application) -> None:
    base = "/accounts/{accountId}/tokens"
    app.router.add_get(base, issued_address)
    app.router.add_post(base, issue)
    app.router.add_post(base + "/{tokenId}/rotate", rotate)
    app.router.add_post(base + "/{tokenId}/revoke", revoke)
    app.router.add_post(base + "/{tokenId}/rename", rename)
    app.router.add_post(base + "/{tokenId}/delete", delete)
