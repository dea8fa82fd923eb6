"""The verifier's cache of read-model entries: two bounded LRUs (known secrets, unknown hashes) and
the indexes by token and by account that an invalidation drops entries through.

It decides nothing about freshness (``services.auth.invalidation`` does); it holds, finds, drops and,
for sliding expiry, moves a cached token's expiry forward.
"""

from collections import OrderedDict
from datetime import datetime

import msgspec

from services.auth.evaluation import Entry
from services.auth.invalidation import Drop


class EntryCache:
    def __init__(self, *, max_entries: int, max_unknown_entries: int) -> None:
        self._max_entries = max_entries
        self._max_unknown_entries = max_unknown_entries
        self._known: OrderedDict[str, Entry] = OrderedDict()
        self._unknown: OrderedDict[str, Entry] = OrderedDict()
        self.by_token: dict[str, set[str]] = {}
        self.by_account: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._known) + len(self._unknown)

    def lookup(self, hashed: str) -> Entry | None:
        entry = self._known.get(hashed)
        if entry is not None:
            self._known.move_to_end(hashed)
            return entry
        entry = self._unknown.get(hashed)
        if entry is not None:
            self._unknown.move_to_end(hashed)
        return entry

    def insert(self, entry: Entry) -> None:
        principal = entry.principal
        if principal is None:
            self._unknown[entry.secret_hash] = entry
            while len(self._unknown) > self._max_unknown_entries:
                self._unknown.popitem(last=False)
            return
        self._remove(entry.secret_hash)
        self._known[entry.secret_hash] = entry
        self.by_token.setdefault(principal.token_id, set()).add(entry.secret_hash)
        self.by_account.setdefault(principal.account_id, set()).add(entry.secret_hash)
        while len(self._known) > self._max_entries:
            self._remove(next(iter(self._known)))

    def drop(self, drop: Drop) -> int:
        """Drops what ``drop`` names; returns how many known entries it dropped one by one (a
        drop of everything counts none: it is counted as a clear)."""
        if drop.everything:
            self._known.clear()
            self._unknown.clear()
            self.by_token.clear()
            self.by_account.clear()
            return 0
        if drop.unknown_hash is not None:
            self._unknown.pop(drop.unknown_hash, None)
        dropped = 0
        for index, key in ((self.by_token, drop.token_id), (self.by_account, drop.account_id)):
            if key is None:
                continue
            for hashed in list(index.get(key, ())):
                self._remove(hashed)
                dropped += 1
        return dropped

    def move_expiry(self, token_id: str, expires_at: datetime) -> bool:
        """Pushes the token's cached expiries forward to ``expires_at`` (within ``max_expires_at``).
        False when a cached entry already expires later."""
        consistent = True
        for hashed in self.by_token.get(token_id, ()):
            entry = self._known[hashed]
            principal = entry.principal
            if principal is None or principal.expires_at is None:
                continue
            target = expires_at
            if principal.max_expires_at is not None:
                target = min(target, principal.max_expires_at)
            if target > principal.expires_at:
                entry.principal = msgspec.structs.replace(principal, expires_at=target)
            elif target < principal.expires_at:
                consistent = False
        return consistent

    def _remove(self, hashed: str) -> None:
        self._unknown.pop(hashed, None)
        entry = self._known.pop(hashed, None)
        if entry is None or entry.principal is None:
            return
        for index, key in (
            (self.by_token, entry.principal.token_id),
            (self.by_account, entry.principal.account_id),
        ):
            hashes = index.get(key)
            if hashes is not None:
                hashes.discard(hashed)
                if not hashes:
                    del index[key]
