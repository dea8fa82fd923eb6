"""Signing in (a token pasted once, verified, then forgotten: the session keeps its hash) and out."""

import secrets

from aiohttp import web

from services.auth.principal import Principal
from services.authorization import Right
from services.console.context import (
    FORM,
    now,
    page,
    redirect,
    usage,
    verifier,
    viewer,
)
from services.console.guard import (
    PREFIX,
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    SIGN_IN_PATH,
    check_sign_in_form,
    sessions,
    set_cookie,
)
from services.console.sessions import SESSION_ID_PATTERN, csrf_token

MAX_TOKEN_FIELD = 512


def _form(request: web.Request, *, failed: bool = False, status: int = 200) -> web.Response:
    """The sign-in form; its CSRF cookie is kept when the browser has one (two tabs of the form
    both work), else drawn."""
    kept = request.cookies.get(SIGN_IN_COOKIE, "")
    nonce = kept if SESSION_ID_PATTERN.fullmatch(kept) else secrets.token_urlsafe(32)
    response = page(
        request,
        "sign_in.html",
        {"csrf": csrf_token(nonce), "failed": failed, "ended": request.query.get("ended") == "1"},
        status=status,
    )
    set_cookie(request, response, SIGN_IN_COOKIE, nonce)
    return response


async def sign_in_form(request: web.Request) -> web.Response:
    return _form(request)


async def sign_in(request: web.Request) -> web.Response:
    """Verifies the pasted token; a session of it on success. Every failure reads the same (as the
    API's 401), and the attempt is in the usage log like any verification."""
    await check_sign_in_form(request)
    field = request[FORM].get("token")
    presented = field.strip() if isinstance(field, str) and len(field) <= MAX_TOKEN_FIELD else ""
    at = now(request)
    verification = await verifier(request).check(presented, at)
    operation = f"POST {SIGN_IN_PATH}"
    client_address, user_agent = request.remote, request.headers.get("User-Agent")
    usage(request).record_verification(
        verification,
        at,
        operation,
        presented=presented if not isinstance(verification.verdict, Principal) else "",
        client_address=client_address,
        user_agent=user_agent,
    )
    principal = verification.verdict
    if not isinstance(principal, Principal):
        return _form(request, failed=True, status=401)
    store = sessions(request)
    await store.end(request.cookies.get(SESSION_COOKIE, ""))  # a sign-in never extends another session
    session_id = await store.open(
        principal.token_id, principal.account_id, verifier(request).hash_of(presented), at
    )
    response = redirect(PREFIX + "/")
    set_cookie(request, response, SESSION_COOKIE, session_id)
    response.del_cookie(SIGN_IN_COOKIE, path=PREFIX)
    return response


async def sign_out(request: web.Request) -> web.Response:
    await sessions(request).end(request.cookies.get(SESSION_COOKIE, ""))
    response = redirect(SIGN_IN_PATH)
    response.del_cookie(SESSION_COOKIE, path=PREFIX)
    return response


LANDINGS = ((Right.ACCOUNTS_READ, "/accounts"), (Right.AUDIT, "/audit"), (Right.TEAMS_READ, "/teams"))


async def home(request: web.Request) -> web.Response:
    """The first page the token may read: the accounts, else the audit log (an Auditor's), else the
    teams, else the role catalogue (which every token may read)."""
    may = viewer(request).can
    return redirect(PREFIX + next((path for right, path in LANDINGS if may(right)), "/roles"))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", home)
    app.router.add_get("/sign-in", sign_in_form)
    app.router.add_post("/sign-in", sign_in)
    app.router.add_post("/sign-out", sign_out)
