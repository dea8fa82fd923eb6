"""Which log events go to Kafka, and how each becomes a CloudEvents 1.0 record (binary content mode).

Pure: no I/O. ``to_record`` maps a recorded event to the record the relay publishes (or None when the
event type is not published); ``from_record`` is the way back, for consumers.

A record's headers are ``ce_specversion``, ``ce_id`` (the log's event id: stable across re-sends, so
consumers de-duplicate on it), ``ce_source`` (the deployment's URI), ``ce_type``
(``io.tokenledger.<tag>``), ``ce_subject`` (the token, account or team id), ``ce_time`` (when it
happened), ``ce_partitionkey`` (= the record key) and ``content-type: application/json``. The key
is the account id (the team id for ``team.*`` events), so one account's events stay in log order on
one partition. The value is the event's public data: its fields without private ones (never a secret
hash) and without the ``type`` tag, which ``ce_type`` carries.
"""

import enum
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from events import RecordedEvent, public_data

SPEC_VERSION = "1.0"
TYPE_PREFIX = "io.tokenledger."
CONTENT_TYPE = "application/json"

Headers = list[tuple[str, bytes]]


class Channel(enum.Enum):
    """The topic (by role; names are configurable) an event type is published on."""

    TOKENS = "tokens"
    ACCOUNTS = "accounts"


PUBLISHED: Mapping[str, Channel] = {
    **{
        f"token.{name}": Channel.TOKENS
        for name in (
            "issued",
            "renamed",
            "rotated",
            "secret_retired",
            "extended",
            "revoked",
            "deleted",
            "expired",
            "expiring_soon",
            "rotation_due",
        )
    },
    **{
        f"account.{name}": Channel.ACCOUNTS
        for name in (
            "created",
            "updated",
            "disabled",
            "enabled",
            "deleted",
            "role_assigned",
            "role_unassigned",
            "expired",
            "expiring_soon",
            "federated_credential_created",
            "federated_credential_updated",
            "federated_credential_deleted",
        )
    },
    **{
        f"team.{name}": Channel.ACCOUNTS
        for name in (
            "created",
            "updated",
            "deleted",
            "member_added",
            "member_removed",
            "role_assigned",
            "role_unassigned",
        )
    },
}
"""Every published event type. The rest stay in the log: see ``NOT_PUBLISHED``."""

NOT_PUBLISHED: Mapping[str, str] = {
    "token.used": "usage history: high volume and of no use to a downstream verifier",
    "organization.created": "the deployment's own bookkeeping, written once",
}
"""Event types the relay deliberately leaves out, and why (a unit test checks that every registered
type is in exactly one of the two maps, so a new event type needs a decision)."""


class Topics(msgspec.Struct, frozen=True, kw_only=True):
    """The configured topic name of each channel."""

    tokens: str
    accounts: str

    def name(self, channel: Channel) -> str:
        return self.tokens if channel is Channel.TOKENS else self.accounts

    def all(self) -> list[str]:
        return [self.tokens, self.accounts]


class CloudEventRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One Kafka record, ready to send."""

    topic: str
    key: bytes
    value: bytes
    headers: Headers


class NotACloudEvent(ValueError):
    """A record without the headers of a CloudEvent in binary mode."""


class CloudEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A published event as a consumer reads it back from a record."""

    id: str
    type: str
    source: str
    subject: str
    time: str
    key: str
    data: dict[str, Any]

    @property
    def tag(self) -> str:
        """The log's event tag (``token.revoked`` for ``io.tokenledger.token.revoked``)."""
        return self.type.removeprefix(TYPE_PREFIX)


_encoder = msgspec.json.Encoder()
_data_decoder = msgspec.json.Decoder(dict[str, Any])


def cloud_event_type(tag: str) -> str:
    return TYPE_PREFIX + tag


def _text(event_data: Mapping[str, Any], field: str) -> str:
    value = event_data[field]
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a string, got {type(value).__name__}")
    return value


def subject_and_key(tag: str, event_data: Mapping[str, Any]) -> tuple[str, str]:
    """The CloudEvent subject and the record key of a published event type."""
    aggregate = tag.partition(".")[0]
    if aggregate == "token":
        return _text(event_data, "token_id"), _text(event_data, "account_id")
    if aggregate == "account":
        account_id = _text(event_data, "account_id")
        return account_id, account_id
    team_id = _text(event_data, "team_id")
    return team_id, team_id


def rfc3339(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def to_record(recorded: RecordedEvent, topics: Topics, source: str) -> CloudEventRecord | None:
    """The record that publishes ``recorded``; None for an event type that is not published."""
    channel = PUBLISHED.get(recorded.type)
    if channel is None:
        return None
    data = public_data(recorded.event)
    data.pop("type", None)
    subject, key = subject_and_key(recorded.type, data)
    headers: Headers = [
        ("ce_specversion", SPEC_VERSION.encode()),
        ("ce_id", str(recorded.event_id).encode()),
        ("ce_source", source.encode()),
        ("ce_type", cloud_event_type(recorded.type).encode()),
        ("ce_subject", subject.encode()),
        ("ce_time", rfc3339(recorded.metadata.occurred_at).encode()),
        ("ce_partitionkey", key.encode()),
        ("content-type", CONTENT_TYPE.encode()),
    ]
    return CloudEventRecord(
        topic=topics.name(channel), key=key.encode(), value=_encoder.encode(data), headers=headers
    )


_REQUIRED = ("ce_specversion", "ce_id", "ce_source", "ce_type", "ce_subject", "ce_time")


def from_record(key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> CloudEvent:
    """Reads a record published by the relay; raises NotACloudEvent for anything else."""
    found = {name: raw.decode() for name, raw in headers}
    missing = [name for name in _REQUIRED if name not in found]
    if missing:
        raise NotACloudEvent(f"missing header(s) {', '.join(missing)}")
    if found["ce_specversion"] != SPEC_VERSION:
        raise NotACloudEvent(f"unsupported CloudEvents version {found['ce_specversion']!r}")
    try:
        uuid.UUID(found["ce_id"])
        data = _data_decoder.decode(value or b"")
    except (ValueError, msgspec.DecodeError) as error:
        raise NotACloudEvent(str(error)) from None
    return CloudEvent(
        id=found["ce_id"],
        type=found["ce_type"],
        source=found["ce_source"],
        subject=found["ce_subject"],
        time=found["ce_time"],
        key=(key or b"").decode(),
        data=data,
    )
