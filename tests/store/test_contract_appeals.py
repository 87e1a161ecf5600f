"""Contract: appeals are filed, matched, decided and erased alike on both backends."""

from __future__ import annotations

from datetime import timedelta

import pytest
from support.contract_helpers import NOW, publish, table_counts

from blocklist.blockref import block_ref
from blocklist.store import Database
from blocklist.store import appeals as store_appeals
from blocklist.store import audit as store_audit
from blocklist.store import entries as store_entries
from blocklist.store.models import EntryRow, ListRow

URL = "http://h.example.com/a/page.html"
WINDOW = timedelta(hours=24)


def _listed(db: Database, list_id: int, url: str = URL) -> EntryRow:
    with db.transaction() as s:
        entry, _ = store_entries.add_entry(
            s, list_id, url=url, scope="page", reason="r", actor="alice", now=NOW
        )
        store_entries.approve(s, list_id, entry.id, actor="bob", actor_role="analyst", now=NOW)
        entry_id = entry.id
    publish(db, list_id)
    with db.read() as s:
        row = s.get(EntryRow, entry_id)
        assert row is not None
        return row


def _file(db: Database, **kw: object) -> store_appeals.Filed:
    args: dict[str, object] = {
        "block_ref_text": None,
        "url": None,
        "message": "wrong",
        "contact": None,
        "dedup_window": WINDOW,
        "cap_per_hour": 0,
        "cap_per_day": 0,
        "now": NOW,
    }
    args.update(kw)
    with db.transaction() as s:
        return store_appeals.file_appeal(s, **args)  # type: ignore[arg-type]


def test_appeals_attach_to_every_matching_list_but_never_to_a_canary(
    db: Database, list_id: int, list2_id: int
) -> None:
    a = _listed(db, list_id)
    with db.transaction() as s:
        e2, _ = store_entries.add_entry(
            s, list2_id, url=URL, scope="page", reason="r", actor="alice", now=NOW
        )
        for who in ("bob", "carol"):
            store_entries.approve(s, list2_id, e2.id, actor=who, actor_role="analyst", now=NOW)
    publish(db, list2_id)
    filed = _file(db, url=URL)
    assert filed.list_ids == (list_id, list2_id)
    by_ref = _file(db, block_ref_text=block_ref(a.hash), message="other words")
    assert by_ref.list_ids == (list_id, list2_id)  # the same expression on both lists
    with db.read() as s:
        lst = s.get(ListRow, list_id)
        assert lst is not None
        canary = s.get(EntryRow, lst.canary_entry_id)
        assert canary is not None
        canary_ref = block_ref(canary.hash)
    assert _file(db, block_ref_text=canary_ref).list_ids == ()


def test_a_refused_appeal_changes_nothing(db: Database, list_id: int) -> None:
    _listed(db, list_id)
    before = table_counts(db)
    ref = block_ref(bytes(32))
    typo = ref[:4] + ("B" if ref[4] != "B" else "C") + ref[5:]
    with pytest.raises(store_appeals.AppealRefMistyped):
        _file(db, block_ref_text=typo)
    _file(db, url="http://example.org/1", cap_per_hour=1)
    after_one = table_counts(db)
    with pytest.raises(store_appeals.AppealCapReached):
        _file(db, url="http://example.org/2", cap_per_hour=1)
    assert table_counts(db) == after_one
    assert after_one["appeals"] == before["appeals"] + 1


def test_the_cap_says_when_the_window_has_room_again(db: Database, list_id: int) -> None:
    for minutes in (0, 10, 20):  # three appeals in the hour, filed without a cap
        _file(db, url=f"http://example.org/w{minutes}", now=NOW + timedelta(minutes=minutes))
    with pytest.raises(store_appeals.AppealCapReached) as refused:
        _file(db, url="http://example.org/late", cap_per_hour=2, now=NOW + timedelta(minutes=30))
    # Below the cap of 2 once the two oldest have left the hour: the one of
    # minute 10 leaves at minute 70, 40 minutes after minute 30.
    assert refused.value.retry_after == 40 * 60


def test_reviewer_rule_and_outcomes(db: Database, list_id: int) -> None:
    entry = _listed(db, list_id)
    filed = _file(db, url=URL)
    for who in ("alice", "bob"):
        with db.transaction() as s, pytest.raises(store_appeals.IneligibleReviewer):
            store_appeals.decide(
                s, list_id, filed.appeal_id, actor=who, outcome="removed", reason="r", now=NOW
            )
    with db.transaction() as s:
        done = store_appeals.decide(
            s, list_id, filed.appeal_id, actor="carol", outcome="suspended", reason="r", now=NOW
        )
    assert done.publish_now
    with db.read() as s:
        row = s.get(EntryRow, entry.id)
        assert row is not None
        assert row.status == "expired"
        assert row.needs_publish
        store_audit.verify(s, list_id)
        store_audit.verify(s, None)
    with db.transaction() as s:
        store_appeals.decide(
            s, list_id, filed.appeal_id, actor="carol", outcome="removed", reason="r", now=NOW
        )
    with db.read() as s:
        state = store_appeals.public_state(s, filed.secret)
    assert state == (filed.appeal_id, "removed")
