"""Queries over the due index (``rm_token_deadlines``, see ``projections.deadlines``): which deadlines
are due, in order, and when the next one falls.

Every query is an index range scan that stops at ``now`` (or a ``LIMIT``), so its cost grows with
the number of due deadlines, not with the number of tokens:

- fixed deadlines (expiry, secret retirement, rotation under an account's own period): ``due_at``;
- rotation under the deployment's period: ``anchor_at <= now - period`` on the rows without ``due_at``;
- expiry warnings: for each configured lead L and each ``warned_lead`` value W > L present in the
  table (found with a loose index scan: one index descent per distinct value), the rows with
  ``warned_lead = W`` and ``now < due_at <= now + L``;
- account lifetimes (``rm_account_deadlines``): ``due_at`` for the expiry, and for the warnings the
  rows with ``now < due_at <= now + L`` and ``warned_lead > L`` (a range scan of ``due_at`` up to
  the longest lead: accounts are few next to tokens).

A page merges these sources: each returns at most ``limit`` rows in due order, and the page keeps
the rows up to the earliest last row of a source that was cut by its limit, so rows come out in
due order across sources and pages.
"""

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

WARNING = "warning"
"""The kind of a due expiry warning (``ref`` is its lead in seconds)."""
ACCOUNT_EXPIRY = "account_expiry"
ACCOUNT_WARNING = "account_warning"
"""The kinds of an account's deadlines: its lifetime's end, and a warning before it (``ref``: the
lead in seconds)."""

_FIXED = """
SELECT due_at AS due, token_id::text AS subject_id, kind, ref
FROM rm_token_deadlines
WHERE due_at IS NOT NULL AND due_at <= $1 AND NOT (token_id = ANY($3::uuid[]))
ORDER BY due_at
LIMIT $2
"""

_DEFAULT_ROTATION = """
SELECT anchor_at + $4::int * interval '1 second' AS due, token_id::text AS subject_id, kind, ref
FROM rm_token_deadlines
WHERE kind = 'rotation' AND due_at IS NULL AND anchor_at <= $1::timestamptz - $4::int * interval '1 second'
  AND NOT (token_id = ANY($3::uuid[]))
ORDER BY anchor_at
LIMIT $2
"""

_WARNINGS = """
SELECT d.due_at - p.lead * interval '1 second' AS due, d.token_id::text AS subject_id,
       'warning' AS kind, p.lead AS ref
FROM unnest($4::int[], $5::int[]) AS p (lead, warned)
CROSS JOIN LATERAL (
    SELECT token_id, due_at
    FROM rm_token_deadlines
    WHERE kind = 'expiry' AND warned_lead = p.warned
      AND due_at > $1::timestamptz AND due_at <= $1::timestamptz + p.lead * interval '1 second'
      AND NOT (token_id = ANY($3::uuid[]))
    ORDER BY due_at
    LIMIT $2
) AS d
ORDER BY 1
LIMIT $2
"""

_WARNED_LEADS = """
WITH RECURSIVE present (lead) AS (
    SELECT min(warned_lead) FROM rm_token_deadlines WHERE kind = 'expiry'
    UNION ALL
    SELECT (SELECT min(warned_lead) FROM rm_token_deadlines WHERE kind = 'expiry' AND warned_lead > lead)
    FROM present
    WHERE lead IS NOT NULL
)
SELECT lead FROM present WHERE lead IS NOT NULL
"""

_NEXT_FIXED = "SELECT min(due_at) FROM rm_token_deadlines WHERE due_at IS NOT NULL"

_NEXT_DEFAULT_ROTATION = """
SELECT min(anchor_at) + $1::int * interval '1 second'
FROM rm_token_deadlines
WHERE kind = 'rotation' AND due_at IS NULL
"""

_NEXT_WARNING = """
SELECT min(d.due_at - p.lead * interval '1 second')
FROM unnest($2::int[], $3::int[]) AS p (lead, warned)
CROSS JOIN LATERAL (
    SELECT due_at FROM rm_token_deadlines
    WHERE kind = 'expiry' AND warned_lead = p.warned AND due_at > $1
    ORDER BY due_at
    LIMIT 1
) AS d
"""

_ACCOUNT_EXPIRIES = """
SELECT due_at AS due, account_id::text AS subject_id, 'account_expiry' AS kind, 0 AS ref
FROM rm_account_deadlines
WHERE due_at IS NOT NULL AND due_at <= $1 AND NOT (account_id = ANY($3::uuid[]))
ORDER BY due_at
LIMIT $2
"""

