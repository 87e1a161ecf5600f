"""The pure transparency figures and note format (blocklist.transparency)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from blocklist.auditlog import AUDIT_ZERO, Action, Actor, AuditRecord, chain_hash
from blocklist.errors import FormatError
from blocklist.transparency import (
    FIGURES,
    Report,
    compute_figures,
    head_before,
    parse_period,
    parse_report,
)

NOV = datetime(2026, 11, 1, tzinfo=UTC)


def _records(
    specs: list[tuple[datetime, str, str, int | None, dict[str, object]]],
) -> list[AuditRecord]:
    out = []
    prev = AUDIT_ZERO
    for seq, (when, actor, action, entry, details) in enumerate(specs, start=1):
        r = AuditRecord(seq, when, actor, action, "main", entry, details)
        prev = chain_hash(prev, r)
        out.append(AuditRecord(seq, when, actor, action, "main", entry, details, hash=prev))
    return out


def _day(n: int) -> datetime:
    return NOV + timedelta(days=n)


H = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


def test_period_bounds_and_refusals() -> None:
    assert parse_period("2026-12") == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    for bad in ("2026-13", "2026-1", "26-11", "2026-00", "0000-01", "2026-11 "):
        with pytest.raises(FormatError):
            parse_period(bad)


def test_figures_count_by_reason_code_and_exclude_the_canary() -> None:
    add = Action.ENTRY_ADD
    records = _records(
        [
            (NOV - timedelta(days=40), Actor.CANARY, add, 1, {"canary": True, "status": "active"}),
            (NOV - timedelta(days=10), "alice", add, 2, {"status": "pending"}),
            (NOV - timedelta(days=9), "bob", Action.ENTRY_APPROVE, 2, {"status": "active"}),
            (_day(1), "alice", add, 3, {"status": "pending"}),
            (_day(1), "bob", Action.ENTRY_APPROVE, 3, {"status": "active"}),
            (_day(2), "alice", add, 4, {"status": "pending"}),
            (_day(2), "bob", Action.ENTRY_APPROVE, 4, {"status": "active"}),
            (_day(3), "alice", add, 5, {"status": "pending"}),
            (_day(3), "bob", Action.ENTRY_APPROVE, 5, {"status": "active"}),
            (_day(4), Actor.APPEALS, Action.APPEAL_ATTACH, 3, {"appeal": 7, "hash": H}),
            (_day(6), "carol", Action.APPEAL_DECIDE, 3, {"appeal": 7, "outcome": "removed"}),
            (
                _day(6),
                "carol",
                Action.ENTRY_EXPIRE,
                3,
                {"appeal": 7, "reason": "appeal", "status": "expired"},
            ),
            (_day(7), Actor.EXPIRY, Action.ENTRY_EXPIRE, 4, {"status": "expired"}),
            (
                _day(8),
                "system:reverify",
                Action.ENTRY_EXPIRE,
                5,
                {"reason": "gone", "status": "expired"},
            ),
            (_day(9), "alice", "entry.refer", 2, {}),
            (_day(9), "system:reverify", "entry.verify", 2, {}),
            # After the period: ignored.
            (_day(40), "alice", add, 6, {"status": "pending"}),
            # The canary is never counted, even when taken off.
            (_day(10), "bob", Action.ENTRY_EXPIRE, 1, {"status": "expired"}),
        ]
    )
    records.sort(key=lambda r: r.seq)
    f = compute_figures(records, "2026-11")
    assert set(f) == set(FIGURES)
    assert f["entries_added"] == "3"
    assert (f["removed_appeal"], f["removed_expiry"], f["removed_gone"], f["removed_analyst"]) == (
        "1",
        "1",
        "1",
        "0",
    )
    assert f["listed_entries"] == "1"  # entry 2; the canary is not counted
    assert f["median_age_days"] == "40.0"  # added 10 days before a 30-day month ended
    assert f["reverified_entries"] == "1"
    assert f["reverification_coverage_percent"] == "100.0"
    assert f["appeals_received"] == "1"
    assert f["appeals_removed"] == "1"
    assert f["median_days_to_decision"] == "2.0"
    assert f["referrals"] == "1"


def test_the_note_text_round_trips_and_refuses_anything_else() -> None:
    figures = dict.fromkeys(FIGURES, "0")
    for name in ("median_age_days", "reverification_coverage_percent", "median_days_to_decision"):
        figures[name] = "0.0"
    report = Report("example.org/main", "2026-11", 5, 9, bytes(32), figures)
    text = report.to_text()
    assert parse_report(text) == report
    for bad in (
        text.replace("cleanfeed-transparency/v1", "cleanfeed-transparency/v2"),
        text.replace("referrals 0\n", "referrals 0\nextra 1\n"),
        text.replace("referrals 0\n", "referrals 00\n"),
        text.replace("median_age_days 0.0", "median_age_days 0"),
        text.replace("period 2026-11", "period 2026-13"),
        text[:-1],
    ):
        with pytest.raises(FormatError):
            parse_report(bad)


def test_head_before_is_the_last_record_before_the_end() -> None:
    records = _records(
        [
            (_day(1), "alice", Action.ENTRY_ADD, 1, {}),
            (_day(29), "alice", Action.ENTRY_ADD, 2, {}),
            (_day(31), "alice", Action.ENTRY_ADD, 3, {}),
        ]
    )
    _, end = parse_period("2026-11")
    assert head_before(records, end) == (2, records[1].hash)
    assert head_before(records, NOV) == (0, AUDIT_ZERO)
