"""The hash formulas of migration 0004, recomputed in Python.

An event's hash is sha256(previous hash of its stream + digest), the digest being sha256 over
netstrings (``<length>:<text>,``) of the event's fields; a checkpoint's hash chains the previous
checkpoint's hash with each covered event's position and hash, in (tx_id, position) order. Any
change here must be made in the migration's ``tl_event_digest`` / ``tl_chain`` / ``tl_checkpoint``
too (a new format would get a new version tag).
"""

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_CHECKPOINT_TAG = b"tlc1"


def _netstring(text: str) -> str:
    return f"{len(text)}:{text},"


def event_hash(
    previous: bytes | None,
    *,
    stream_id: str,
    stream_version: int,
    event_id: uuid.UUID,
    type: str,
    global_position: int,
    tx_id: int,
    recorded_at: datetime,
    data: str,
    metadata: str,
) -> bytes:
    """``data`` and ``metadata`` are PostgreSQL's ``jsonb::text`` of the stored values."""
    fields = (
        "tl1",
        stream_id,
        str(stream_version),
        str(event_id),
        type,
        str(global_position),
        str(tx_id),
        str((recorded_at - _EPOCH) // _MICROSECOND),
        data,
        metadata,
    )
    digest = hashlib.sha256("".join(map(_netstring, fields)).encode()).digest()
    return hashlib.sha256((previous or b"") + digest).digest()


class CheckpointHasher:
    """Accumulates the events of one checkpoint, in (tx_id, position) order."""

    def __init__(self, previous: bytes | None, checkpoint: int) -> None:
        self._digest = hashlib.sha256(_CHECKPOINT_TAG + (previous or b""))
        self._digest.update(checkpoint.to_bytes(8, "big", signed=True))
        self.count = 0

    def add(self, global_position: int, event_hash: bytes | None) -> None:
        self._digest.update(global_position.to_bytes(8, "big", signed=True) + (event_hash or b""))
        self.count += 1

    def digest(self) -> bytes:
        return self._digest.digest()
