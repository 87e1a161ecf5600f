"""Stored transparency reports and what issuing one reads (issue 17 item 5).

The figures themselves are computed by the pure :mod:`blocklist.transparency`
(shared with the offline auditor); signing is :mod:`signer.transparency`.
A report is stored once per list and month and never replaced, so every
request for it returns the same bytes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from blocklist.auditlog import AuditRecord
from blocklist.store import audit
from blocklist.store.models import TransparencyReportRow, VersionRow

__all__ = ["all_records", "get_report", "put_report", "version_before"]


def get_report(session: Session, list_id: int, period: str) -> str | None:
    """The stored note of a list's period, None when not issued yet."""
    row = session.get(TransparencyReportRow, (list_id, period))
    return row.note if row is not None else None


def put_report(session: Session, list_id: int, period: str, note: str, now: datetime) -> str:
    """Store a report unless one exists; return the stored note (the first one wins)."""
    existing = get_report(session, list_id, period)
    if existing is not None:
        return existing
    session.add(TransparencyReportRow(list_id=list_id, period=period, note=note, created_at=now))
    session.flush()
    return note


def version_before(session: Session, list_id: int, end: datetime) -> int:
    """The latest version published before ``end`` (0: none)."""
    version = session.scalar(
        select(VersionRow.version)
        .where(VersionRow.list_id == list_id, VersionRow.time < end)
        .order_by(VersionRow.version.desc())
        .limit(1)
    )
    return int(version or 0)


def all_records(session: Session, list_id: int) -> list[AuditRecord]:
    """Every record of a list's chain, in order, with its chain hash."""
    out: list[AuditRecord] = []
    while True:
        page = audit.records(session, list_id, since=len(out), limit=audit.MAX_AUDIT_PAGE)
        out.extend(page)
        if len(page) < audit.MAX_AUDIT_PAGE:
            return out
