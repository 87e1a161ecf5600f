"""What the ISP client's state store hands out: immutable records.

The evidence of a fork, the report of what each export enforces, and the
status shown by ``cleanfeed isp status``: plain frozen data, written and
read by :class:`clients.isp.store.StateStore`, with no I/O of their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "REPORT_SCOPES",
    "Evidence",
    "ExportReport",
    "Status",
]

#: Scopes of :attr:`ExportReport.left_out`, in report order (the same as
#: :data:`clients.isp.exports.formats.SCOPES`; "other": not a canonical expression).
REPORT_SCOPES: Final = ("page", "prefix", "host", "other")


@dataclass(frozen=True, slots=True)
class Evidence:
    """Two inconsistent signed notes, kept for auditors."""

    kind: str
    held_note: str
    new_note: str
    detail: str
    observed_at: float


@dataclass(frozen=True, slots=True)
class ExportReport:
    """What one export enforces, as its last write by a sync found.

    Kept in the state so that ``cleanfeed isp status`` can say, at any
    time, which entries a DNS-only or hosts filter cannot enforce (they must
    be enforced elsewhere, for instance by Squid).

    Attributes:
        format: the export format.
        output: the export's output path.
        version: the list version the files hold.
        enforced: entries the files enforce.
        not_enforceable: entries the format cannot express.
        left_out: ``not_enforceable`` by entry scope (:data:`REPORT_SCOPES`).
        partial: entries enforced only in part (hosts: no subdomains).
        notes: why entries were left out, one line per reason.
    """

    format: str
    output: str
    version: int
    enforced: int
    not_enforceable: int
    left_out: Mapping[str, int] = field(default_factory=dict)
    partial: int = 0
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON object (``status --json``, ``sync --json``)."""
        return {
            "format": self.format,
            "output": self.output,
            "version": self.version,
            "enforced": self.enforced,
            "not_enforceable": self.not_enforceable,
            "not_enforceable_by_scope": {s: int(self.left_out.get(s, 0)) for s in REPORT_SCOPES},
            "partial": self.partial,
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, doc: object) -> ExportReport | None:
        """Parse :meth:`to_json` output; None when it is not one (old or damaged)."""
        if not isinstance(doc, dict):
            return None
        try:
            scopes = doc["not_enforceable_by_scope"]
            report = cls(
                format=str(doc["format"]),
                output=str(doc["output"]),
                version=int(doc["version"]),
                enforced=int(doc["enforced"]),
                not_enforceable=int(doc["not_enforceable"]),
                left_out={str(k): int(v) for k, v in scopes.items() if int(v)},
                partial=int(doc["partial"]),
                notes=tuple(str(n) for n in doc["notes"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        return report

    def summary(self) -> str:
        """One line: the export, its version, what it enforces and what it cannot."""
        total = self.enforced + self.not_enforceable
        text = (
            f"{self.format} {self.output}: version {self.version}, "
            f"{self.enforced} of {total} entries enforced"
        )
        if self.not_enforceable:
            parts = [f"{self.left_out[s]} {s}" for s in REPORT_SCOPES if self.left_out.get(s)]
            text += f"; cannot enforce {self.not_enforceable} ({', '.join(parts)})"
        if self.partial:
            text += f"; {self.partial} host entries blocked on the exact host only"
        return text


@dataclass(frozen=True, slots=True)
class Status:
    """What ``cleanfeed isp status`` shows."""

    version: int | None
    count: int | None
    origin: str | None
    checkpoint_time: int | None
    last_attempt: float | None
    last_success: float | None
    last_error: str | None
    last_error_reason: str | None
    last_error_time: float | None
    plaintext_complete: bool | None
    plaintext_error: str | None
    counters: dict[str, int]
    #: What each export written by a sync enforces (by output path).
    exports: tuple[ExportReport, ...] = ()
