"""Finding entries: search by URL, host, hash, status or reference; an entry's history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from blocklist.auditlog import AuditRecord
from blocklist.canonical import (
    canonicalize,
    expression_hash,
    expressions,
    split_expression,
)
from blocklist.store import audit
from blocklist.store.entries import get_entry
from blocklist.store.errors import (
    InvalidField,
    LimitExceeded,
)
from blocklist.store.models import (
    ENTRY_STATUSES,
    HASH_BYTES,
    ApprovalRow,
    EntryRow,
)
from blocklist.store.submissions import (
    LINE_CONTROLS,
)

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_HOST_CHARS",
    "MAX_PAGE_SIZE",
    "EntryHistory",
    "EntryPage",
    "get_entry_with_history",
    "search",
]

#: Longest host accepted by search (DNS names are at most 253 characters;
#: bracketed IPv6 literals are shorter).
MAX_HOST_CHARS = 253

#: Search page sizes.
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


@dataclass(frozen=True)
class EntryPage:
    """One page of search results, ordered by id; ``next_cursor`` is ``None`` at the end."""

    items: list[EntryRow]
    next_cursor: int | None


@dataclass(frozen=True)
class EntryHistory:
    """An entry with its approvals and every audit record naming it."""

    entry: EntryRow
    approvals: list[ApprovalRow]
    records: list[AuditRecord]


def _canonical_host(host: str) -> str:
    if not isinstance(host, str) or not host or len(host) > MAX_HOST_CHARS:
        raise InvalidField(f"host must be 1..{MAX_HOST_CHARS} characters")
    if any(c in host for c in "/?#@ ") or LINE_CONTROLS.search(host):
        raise InvalidField("host must be a bare host name or IP address")
    canonical = canonicalize(f"http://{host}/")
    _, _, rest = canonical.partition("://")
    return split_expression(rest or canonical)[0]


def search(
    session: Session,
    list_id: int,
    *,
    url: str | None = None,
    host: str | None = None,
    hash: bytes | None = None,
    status: str | None = None,
    reference: str | None = None,
    created_by: str | None = None,
    created_from: datetime | None = None,
    created_before: datetime | None = None,
    cursor: int | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
) -> EntryPage:
    """Find entries; filters combine with AND. Pages are ordered by id.

    ``url`` matches every entry that would block it (its hash is among the
    Safe Browsing lookup expressions of the URL); ``host`` matches entries on
    that host or its subdomains; ``created_by`` is the analyst who added the
    entry; ``created_from`` (inclusive) and ``created_before`` (exclusive)
    bound when it was added (the console's search). ``cursor`` is the previous page's
    ``next_cursor``: ids only grow, so inserts never shift later pages.

    Raises:
        LimitExceeded: ``limit`` outside 1..MAX_PAGE_SIZE.
        InvalidURL: ``url`` cannot be canonicalised.
        InvalidField: a bad host, hash length or status.
    """
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise LimitExceeded(f"limit must be 1..{MAX_PAGE_SIZE}")
    conditions: list[ColumnElement[bool]] = [EntryRow.list_id == list_id]
    if url is not None:
        hashes = sorted({expression_hash(e) for e in expressions(url)})
        conditions.append(EntryRow.hash.in_(hashes))
    if host is not None:
        canonical = _canonical_host(host)
        conditions.append(
            or_(
                EntryRow.host == canonical, EntryRow.host.endswith("." + canonical, autoescape=True)
            )
        )
    if hash is not None:
        if not isinstance(hash, bytes) or len(hash) != HASH_BYTES:
            raise InvalidField("hash must be 32 bytes")
        conditions.append(EntryRow.hash == hash)
    if status is not None:
        if status not in ENTRY_STATUSES:
            raise InvalidField(f"status must be one of {', '.join(ENTRY_STATUSES)}")
        conditions.append(EntryRow.status == status)
    if reference is not None:
        conditions.append(EntryRow.reference == reference)
    if created_by is not None:
        conditions.append(EntryRow.created_by == created_by)
    if created_from is not None:
        conditions.append(EntryRow.created_at >= created_from)
    if created_before is not None:
        conditions.append(EntryRow.created_at < created_before)
    if cursor is not None:
        conditions.append(EntryRow.id > cursor)
    rows = list(
        session.scalars(
            select(EntryRow).where(and_(*conditions)).order_by(EntryRow.id).limit(limit + 1)
        ).all()
    )
    more = len(rows) > limit
    items = rows[:limit]
    return EntryPage(items=items, next_cursor=items[-1].id if more else None)


def get_entry_with_history(session: Session, list_id: int, entry_id: int) -> EntryHistory:
    """Return an entry, its approvals (every round) and its audit records.

    Raises:
        NotFound: no such entry on the list.
    """
    entry = get_entry(session, list_id, entry_id)
    approvals = list(
        session.scalars(
            select(ApprovalRow)
            .where(ApprovalRow.entry_id == entry_id)
            .order_by(ApprovalRow.round, ApprovalRow.id)
        ).all()
    )
    return EntryHistory(
        entry=entry, approvals=approvals, records=audit.entry_records(session, entry_id)
    )