_ACCOUNT_WARNINGS = """
SELECT a.due_at - p.lead * interval '1 second' AS due, a.account_id::text AS subject_id,
       'account_warning' AS kind, p.lead AS ref
FROM rm_account_deadlines AS a CROSS JOIN unnest($4::int[]) AS p (lead)
WHERE a.due_at > $1::timestamptz AND a.due_at <= $1::timestamptz + p.lead * interval '1 second'
  AND a.warned_lead > p.lead AND NOT (a.account_id = ANY($3::uuid[]))
ORDER BY 1
LIMIT $2
"""

_NEXT_ACCOUNT_EXPIRY = "SELECT min(due_at) FROM rm_account_deadlines WHERE due_at IS NOT NULL"

_NEXT_ACCOUNT_WARNING = """
SELECT min(a.due_at - p.lead * interval '1 second')
FROM rm_account_deadlines AS a CROSS JOIN unnest($2::int[]) AS p (lead)
WHERE a.due_at > $1 AND a.warned_lead > p.lead
"""


class Deadline(NamedTuple):
    due: datetime
    subject_id: str
    """The token's id, or the account's for the ``account_*`` kinds."""
    kind: str
    """``expiry``, ``rotation``, ``retirement`` (``projections.deadlines``), ``warning``,
    ``account_expiry`` or ``account_warning``."""
    ref: int
    """The secret version of a retirement, the lead in seconds of a warning, else 0."""


class DuePage(NamedTuple):
    deadlines: list[Deadline]
    """In due order; at most one warning per token."""
    more: bool
    """A source was cut by the limit: more deadlines may be due."""


class DueIndex:
    """The scheduler's view of the due index, for a deployment's lead times and rotation period."""

    def __init__(self, leads: Sequence[timedelta], rotation_period: timedelta | None) -> None:
        self._leads = sorted({int(lead.total_seconds()) for lead in leads}, reverse=True)
        self._period = None if rotation_period is None else int(rotation_period.total_seconds())

    async def due(self, connection: Any, now: datetime, limit: int, skip: Collection[str] = ()) -> DuePage:
        """Deadlines due at ``now``, earliest first, leaving out the tokens and accounts in ``skip``."""
        skipped = list(skip)
        sources = [
            await connection.fetch(_FIXED, now, limit, skipped),
            await connection.fetch(_ACCOUNT_EXPIRIES, now, limit, skipped),
        ]
        if self._period is not None:
            sources.append(await connection.fetch(_DEFAULT_ROTATION, now, limit, skipped, self._period))
        pairs = await self._warning_pairs(connection)
        if pairs[0]:
            sources.append(await connection.fetch(_WARNINGS, now, limit, skipped, *pairs))
        if self._leads:
            sources.append(await connection.fetch(_ACCOUNT_WARNINGS, now, limit, skipped, self._leads))
        cut = [rows[-1]["due"] for rows in sources if len(rows) >= limit]
        cutoff = min(cut) if cut else None
        rows = [
            Deadline(r["due"], r["subject_id"], r["kind"], r["ref"]) for source in sources for r in source
        ]
        rows.sort()
        deadlines: list[Deadline] = []
        warned: set[str] = set()
        for row in rows:
            if cutoff is not None and row.due > cutoff:
                break
            if row.kind in (WARNING, ACCOUNT_WARNING):
                if row.subject_id in warned:
                    continue
                warned.add(row.subject_id)
            deadlines.append(row)
        return DuePage(deadlines, cutoff is not None)

    async def next_due(self, connection: Any, now: datetime) -> datetime | None:
        """When the earliest pending deadline falls (possibly already past), or None."""
        candidates = [
            await connection.fetchval(_NEXT_FIXED),
            await connection.fetchval(_NEXT_ACCOUNT_EXPIRY),
        ]
        if self._period is not None:
            candidates.append(await connection.fetchval(_NEXT_DEFAULT_ROTATION, self._period))
        pairs = await self._warning_pairs(connection)
        if pairs[0]:
            candidates.append(await connection.fetchval(_NEXT_WARNING, now, *pairs))
        if self._leads:
            candidates.append(await connection.fetchval(_NEXT_ACCOUNT_WARNING, now, self._leads))
        present = [c for c in candidates if c is not None]
        return min(present) if present else None

    async def _warning_pairs(self, connection: Any) -> tuple[list[int], list[int]]:
        """(lead, warned_lead) pairs to look at: each configured lead with each ``warned_lead``
        present in the index that is longer than it (``UNWARNED`` included)."""
        present = [row["lead"] for row in await connection.fetch(_WARNED_LEADS)]
        pairs = [(lead, warned) for lead in self._leads for warned in present if warned > lead]
        return [lead for lead, _ in pairs], [warned for _, warned in pairs]
