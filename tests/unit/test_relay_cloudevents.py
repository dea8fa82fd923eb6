"""The CloudEvents mapping of the Kafka relay and the pure parts of the reference subscriber."""

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import msgspec
import pytest

from events import Event, Metadata, RecordedEvent, event_type, registered_tags
from events.accounts import AccountCreated, AccountRoleAssigned
from events.organization import OrganizationCreated
from events.teams import TeamMemberAdded
from events.tokens import TokenIssued, TokenRevoked, TokenRotated, TokenUsed
from services.relay.cloudevents import (
    NOT_PUBLISHED,
    PUBLISHED,
    NotACloudEvent,
    Topics,
    from_record,
    to_record,
)
from services.relay.subscriber import RecentIds, UnknownEventType, topics_for, wanted_tags

TOPICS = Topics(tokens="t.tokens", accounts="t.accounts")
SOURCE = "https://ledger.example.com"
OCCURRED = datetime(2025, 3, 4, 5, 6, 7, 890000, tzinfo=timezone(timedelta(hours=2)))


def recorded(event: Event, event_id: uuid.UUID | None = None) -> RecordedEvent:
    return RecordedEvent(
        global_position=7,
        tx_id=99,
        stream_id="s",
        stream_version=1,
        event_id=event_id or uuid.uuid4(),
        event=event,
        metadata=Metadata(occurred_at=OCCURRED, actor="system:tests"),
        recorded_at=OCCURRED,
    )


def test_every_event_type_is_either_published_or_left_out_on_purpose() -> None:
    tags = set(registered_tags())
    assert set(PUBLISHED) | set(NOT_PUBLISHED) == tags
    assert not set(PUBLISHED) & set(NOT_PUBLISHED)


def test_the_token_lifecycle_goes_to_the_tokens_topic_and_the_rest_to_the_accounts_topic() -> None:
    for tag in ("issued", "rotated", "revoked", "expired", "expiring_soon", "rotation_due"):
        assert PUBLISHED[f"token.{tag}"].value == "tokens"
    for tag in ("secret_retired", "deleted", "extended"):
        assert PUBLISHED[f"token.{tag}"].value == "tokens"
    assert {tag for tag, channel in PUBLISHED.items() if channel.value == "accounts"} == {
        tag for tag in registered_tags() if tag.startswith(("account.", "team."))
    }


def test_a_revocation_becomes_a_binary_mode_cloud_event_keyed_by_account() -> None:
    event_id = uuid.uuid4()
    record = to_record(
        recorded(TokenRevoked(token_id="tok", account_id="acc", reason="leaked"), event_id), TOPICS, SOURCE
    )
    assert record is not None
    assert record.topic == "t.tokens"
    assert record.key == b"acc"
    assert dict(record.headers) == {
        "ce_specversion": b"1.0",
        "ce_id": str(event_id).encode(),
        "ce_source": SOURCE.encode(),
        "ce_type": b"io.tokenledger.token.revoked",
        "ce_subject": b"tok",
        "ce_time": b"2025-03-04T03:06:07.890000Z",
        "ce_partitionkey": b"acc",
        "content-type": b"application/json",
    }
    assert json.loads(record.value) == {"token_id": "tok", "account_id": "acc", "reason": "leaked"}


@pytest.mark.parametrize(
    "event",
    [
        TokenIssued(token_id="tok", account_id="acc", name="n", secret_hash="SECRET-HASH", expires_at=None),
        TokenRotated(token_id="tok", account_id="acc", secret_hash="SECRET-HASH", secret_version=2),
    ],
)
def test_a_secret_hash_never_leaves_the_log(event: Event) -> None:
    record = to_record(recorded(event), TOPICS, SOURCE)
    assert record is not None
    assert b"SECRET-HASH" not in record.value
    assert all(b"SECRET-HASH" not in value for _, value in record.headers)
    assert "secret_hash" not in json.loads(record.value)


@pytest.mark.parametrize(
    "event",
    [
        TokenUsed(token_id="tok", account_id="acc", used_at=OCCURRED),
        OrganizationCreated(organization_id="org", name="org"),
    ],
)
def test_usage_and_organization_events_are_not_published(event: Event) -> None:
    assert to_record(recorded(event), TOPICS, SOURCE) is None


