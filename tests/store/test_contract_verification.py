"""Contract: re-verification state, proposals and system expiries (both backends)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from support.contract_helpers import NOW, publish_pages

from blocklist.auditlog import Action, Actor
from blocklist.store import Database
from blocklist.store import entries as store_entries
from blocklist.store import verification as store_verification
from blocklist.store.models import AuditRow, EntryRow, ListRow
from blocklist.verification import (
    DNS_NXDOMAIN,
    DNS_OK,
    Observation,
    VerificationState,
    advance,
)

GONE = [Observation("a", DNS_NXDOMAIN), Observation("b", DNS_NXDOMAIN)]
LIVE = [Observation("a", DNS_OK, ("192.0.2.1",), http_status=200)]


def listed(db: Database, list_id: int, n: int) -> list[int]:
    return publish_pages(db, list_id, n, "v.example.com")


def check(
    db: Database, list_id: int, entry_id: int, observations: list[Observation], day: int, **kw: bool
) -> store_verification.Recorded:
    now = NOW + timedelta(days=day)
    with db.read() as s:
        state = store_verification.get_state(s, entry_id)
    outcome = advance(
        state,
        observations,
        now=now,
        gone_threshold=2,
        max_unverified_days=30,
        listed_since=NOW,
    )
    with db.transaction() as s:
        return store_verification.record(
            s,
            list_id,
            entry_id,
            outcome,
            gone_threshold=2,
            auto_expire_gone=kw.get("auto", False),
            now=now,
        )


def test_targets_skip_the_canary_and_put_the_least_recently_checked_first(
    db: Database, list_id: int
) -> None:
    ids = listed(db, list_id, 3)
    with db.read() as s:
        canary = s.get(ListRow, list_id).canary_entry_id  # type: ignore[union-attr]
        first = store_verification.targets(s, list_id, limit=10)
    assert canary not in [t.entry_id for t in first]
    assert [t.entry_id for t in first] == ids
    assert all(t.state == VerificationState() for t in first)
    check(db, list_id, ids[0], LIVE, 1)
    with db.read() as s:
        later = store_verification.targets(s, list_id, limit=2)
    assert [t.entry_id for t in later] == ids[1:]
    with db.read() as s:
        assert store_verification.entry_state(s, list_id, canary) is None  # type: ignore[arg-type]


def test_gone_twice_proposes_once_and_live_withdraws(db: Database, list_id: int) -> None:
    (eid,) = listed(db, list_id, 1)
    assert not check(db, list_id, eid, GONE, 1).proposed
    assert check(db, list_id, eid, GONE, 2).proposed
    assert not check(db, list_id, eid, GONE, 3).proposed
    with db.read() as s:
        queue = store_verification.proposals(s, list_id)
        actions = s.scalars(select(AuditRow.action).where(AuditRow.entry_id == eid)).all()
    assert [(p.entry_id, p.kind, p.consecutive_gone) for p in queue] == [(eid, "expiry", 3)]
    assert actions.count(Action.ENTRY_VERIFY_PROPOSE_EXPIRY) == 1
    check(db, list_id, eid, LIVE, 4)
    with db.read() as s:
        assert store_verification.proposals(s, list_id) == []
        (summary,) = [x for x in store_verification.summaries(s) if x.counts]
    assert summary.counts == {"live": 1}


def test_auto_expiry_is_a_system_decision_with_the_vantage_points(
    db: Database, list_id: int
) -> None:
    (eid,) = listed(db, list_id, 1)
    check(db, list_id, eid, GONE, 1, auto=True)
    done = check(db, list_id, eid, GONE, 2, auto=True)
    assert done.expired
    with db.read() as s:
        entry = s.get(EntryRow, eid)
        record = s.scalars(
            select(AuditRow).where(AuditRow.entry_id == eid, AuditRow.action == Action.ENTRY_EXPIRE)
        ).one()
    assert entry is not None
    assert (entry.status, entry.needs_publish) == ("expired", True)
    assert record.actor == Actor.REVERIFY
    assert record.details["reason"] == "gone"
    assert [v["name"] for v in record.details["vantage_points"]] == ["a", "b"]
    # An expired entry is no longer checked, and a late result is not stored.
    assert not check(db, list_id, eid, LIVE, 3).stored


def test_a_reinstated_entry_starts_afresh(db: Database, list_id: int) -> None:
    (eid,) = listed(db, list_id, 1)
    check(db, list_id, eid, GONE, 1)
    check(db, list_id, eid, GONE, 2)
    with db.transaction() as s:
        store_entries.expire(s, list_id, eid, actor="alice", reason="proposal accepted", now=NOW)
    with db.read() as s:
        assert store_verification.proposals(s, list_id) == []
    with db.transaction() as s:
        store_entries.reinstate(s, list_id, eid, actor="carol", reason="back", now=NOW)
    with db.transaction() as s:
        store_entries.approve(s, list_id, eid, actor="bob", actor_role="analyst", now=NOW)
    with db.read() as s:
        # No stale expiry proposal from the previous round, and unchecked again.
        assert store_verification.proposals(s, list_id) == []
        assert store_verification.get_state(s, eid) == VerificationState()
        (target,) = store_verification.targets(s, list_id, limit=10)
        (summary,) = [x for x in store_verification.summaries(s) if x.list_name == "main"]
    assert target.state == VerificationState()
    assert summary.counts == {"unchecked": 1}
    # The new round's first gone check is the first of its run.
    assert not check(db, list_id, eid, GONE, 3).proposed
    with db.read() as s:
        assert store_verification.get_state(s, eid).consecutive_gone == 1
