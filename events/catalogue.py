"""Every event type the log may hold, registered under its tag."""

from events.accounts import ACCOUNT_EVENTS
from events.federation import FEDERATION_EVENTS
from events.organization import ORGANIZATION_EVENTS
from events.registry import register
from events.teams import TEAM_EVENTS
from events.tokens import TOKEN_EVENTS

ALL_EVENTS = (*ORGANIZATION_EVENTS, *ACCOUNT_EVENTS, *FEDERATION_EVENTS, *TOKEN_EVENTS, *TEAM_EVENTS)

register(ALL_EVENTS)
