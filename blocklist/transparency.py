"""Transparency reports: the figures of one list and calendar month, and their note.

DESIGN.md part 2, "Transparency report" (issue 17 item 5). This module is
pure and is the ONE place the figures are computed: the server computes
them from its audit log to issue a report, and ``cleanfeed audit
verify-report`` recomputes them from a full audit bundle with the same
function and fails on any difference. Every figure is therefore a function
of the list's audit records alone (removal reasons are codes, never text).

Definitions (the period is ``[start, end)``, UTC, a calendar month; "in
the period" means a record's time is in it; the canary is never counted):

- ``entries_added``: ``entry.add`` records in the period.
- ``removed_analyst`` / ``removed_expiry`` / ``removed_gone`` /
  ``removed_appeal``: ``entry.expire`` records in the period that took a
  published entry off (details ``status`` ``expired``), by reason code:
  ``appeal`` when the record names an appeal; ``gone`` when its reason is
  ``gone`` and its actor is a ``system:`` actor (re-verification);
  ``expiry`` when its actor is ``system:expiry``; else ``analyst``.
  Suspensions are counted under ``appeals_suspended``, not here.
- ``listed_entries``: entries whose last recorded ``status`` before the
  period's end is ``active``.
- ``median_age_days``: median of (end - the entry's ``entry.add`` time)
  over those entries, in days to one decimal, rounded down (0.0 if none).
- ``reverified_entries``: listed entries with an ``entry.verify*`` record
  in the period; ``reverification_coverage_percent`` is that share of
  ``listed_entries`` to one decimal, rounded down (0.0 when no
  re-verification records exist).
- ``appeals_received``: distinct appeals attached (``appeal.attach``) to
  the list in the period.
- ``appeals_upheld`` / ``appeals_removed`` / ``appeals_suspended``:
  ``appeal.decide`` records in the period, by outcome.
- ``median_days_to_decision``: median, over the first decision in the
  period of each (appeal, entry), of its time minus the attachment's, in
  days to one decimal, rounded down.
- ``referrals``: ``entry.refer`` records in the period.

The note (signed like every note of the service, c2sp.org/signed-note)::

    cleanfeed-transparency/v1
    origin <list origin>
    period YYYY-MM
    version <N: the latest version published before the period's end>
    audit <seq> <base64 chain hash after the last record before the end>
    <figure> <value>                   (one line per figure, in FIGURES order)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from blocklist.auditlog import AUDIT_ZERO, Action, Actor, AuditRecord
from blocklist.encoding import b64decode, b64encode
from blocklist.errors import FormatError

__all__ = [
    "FIGURES",
    "REPORT_HEADER",
    "TENTHS_FIGURES",
    "Report",
    "compute_figures",
    "format_tenths",
    "head_before",
    "parse_period",
    "parse_report",
    "period_of",
]

#: First line of every report note.
REPORT_HEADER: Final = "cleanfeed-transparency/v1"

#: The figures, in the order the note lists them (see :data:`TENTHS_FIGURES`).
FIGURES: Final = (
    "entries_added",
    "removed_analyst",
    "removed_expiry",
    "removed_gone",
    "removed_appeal",
    "listed_entries",
    "median_age_days",
    "reverified_entries",
    "reverification_coverage_percent",
    "appeals_received",
    "appeals_upheld",
    "appeals_removed",
    "appeals_suspended",
    "median_days_to_decision",
    "referrals",
)

#: The figures written as tenths (``N.D``); the others are whole numbers.
TENTHS_FIGURES: Final = frozenset(
    {"median_age_days", "reverification_coverage_percent", "median_days_to_decision"}
)

_PERIOD_RE: Final = re.compile(r"^([0-9]{4})-(0[1-9]|1[0-2])$")
_TENTHS_RE: Final = re.compile(r"^(0|[1-9][0-9]{0,15})\.[0-9]$")
_INT_RE: Final = re.compile(r"^(0|[1-9][0-9]{0,18})$")
_DAY_SECONDS: Final = 86_400
#: Action prefix of re-verification records (the reverify helper's names).
_VERIFY_PREFIX: Final = "entry.verify"
#: Referral records (the safeguards helper's name).
_REFER: Final = "entry.refer"


def parse_period(text: str) -> tuple[datetime, datetime]:
    """``YYYY-MM`` -> the month's ``[start, end)`` in UTC.

    Raises:
        FormatError: not ``YYYY-MM`` with a month 01..12 (year 0001 or later).
    """
    m = _PERIOD_RE.match(text) if isinstance(text, str) else None
    if m is None or int(m.group(1)) < 1:
        raise FormatError("a period is a calendar month written YYYY-MM, e.g. 2026-11")
    year, month = int(m.group(1)), int(m.group(2))
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def period_of(when: datetime) -> str:
    """The ``YYYY-MM`` period containing ``when`` (UTC)."""
    when = when.astimezone(UTC)
    return f"{when.year:04d}-{when.month:02d}"


def format_tenths(tenths: int) -> str:
    """``123`` -> ``"12.3"``."""
    return f"{tenths // 10}.{tenths % 10}"


def _median(values: Sequence[int]) -> int:
    if not values:
        return 0
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) // 2


def _days_tenths(seconds: int) -> int:
    return max(0, seconds) * 10 // _DAY_SECONDS


def _canary_ids(records: Iterable[AuditRecord]) -> set[int]:
    return {
        r.entry_id
        for r in records
        if r.action == Action.ENTRY_ADD
        and r.actor == Actor.CANARY
        and r.details.get("canary") is True
        and r.entry_id is not None
    }


def _removal_reason(r: AuditRecord) -> str:
    if "appeal" in r.details:
        return "appeal"
    if Actor.is_system(r.actor) and r.details.get("reason") == "gone":
        return "gone"
    if r.actor == Actor.EXPIRY:
        return "expiry"
    return "analyst"


def compute_figures(records: Sequence[AuditRecord], period: str) -> dict[str, str]:
    """Every figure of the report for ``period`` from a list's audit records.

    Args:
        records: the list's chain, in ``seq`` order (at least every record
            before the period's end; later ones are ignored).
        period: ``YYYY-MM``.

    Returns:
        ``{figure: value text}`` for every name of :data:`FIGURES`.

    Raises:
        FormatError: a bad period.
    """
    start, end = parse_period(period)
    before = [r for r in records if r.time < end]
    canary = _canary_ids(before)
    counts = dict.fromkeys(FIGURES, 0)
    added_at: dict[int, datetime] = {}
    status: dict[int, object] = {}
    verified: set[int] = set()
    attached: dict[tuple[int, int], datetime] = {}
    appeals: set[int] = set()
    decided: set[tuple[int, int]] = set()
    waits: list[int] = []
    for r in before:
        in_period = r.time >= start
        eid = r.entry_id
        if eid is not None and eid in canary:
            continue
        if r.action == Action.ENTRY_ADD and eid is not None:
            added_at[eid] = r.time
            if in_period:
                counts["entries_added"] += 1
        if eid is not None and r.action.startswith(Action.ENTRY_PREFIX) and "status" in r.details:
            status[eid] = r.details["status"]
        if not in_period:
            if r.action == Action.APPEAL_ATTACH and eid is not None:
                attached.setdefault((_int(r.details.get("appeal")), eid), r.time)
            elif r.action == Action.APPEAL_DECIDE and eid is not None:
                decided.add((_int(r.details.get("appeal")), eid))
            continue
        if r.action == Action.ENTRY_EXPIRE and r.details.get("status") == "expired":
            counts[f"removed_{_removal_reason(r)}"] += 1
        elif r.action.startswith(_VERIFY_PREFIX) and eid is not None:
            verified.add(eid)
        elif r.action == _REFER:
            counts["referrals"] += 1
        elif r.action == Action.APPEAL_ATTACH and eid is not None:
            appeal = _int(r.details.get("appeal"))
            appeals.add(appeal)
            attached.setdefault((appeal, eid), r.time)
        elif r.action == Action.APPEAL_DECIDE and eid is not None:
            key = (_int(r.details.get("appeal")), eid)
            outcome = r.details.get("outcome")
            if outcome in ("upheld", "removed", "suspended"):
                counts[f"appeals_{outcome}"] += 1
            if key not in decided and key in attached:
                waits.append(int((r.time - attached[key]).total_seconds()))
            decided.add(key)
    listed = [eid for eid, s in status.items() if s == "active"]
    counts["listed_entries"] = len(listed)
    counts["appeals_received"] = len(appeals)
    counts["reverified_entries"] = len(verified & set(listed))
    out = {name: str(value) for name, value in counts.items()}
    ages = [int((end - added_at[eid]).total_seconds()) for eid in listed if eid in added_at]
    out["median_age_days"] = format_tenths(_days_tenths(_median(ages)))
    coverage = counts["reverified_entries"] * 1000 // len(listed) if listed else 0
    out["reverification_coverage_percent"] = format_tenths(coverage)
    out["median_days_to_decision"] = format_tenths(_days_tenths(_median(waits)))
    return out


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


def head_before(records: Sequence[AuditRecord], end: datetime) -> tuple[int, bytes]:
    """The chain head (seq, hash) after the last record before ``end``.

    Records must carry their chain ``hash`` (as stores and bundles give
    them); ``(0, AUDIT_ZERO)`` when none is before ``end``.

    Raises:
        FormatError: a record before ``end`` carries no hash.
    """
    seq, head = 0, AUDIT_ZERO
    for r in records:
        if r.time >= end:
            break
        if r.hash is None:
            raise FormatError(f"audit record {r.seq} carries no chain hash")
        seq, head = r.seq, r.hash
    return seq, head


@dataclass(frozen=True)
class Report:
    """A transparency report's text, field by field."""

    origin: str
    period: str
    version: int
    audit_seq: int
    audit_head: bytes
    figures: Mapping[str, str]

    def to_text(self) -> str:
        """The note text (ends in a newline).

        Raises:
            FormatError: a figure is missing or malformed.
        """
        _check_figures(self.figures)
        lines = [
            REPORT_HEADER,
            f"origin {self.origin}",
            f"period {self.period}",
            f"version {self.version}",
            f"audit {self.audit_seq} {b64encode(self.audit_head)}",
            *(f"{name} {self.figures[name]}" for name in FIGURES),
        ]
        return "\n".join(lines) + "\n"


