"""The deployment's organization: created once, on first start, as the first event of the log."""

import uuid
from datetime import UTC, datetime

import msgspec

from events import Metadata, NewEvent
from events.organization import OrganizationCreated
from services.ports import EventStore, StreamState, WrongExpectedVersion

STREAM = "organization"
DEFAULT_NAME = "tokenledger"


class Organization(msgspec.Struct, frozen=True, kw_only=True):
    organization_id: str
    name: str
    created_at: datetime


async def ensure_organization(store: EventStore) -> Organization:
    """Reads the organization, creating it if this is the first start (safe when several
    processes start at once: one append wins, the others read it)."""
    for _ in range(2):
        history = await store.read_stream(STREAM)
        if history:
            created = history[0]
            assert isinstance(created.event, OrganizationCreated)
            return Organization(
                organization_id=created.event.organization_id,
                name=created.event.name,
                created_at=created.metadata.occurred_at,
            )
        event = OrganizationCreated(organization_id=str(uuid.uuid4()), name=DEFAULT_NAME)
        metadata = Metadata(occurred_at=datetime.now(UTC), actor="system:bootstrap")
        try:
            await store.append(STREAM, [NewEvent(event=event, metadata=metadata)], StreamState.NO_STREAM)
        except WrongExpectedVersion:
            continue
    raise RuntimeError("the organization stream could not be read or created")
