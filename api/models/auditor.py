"""Models of the auditors' routes: audit log records and their pages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from api.models.common import Out
from blocklist.auditlog import AuditRecord
from blocklist.encoding import b64encode

__all__ = ["AuditPageOut", "AuditRecordOut", "audit_record_out"]


class AuditRecordOut(Out):
    """One audit log record (docs/architecture.md, "Audit log hash chain")."""

    seq: int
    time: datetime
    actor: str
    action: str
    list: str | None
    entry: int | None
    details: dict[str, Any]
    hash: str | None = Field(description="base64 chain hash after this record")


class AuditPageOut(Out):
    """A page of audit records; pass ``next`` as ``since`` for the next page."""

    records: list[AuditRecordOut]
    next: int | None


def audit_record_out(record: AuditRecord) -> AuditRecordOut:
    """Serialise an audit record (hashes in base64)."""
    return AuditRecordOut(
        seq=record.seq,
        time=record.time,
        actor=record.actor,
        action=record.action,
        list=record.list_name,
        entry=record.entry_id,
        details=dict(record.details),
        hash=b64encode(record.hash) if record.hash is not None else None,
    )
