"""Small read helpers for the signer's publisher, additive to :mod:`blocklist.store.versions`.

The publisher checks each delta against the current set before it signs
(DESIGN.md item 2: an addition of a present hash or a removal of an absent
one is invalid); these queries cost O(changes), never O(list).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from blocklist.store.models import STATUS_ACTIVE, STATUS_PENDING, EntryRow, MembershipRow
from blocklist.store.versions import still_listed

#: Hashes per ``IN (...)`` clause, below every backend's bind parameter limit.
IN_CHUNK = 1000


def current_members(session: Session, list_id: int, hashes: Sequence[bytes]) -> set[bytes]:
    """Return which of ``hashes`` are in the list's latest published version."""
    found: set[bytes] = set()
    for start in range(0, len(hashes), IN_CHUNK):
        chunk = hashes[start : start + IN_CHUNK]
        found.update(
            session.scalars(
                select(MembershipRow.hash).where(
                    MembershipRow.list_id == list_id,
                    still_listed(MembershipRow.removed_version),
                    MembershipRow.hash.in_(chunk),
                )
            )
        )
    return found


def has_pending_work(session: Session, list_id: int, *, now: datetime) -> bool:
    """Whether a publish at ``now`` would have anything to do (a cheap read, no lock).

    True when an entry is flagged for publication (an approved addition or
    an expiry not yet published) or an entry's scheduled expiry has come.
    Lets the publisher skip the write lock when idle, so a busy SQLite
    database is not locked by a signer that has nothing to sign.
    """
    flagged = session.scalar(
        select(EntryRow.id)
        .where(EntryRow.list_id == list_id, EntryRow.needs_publish.is_(True))
        .limit(1)
    )
    if flagged is not None:
        return True
    due = session.scalar(
        select(EntryRow.id)
        .where(
            EntryRow.list_id == list_id,
            EntryRow.status.in_((STATUS_ACTIVE, STATUS_PENDING)),
            EntryRow.expires_at.is_not(None),
            EntryRow.expires_at <= now,
        )
        .limit(1)
    )
    return due is not None
