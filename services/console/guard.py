"""The console's middleware: the session and its token on every request, CSRF on every form, the
headers of every response, and errors shown as pages.

For every page but sign-in and the static assets:

1. the session cookie must name a live session (``services.console.sessions``), else the browser is
   sent to sign in (nothing else happens);
2. the session's token is verified again, by its hash, through the same verifier as the API
   (``TokenVerifier.check_hash``): a token revoked, expired or rotated out, or an account disabled
   or deleted, ends the session there and then. The verification is recorded in the usage log as
   every API verification is (``out_of_scope`` or ``no_right`` when a page refused the token a right);
3. a POST must carry the session's CSRF token in its ``csrf`` field, else 403 and nothing is done.
   Every form but sign-out sends a command, and its handler first asks the dispatcher whether the
   token may send it at all (``context.admit``): a Viewer's forged form is a 403.

Every response carries ``Cache-Control: no-store`` (pages hold identity data and, once, a secret),
a Content-Security-Policy that allows scripts, styles and images from the console itself only (no
inline script or style), and refuses framing. A refusal (the API's problem: 400, 403, 404, 409...)
is rendered as a page with the problem's title, detail and invalid parameters.
"""

import logging

from aiohttp import web

from services.api.context import PRINCIPAL, REFUSAL
from services.api.domain_errors import contention_problem, domain_problem
from services.api.problems import Forbidden, Handler, ProblemError, UnsupportedMediaType
from services.auth.principal import Principal
from services.console.context import (
    FORM,
    VIEWER,
    invalid,
    now,
    options,
    organization_id,
    problem_page,
    read_pool,
    usage,
    verifier,
    viewer_of,
)
from services.console.sessions import SessionStore, csrf_matches
from services.ports import WrongExpectedVersion

PREFIX = "/console"
SESSION_COOKIE = "tl_console"
SIGN_IN_COOKIE = "tl_console_sign_in"
"""The sign-in form's CSRF token (double submit): there is no session yet to derive it from."""
CSRF_FIELD = "csrf"
FORM_TYPE = "application/x-www-form-urlencoded"
SIGN_IN_PATH = PREFIX + "/sign-in"
PUBLIC_PREFIXES = (SIGN_IN_PATH, PREFIX + "/static/")

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self';"
    " form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
_log = logging.getLogger(__name__)


def sessions(request: web.Request) -> SessionStore:
    return SessionStore(read_pool(request), options(request).sessions)


def set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str) -> None:
    response.set_cookie(name, value, path=PREFIX, httponly=True, samesite="Strict", secure=request.secure)


def to_sign_in(request: web.Request, *, ended: bool) -> web.Response:
    """A 303 to the sign-in page; ``ended`` says a session was there and is over (the cookie goes)."""
    response = web.Response(status=303, headers={"Location": SIGN_IN_PATH + ("?ended=1" if ended else "")})
    if ended:
        response.del_cookie(SESSION_COOKIE, path=PREFIX)
    return response


def _operation(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return f"{request.method} {resource.canonical if resource else request.path}"


async def _form_csrf(request: web.Request) -> str:
    """Reads the posted form (the console's forms are URL-encoded, never multipart) and returns
    its ``csrf`` field."""
    if request.content_type != FORM_TYPE:
        raise UnsupportedMediaType(f"The request body must be {FORM_TYPE}")
    try:
        form = await request.post()
    except ValueError:  # not UTF-8
        raise invalid("body", "must be a form of UTF-8 text") from None
    request[FORM] = form
    value = form.get(CSRF_FIELD)
    return value if isinstance(value, str) else ""


def _refused_form() -> Forbidden:
    return Forbidden("The form's CSRF token is missing or wrong: reload the page and try again")


async def check_sign_in_form(request: web.Request) -> None:
    """The sign-in form's double-submitted CSRF token (its cookie and its field) must agree."""
    presented = await _form_csrf(request)
    expected = request.cookies.get(SIGN_IN_COOKIE, "")
    if not expected or not presented or not csrf_matches(expected, presented):
        raise _refused_form()


async def _signed_in(request: web.Request, handler: Handler) -> web.StreamResponse:
    store = sessions(request)
    cookie = request.cookies.get(SESSION_COOKIE, "")
    at = now(request)
    session = await store.find(cookie, at) if cookie else None
    if session is None:
        return to_sign_in(request, ended=bool(cookie))
    verification = await verifier(request).check_hash(session.secret_hash, at)
    client_address, user_agent = request.remote, request.headers.get("User-Agent")
    if not isinstance(verification.verdict, Principal):
        usage(request).record_verification(
            verification, at, _operation(request), client_address=client_address, user_agent=user_agent
        )
        await store.end(session.session_id)
        return to_sign_in(request, ended=True)
    request[PRINCIPAL] = verification.verdict  # the access log names the caller, as for the API
    request[VIEWER] = viewer_of(verification.verdict, session, organization_id(request))
    try:
        if request.method == "POST" and not csrf_matches(session.session_id, await _form_csrf(request)):
            raise _refused_form()
        return await handler(request)
    finally:
        usage(request).record_verification(
            verification,
            at,
            _operation(request),
            client_address=client_address,
            user_agent=user_agent,
            refusal=request.get(REFUSAL),
        )


def _problem(error: Exception) -> ProblemError | None:
    if isinstance(error, WrongExpectedVersion):
        return contention_problem()
    if isinstance(error, web.HTTPClientError):  # 404, 405, 413 (a form over the body limit)...
        return ProblemError(error.status, error.reason)
    return domain_problem(error)


@web.middleware
async def console_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        if request.path.startswith(PUBLIC_PREFIXES):
            response = await handler(request)
        else:
            response = await _signed_in(request, handler)
    except Exception as error:
        problem = _problem(error)
        if problem is None:
            raise
        response = problem_page(request, problem)
    response.headers.update(HEADERS)
    return response