def _check_figures(figures: Mapping[str, str]) -> None:
    if set(figures) != set(FIGURES):
        raise FormatError("a report carries exactly the figures of FIGURES")
    for name in FIGURES:
        pattern = _TENTHS_RE if name in TENTHS_FIGURES else _INT_RE
        if not pattern.match(figures[name]):
            raise FormatError(f"figure {name} has the malformed value {figures[name][:20]!r}")


def _field(lines: list[str], i: int, key: str) -> str:
    if i >= len(lines):
        raise FormatError(f"report ends before its {key!r} line")
    name, sep, value = lines[i].partition(" ")
    if name != key or not sep or not value:
        raise FormatError(f"report line {i + 1} should be {key!r}, not {lines[i][:40]!r}")
    return value


def parse_report(text: str) -> Report:
    """Parse a report's note text (what :meth:`Report.to_text` wrote, exactly).

    Raises:
        FormatError: a wrong header, a missing, extra, misplaced or
            malformed line; a text that does not round-trip.
    """
    if not text.endswith("\n"):
        raise FormatError("report text must end in a newline")
    lines = text[:-1].split("\n")
    if not lines or lines[0] != REPORT_HEADER:
        raise FormatError(f"a transparency report starts with {REPORT_HEADER!r}")
    origin = _field(lines, 1, "origin")
    period = _field(lines, 2, "period")
    parse_period(period)
    version_text = _field(lines, 3, "version")
    if not _INT_RE.match(version_text):
        raise FormatError("report version is not a decimal number")
    seq_text, _, head_text = _field(lines, 4, "audit").partition(" ")
    if not _INT_RE.match(seq_text):
        raise FormatError("report audit seq is not a decimal number")
    head = b64decode(head_text, length=32, what="audit head")
    figures = {name: _field(lines, 5 + i, name) for i, name in enumerate(FIGURES)}
    if len(lines) != 5 + len(FIGURES):
        raise FormatError("report has lines after its last figure")
    report = Report(origin, period, int(version_text), int(seq_text), head, figures)
    if report.to_text() != text:
        raise FormatError("report text is not in canonical form")
    return report
