"""``Idempotency-Key`` at the HTTP door: the header, validated and bounded, and nothing more.

``idempotency_key(request)`` returns the header (``services.idempotency_claims.key_problem``) or
None, or refuses a bad one with a 400 naming the header. The command routes hand it to the
dispatcher through ``services.api.context.execute``, which claims the key, scopes it to the caller's
credential and the command, and ends the claim (``services.dispatch``); the refusals of a second run
under a key are domain errors, answered by ``services.api.domain_errors`` (409 while a run is
pending, 422 for another command). Reads, GETs and POST reads such as introspection, never look at
the header: a key on them changes nothing.
"""

from aiohttp import web

from services.api.problems import BadRequest, InvalidParameter
from services.idempotency_claims import MAX_KEY_LENGTH, key_problem

HEADER = "Idempotency-Key"


def idempotency_key(request: web.Request) -> str | None:
    """The ``Idempotency-Key`` header, or None when absent; 400 when blank, longer than 255
    characters, or holding a character that is not printable (control characters, bytes that are
    not UTF-8)."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    match key_problem(key):
        case None:
            return key
        case "blank":
            problem = InvalidParameter(HEADER, "cannot be blank", "min_length", "header", minimum=1)
        case "too_long":
            reason = f"must not have more than {MAX_KEY_LENGTH} characters"
            problem = InvalidParameter(HEADER, reason, "max_length", "header", maximum=MAX_KEY_LENGTH)
        case _:
            reason = "must hold printable UTF-8 characters only"
            problem = InvalidParameter(HEADER, reason, "invalid", "header")
    raise BadRequest([problem])
