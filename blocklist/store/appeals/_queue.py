"""What reviewers and administrators read: appeal states, views, queues.

An appeal attached to an entry of a list is an :class:`AppealLinkRow`
whose status is :data:`LINK_OPEN` until a reviewer decides it (an outcome
of :data:`blocklist.store.models.APPEAL_OUTCOMES`); a suspension keeps it
under review. An appeal that matched no list waits in the admins' queue
(:func:`unmatched_appeals`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from blocklist.blockref import BLOCK_REF_BYTES, block_ref
from blocklist.store.db import get_row
from blocklist.store.models import (
    AppealLinkRow,
    AppealPrivateRow,
    AppealRow,
    EntryRow,
)

__all__ = [
    "LINK_OPEN",
    "LINK_SUSPENDED",
    "OUTCOME_REMOVED",
    "OUTCOME_SUSPENDED",
    "OUTCOME_UPHELD",
    "UNDECIDED",
    "AppealView",
    "LinkView",
    "appeal_view",
    "get_appeal",
    "get_appeal_row",
    "link_view",
    "list_links",
    "overdue_count",
    "printed_ref",
    "private_of",
    "unmatched_appeals",
]

OUTCOME_UPHELD: Final = "upheld"
OUTCOME_REMOVED: Final = "removed"
OUTCOME_SUSPENDED: Final = "suspended"
LINK_OPEN: Final = "open"
LINK_SUSPENDED: Final = OUTCOME_SUSPENDED
#: Link states still under review.
UNDECIDED: Final = (LINK_OPEN, LINK_SUSPENDED)


@dataclass(frozen=True)
class LinkView:
    """An appeal attached to an entry of a list, for reviewers."""

    appeal_id: int
    list_id: int
    entry_id: int
    entry_hash: bytes
    entry_status: str
    status: str
    attached_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    reason: str | None
    message: str | None
    contact: str | None
    url: str | None
    ref: str | None

    @property
    def block_ref(self) -> str:
        """The matched entry's block reference."""
        return block_ref(self.entry_hash)


@dataclass(frozen=True)
class AppealView:
    """An appeal with its private data (admins' queue)."""

    appeal_id: int
    filed_at: datetime
    closed_at: datetime | None
    matched: bool
    duplicates: int
    ref: str | None
    message: str | None
    contact: str | None
    url: str | None


def printed_ref(prefix: bytes) -> str:
    """The block reference as printed for a stored reference prefix."""
    return block_ref(bytes(prefix) + bytes(32 - BLOCK_REF_BYTES))


def private_of(session: Session, appeal_id: int) -> AppealPrivateRow | None:
    """The appellant's words, unless erased."""
    return session.get(AppealPrivateRow, appeal_id)


def get_appeal_row(session: Session, appeal_id: int) -> AppealRow:
    """An appeal's row.

    Raises:
        NotFound: no such appeal.
    """
    return get_row(session, AppealRow, appeal_id, f"no appeal {appeal_id}")


def _ref_of(appeal: AppealRow) -> str | None:
    return None if appeal.ref_prefix is None else printed_ref(appeal.ref_prefix)


def link_view(session: Session, link: AppealLinkRow, entry: EntryRow) -> LinkView:
    """The reviewers' view of one attachment."""
    private = private_of(session, link.appeal_id)
    appeal = session.get(AppealRow, link.appeal_id)
    assert appeal is not None
    return LinkView(
        appeal_id=link.appeal_id,
        list_id=link.list_id,
        entry_id=link.entry_id,
        entry_hash=bytes(entry.hash),
        entry_status=entry.status,
        status=link.status,
        attached_at=link.attached_at,
        decided_at=link.decided_at,
        decided_by=link.decided_by,
        reason=link.reason,
        message=private.message if private else None,
        contact=private.contact if private else None,
        url=private.url if private else None,
        ref=_ref_of(appeal),
    )


def appeal_view(session: Session, appeal: AppealRow) -> AppealView:
    """The admins' view of one appeal."""
    private = private_of(session, appeal.id)
    return AppealView(
        appeal_id=appeal.id,
        filed_at=appeal.filed_at,
        closed_at=appeal.closed_at,
        matched=appeal.matched,
        duplicates=appeal.duplicates,
        ref=_ref_of(appeal),
        message=private.message if private else None,
        contact=private.contact if private else None,
        url=private.url if private else None,
    )


def list_links(
    session: Session, list_id: int, *, status: str | None = None, limit: int = 500
) -> list[LinkView]:
    """A list's appeals with their matched entries, oldest first.

    Args:
        status: ``open`` (open or suspended: still under review), a link
            status, or None for all.
    """
    query = select(AppealLinkRow, EntryRow).join(EntryRow, EntryRow.id == AppealLinkRow.entry_id)
    query = query.where(AppealLinkRow.list_id == list_id)
    if status == LINK_OPEN:
        query = query.where(AppealLinkRow.status.in_(UNDECIDED))
    elif status is not None:
        query = query.where(AppealLinkRow.status == status)
    rows = session.execute(
        query.order_by(AppealLinkRow.attached_at, AppealLinkRow.appeal_id).limit(limit)
    ).all()
    return [link_view(session, link, entry) for link, entry in rows]


def overdue_count(session: Session, before: datetime) -> int:
    """Appeals waiting since before ``before``: attachments under review, and
    unmatched appeals in the admins' queue."""
    links = session.scalar(
        select(func.count())
        .select_from(AppealLinkRow)
        .where(AppealLinkRow.status.in_(UNDECIDED), AppealLinkRow.attached_at < before)
    )
    unmatched = session.scalar(
        select(func.count())
        .select_from(AppealRow)
        .where(
            AppealRow.matched.is_(False),
            AppealRow.closed_at.is_(None),
            AppealRow.filed_at < before,
        )
    )
    return int(links or 0) + int(unmatched or 0)


def unmatched_appeals(
    session: Session, *, open_only: bool = True, limit: int = 500
) -> list[AppealView]:
    """The admins' queue: appeals attached to no list, oldest first."""
    query = select(AppealRow).where(AppealRow.matched.is_(False))
    if open_only:
        query = query.where(AppealRow.closed_at.is_(None))
    rows = session.scalars(query.order_by(AppealRow.id).limit(limit)).all()
    return [appeal_view(session, a) for a in rows]


def get_appeal(session: Session, appeal_id: int) -> AppealView:
    """One appeal with its private data.

    Raises:
        NotFound: no such appeal.
    """
    return appeal_view(session, get_appeal_row(session, appeal_id))
