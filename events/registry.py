"""Tag -> event class registry and the one JSON encoder/decoder pair the log uses."""

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from events.base import Event
from events.frozen import dec_hook

_encoder = msgspec.json.Encoder()
_registry: dict[str, type[Event]] = {}
_decoders: dict[str, msgspec.json.Decoder[Any]] = {}


class UnknownEventType(LookupError):
    """The log holds, or a caller offered, an event type this code does not know."""


def register(classes: Iterable[type[Event]]) -> None:
    """Add event classes; a tag may be registered once only (tags are the stable contract)."""
    for cls in classes:
        tag = cls.tag()
        if _registry.get(tag, cls) is not cls:
            raise ValueError(f"event tag {tag!r} registered twice")
        _registry[tag] = cls
        _decoders[tag] = msgspec.json.Decoder(cls, dec_hook=dec_hook)


def _load_catalogue() -> None:
    # The catalogue modules import this one, so they are loaded lazily.
    import events.catalogue  # noqa: F401


def event_type(tag: str) -> type[Event]:
    _load_catalogue()
    try:
        return _registry[tag]
    except KeyError:
        raise UnknownEventType(f"unknown event type {tag!r}") from None


def registered_tags() -> list[str]:
    _load_catalogue()
    return sorted(_registry)


def encode_event(event: Event) -> bytes:
    """The stored JSON form (includes the ``type`` tag). Refuses classes not in the registry."""
    tag = type(event).tag()
    if event_type(tag) is not type(event):
        raise UnknownEventType(f"{type(event).__name__} is not the registered class for {tag!r}")
    return _encoder.encode(event)


def decode_event(tag: str, data: bytes | str) -> Event:
    decoder = _decoders.get(tag)
    if decoder is None:  # the catalogue is not loaded yet, or the tag is unknown
        event_type(tag)
        decoder = _decoders[tag]
    event: Event = decoder.decode(data)
    return event


def event_from_data(tag: str, data: Mapping[str, Any]) -> Event:
    """The event of type ``tag`` whose fields are ``data`` (builtins, as ``public_data`` gives)."""
    event: Event = msgspec.convert(data, event_type(tag), dec_hook=dec_hook)
    return event


def public_data(event: Event) -> dict[str, Any]:
    """The event's fields as builtins, without private fields: what may leave the log."""
    data: dict[str, Any] = msgspec.to_builtins(event)
    for name in type(event).private_fields:
        data.pop(name, None)
    return data
