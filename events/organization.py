"""The deployment's organization (stream ``organization``): the entity tokenledger's own Identity
roles are granted on. It is in the log so that a log restored elsewhere keeps every grant valid."""

from events.base import Event


class OrganizationCreated(Event, frozen=True, tag="organization.created"):
    organization_id: str
    name: str


ORGANIZATION_EVENTS: tuple[type[Event], ...] = (OrganizationCreated,)
