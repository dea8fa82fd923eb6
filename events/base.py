"""The base class of every domain event.

An event is a fact in the past tense. Subclasses are declared as
``class TokenRevoked(Event, tag="token.revoked")``; the tag is stored in the ``type`` field of the
JSON form. Fields named in ``private_fields`` (secret hashes) stay in the log, which must be able to
rebuild verification state, but never leave it: public views (Kafka, the audit API) drop them.
"""

from typing import ClassVar

import msgspec

PrivateFields = frozenset[str]


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """A domain fact. Subclasses must give a ``tag``; ids are UUID strings in canonical form."""

    private_fields: ClassVar[PrivateFields] = frozenset()

    @classmethod
    def tag(cls) -> str:
        tag = cls.__struct_config__.tag
        if not isinstance(tag, str):
            raise TypeError(f"{cls.__name__} has no event tag")
        return tag
