"""Domain errors (``services.commands``) as problems: the one mapping from the command side's
vocabulary to HTTP, used by the error middleware.

A command that lost the race for its stream more often than its retry budget allows
(``WrongExpectedVersion`` out of ``with_retries``, e.g. many parallel rotations of one token) wrote
nothing and may simply be sent again: it is a 409 with ``Retry-After`` (``contention_problem``).
So is a command whose idempotency key is held by a run still pending (``KeyInProgress``); a key
already used with another command (``KeyReused``) is a 422 naming the header.
"""

from typing import cast

from aiohttp import web

from services.api.idempotency import HEADER
from services.api.problems import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidParameter,
    InvalidRule,
    NotFound,
    ProblemError,
    UnprocessableEntity,
)
from services.api.problems import Handler as Handler
from services.commands import Conflict as DomainConflict
from services.commands import Forbidden as DomainForbidden
from services.commands import Invalid
from services.commands import NotFound as DomainNotFound
from services.idempotency_claims import KeyInProgress, KeyReused
from services.ports import WrongExpectedVersion

CONTENTION_RETRY_AFTER_SECONDS = 1


def domain_problem(error: Exception) -> ProblemError | None:
    match error:
        case ProblemError():
            return error
        case KeyInProgress():
            return Conflict(f"a request with this {HEADER} is in progress", headers={"Retry-After": "1"})
        case KeyReused():
            return UnprocessableEntity(
                f"The {HEADER} header was already used with a different request",
                [InvalidParameter(HEADER, "was already used with a different request", "invalid", "header")],
            )
        case DomainNotFound():
            return NotFound(str(error))
        case DomainConflict():
            return Conflict(str(error))
        case DomainForbidden():
            return Forbidden(str(error))
        case Invalid():
            # Konnect's "enum" item requires its choices; without them the rule is plain "invalid".
            rule = cast(InvalidRule, error.rule if error.rule != "enum" or error.choices else "invalid")
            choices = error.choices if rule == "enum" else None
            return BadRequest(
                [
                    InvalidParameter(
                        field=error.field, reason=error.reason, rule=rule, source="body", choices=choices
                    )
                ]
            )
    return None


def contention_problem() -> Conflict:
    """409 for a command that kept losing the race for its stream; it changed nothing."""
    detail = "Other requests changed this resource at the same time; nothing was changed, retry"
    return Conflict(detail, headers={"Retry-After": str(CONTENTION_RETRY_AFTER_SECONDS)})


@web.middleware
async def domain_error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Install inside ``problem_middleware``: a domain error raised by a handler becomes its problem."""
    try:
        return await handler(request)
    except (DomainNotFound, DomainConflict, DomainForbidden, Invalid, KeyInProgress, KeyReused) as error:
        problem = domain_problem(error)
        assert problem is not None
        raise problem from None
    except WrongExpectedVersion:
        raise contention_problem() from None
