"""Value helpers shared by the read models, so that the SQL path and the in-memory fold of a read model
turn an event's fields into exactly the same column values.

Ids are normalised to the canonical UUID text (what PostgreSQL's ``uuid`` type prints), so a fold that
compares ids as strings agrees with the database comparing them as ``uuid``; an id that is not a UUID
raises ``ValueError`` in the reducer, which the runtime reports as a poison event.
"""

import re
import uuid
from datetime import datetime
from typing import Any

import msgspec

_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_json = msgspec.json.Encoder(order="sorted")


def uid(value: str) -> str:
    """``value`` as a canonical, lower-case UUID string; ``ValueError`` when it is not a UUID."""
    if _CANONICAL_UUID.fullmatch(value):
        return value
    return str(uuid.UUID(value))


def json_text(value: Any) -> str:
    """The JSON text of a ``jsonb`` column (keys sorted, so equal values give equal text)."""
    return _json.encode(value).decode()


def later(current: datetime | None, candidate: datetime | None) -> datetime | None:
    """PostgreSQL's ``greatest(current, candidate)``: NULLs are ignored, NULL only when both are."""
    if current is None:
        return candidate
    if candidate is None:
        return current
    return candidate if candidate > current else current
