"""Small read helpers for the signer's publisher, additive to :mod:`blocklist.store.versions`.

The publisher checks each delta against the current set before it signs
(DESIGN.md item 2: an addition of a present hash or a removal of an absent
one is invalid); these queries cost O(changes), never O(list).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from blocklist.store.models import STATUS_ACTIVE, STATUS_PENDING, EntryRow
from blocklist.store.versions import current_members

__all__ = ["current_members", "has_pending_work"]


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