def test_account_events_have_the_account_as_subject_and_key() -> None:
    for event in (
        AccountCreated(account_id="acc", name="bot"),
        AccountRoleAssigned(
            account_id="acc",
            assignment_id="as",
            role_name="Viewer",
            entity_id="*",
            entity_type_name="Teams",
            entity_region="*",
        ),
    ):
        record = to_record(recorded(event), TOPICS, SOURCE)
        assert record is not None
        assert (record.topic, record.key, dict(record.headers)["ce_subject"]) == (
            "t.accounts",
            b"acc",
            b"acc",
        )


def test_team_events_are_keyed_by_team() -> None:
    record = to_record(recorded(TeamMemberAdded(team_id="team", account_id="acc")), TOPICS, SOURCE)
    assert record is not None
    assert (record.topic, record.key, dict(record.headers)["ce_subject"]) == ("t.accounts", b"team", b"team")
    assert json.loads(record.value) == {"team_id": "team", "account_id": "acc"}


def test_a_consumer_reads_back_what_the_relay_wrote() -> None:
    event_id = uuid.uuid4()
    record = to_record(
        recorded(TokenRevoked(token_id="tok", account_id="acc", reason="r"), event_id), TOPICS, SOURCE
    )
    assert record is not None
    event = from_record(record.key, record.value, record.headers)
    assert (event.id, event.type, event.tag, event.source, event.subject, event.key) == (
        str(event_id),
        "io.tokenledger.token.revoked",
        "token.revoked",
        SOURCE,
        "tok",
        "acc",
    )
    assert datetime.fromisoformat(event.time) == OCCURRED.astimezone(UTC)
    assert event.data == {"token_id": "tok", "account_id": "acc", "reason": "r"}


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [("ce_id", str(uuid.uuid4()).encode())],
        [
            ("ce_specversion", b"0.3"),
            ("ce_id", str(uuid.uuid4()).encode()),
            ("ce_source", b"s"),
            ("ce_type", b"t"),
            ("ce_subject", b"x"),
            ("ce_time", b"now"),
        ],
    ],
)
def test_records_that_are_not_our_cloud_events_are_refused(headers: list[tuple[str, bytes]]) -> None:
    with pytest.raises(NotACloudEvent):
        from_record(b"k", b"{}", headers)


def test_subscriber_types_accept_tags_or_cloud_event_types() -> None:
    assert wanted_tags(["token.revoked", "io.tokenledger.account.deleted"]) == {
        "token.revoked",
        "account.deleted",
    }
    assert wanted_tags([]) == set(PUBLISHED)
    with pytest.raises(UnknownEventType):
        wanted_tags(["token.used"])


def test_subscriber_reads_only_the_topics_of_the_chosen_types() -> None:
    assert topics_for({"token.revoked"}, TOPICS) == ["t.tokens"]
    assert topics_for({"team.created", "token.expired"}, TOPICS) == ["t.tokens", "t.accounts"]


def test_recent_ids_remember_a_bounded_window() -> None:
    recent = RecentIds(capacity=2)
    assert recent.first_time("a") and recent.first_time("b")
    assert not recent.first_time("a")
    assert recent.first_time("c")  # forgets "b", the least recently seen
    assert recent.first_time("b")


def test_docs_describe_every_published_type_and_each_of_its_fields() -> None:
    """docs/kafka.md is the consumers' schema: a new type or field must be documented there."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "kafka.md").read_text()
    rows = {
        line.split("|")[1].strip().strip("`"): line for line in text.splitlines() if line.startswith("| `io.")
    }
    for tag in PUBLISHED:
        row = rows.get(f"io.tokenledger.{tag}")
        assert row is not None, f"docs/kafka.md has no row for io.tokenledger.{tag}"
        cls = event_type(tag)
        public = [f.name for f in msgspec.structs.fields(cls) if f.name not in cls.private_fields]
        missing = [name for name in public if f"`{name}`" not in row]
        assert not missing, f"docs/kafka.md does not describe {missing} of io.tokenledger.{tag}"
    for tag in NOT_PUBLISHED:
        assert f"`{tag}`" in text
