"""Contract: retention prunes old snapshots and off-list plaintext, and nothing else.

The oracle for snapshots is an independent replay of the published deltas
(a Python set per version), taken before anything is pruned.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from support.contract_helpers import NOW, later, publish, state_of, table_counts

from blocklist.auditlog import Action, verify_chain
from blocklist.encoding import b64encode
from blocklist.store import Database, InvalidField, InvalidState, NotFound, Pruned
from blocklist.store import audit as store_audit
from blocklist.store import entries as store_entries
from blocklist.store import imports as store_imports
from blocklist.store import versions as store_versions
from blocklist.store.lists import get_list_by_id
from blocklist.store.models import EntryRow, MembershipRow
from blocklist.store.retention import (
    SYSTEM_RETENTION,
    PruneResult,
    RetentionPolicy,
    floor_at,
    prune_database,
    prune_list,
)

Unchanged = Callable[..., None]


def _add(db: Database, list_id: int, name: str, *, approve: bool = True) -> int:
    with db.transaction() as s:
        entry, created = store_entries.add_entry(
            s,
            list_id,
            url=f"http://{name}.example.com/page.html",
            scope="page",
            reason="synthetic",
            actor="alice",
            now=NOW,
        )
        assert created
        entry_id = entry.id
    if approve:
        with db.transaction() as s:
            store_entries.approve(s, list_id, entry_id, actor="bob", actor_role="analyst", now=NOW)
    return entry_id


def _expire(db: Database, list_id: int, entry_id: int, *, days: float) -> None:
    with db.transaction() as s:
        store_entries.expire(s, list_id, entry_id, actor="dave", reason="off", now=later(days=days))


def store_audit_head(db: Database, list_id: int) -> bytes:
    with db.read() as s:
        return store_audit.head(s, list_id).hash


def _members(db: Database, list_id: int) -> int:
    with db.read() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(MembershipRow)
                .where(MembershipRow.list_id == list_id)
            )
            or 0
        )


def _history(db: Database, list_id: int) -> list[set[bytes]]:
    """Versions 1..6 published a day apart; returns the replayed set of each (index = version)."""
    ids = [_add(db, list_id, f"h{i}") for i in range(6)]
    sets: list[set[bytes]] = [set()]
    current: set[bytes] = set()
    plan: list[tuple[list[int], list[int]]] = [
        (ids[:3], []),  # v1: canary + h0..h2 (entries added before, published now)
        ([], [ids[0]]),  # v2: h0 off
        ([], [ids[1]]),  # v3: h1 off
        ([], [ids[2]]),  # v4: h2 off
        ([], [ids[3]]),  # v5: h3 off (h3..h5 were added in v1 too)
        ([], [ids[4]]),  # v6: h4 off
    ]
    for day, (_, off) in enumerate(plan, start=1):
        for entry_id in off:
            _expire(db, list_id, entry_id, days=day - 0.5)
        version, adds, removes = publish(db, list_id, now=later(days=day))
        assert version == day
        current = (current | set(adds)) - set(removes)
        sets.append(set(current))
    return sets


def _snapshot(db: Database, list_id: int, version: int) -> set[bytes]:
    with db.read() as s:
        hashes = store_versions.snapshot(s, list_id, version)
    assert hashes == sorted(hashes)
    return set(hashes)


# --- policy ------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, -1, 36_501, True, 1.5, "3"])
def test_policy_refuses_periods_outside_one_day_to_a_century(value: object) -> None:
    with pytest.raises(InvalidField):
        RetentionPolicy(snapshot_days=value)  # type: ignore[arg-type]
    with pytest.raises(InvalidField):
        RetentionPolicy(plaintext_days=value)  # type: ignore[arg-type]


def test_an_empty_policy_is_disabled_and_prunes_nothing(db: Database, list_id: int) -> None:
    _history(db, list_id)
    assert not RetentionPolicy().enabled
    before = state_of(db)
    with db.transaction() as s:
        result = prune_list(s, list_id, RetentionPolicy(), now=later(days=400))
    assert not result.changed
    assert state_of(db) == before


# --- snapshots ---------------------------------------------------------------


def test_snapshot_floor_is_the_version_current_at_the_cutoff(db: Database, list_id: int) -> None:
    _history(db, list_id)
    with db.read() as s:
        assert floor_at(s, list_id, NOW) == 0
        assert floor_at(s, list_id, later(days=3)) == 3
        assert floor_at(s, list_id, later(days=3.9)) == 3
        assert floor_at(s, list_id, later(days=30)) == 6


def test_pruning_snapshots_keeps_every_retained_snapshot_exact(db: Database, list_id: int) -> None:
    sets = _history(db, list_id)
    members_before = _members(db, list_id)
    # Ten days after version 1: the cutoff (day 3.5) falls while version 3 was current.
    with db.transaction() as s:
        result = prune_list(s, list_id, RetentionPolicy(snapshot_days=7), now=later(days=10.5))
    assert (result.previous_floor, result.snapshot_floor) == (0, 3)
    # Memberships removed at versions 2 and 3 belong to no snapshot >= 3.
    assert result.memberships_deleted == 2
    assert _members(db, list_id) == members_before - 2
    for version in range(3, 7):
        assert _snapshot(db, list_id, version) == sets[version]
    for version in (0, 1, 2):
        with db.read() as s, pytest.raises(Pruned, match="kept from version 3"):
            store_versions.snapshot(s, list_id, version)
    with db.read() as s:
        assert get_list_by_id(s, list_id).snapshot_floor == 3
        record = store_audit.records(s, list_id, since=0, limit=1000)[-1]
    assert (record.actor, record.action) == (SYSTEM_RETENTION, Action.RETENTION_SNAPSHOTS)
    assert record.details["floor"] == 3
    assert record.details["memberships_deleted"] == 2
    # Statements of pruned snapshots stay (the audit trail).
    with db.read() as s:
        assert len(store_versions.statements(s, list_id, since=0, limit=100)) == 6


def test_a_pruned_snapshot_is_gone_not_missing(db: Database, list_id: int) -> None:
    _history(db, list_id)
    with db.transaction() as s:
        prune_list(s, list_id, RetentionPolicy(snapshot_days=1), now=later(days=30))
    with db.read() as s:
        with pytest.raises(Pruned) as gone:
            store_versions.snapshot(s, list_id, 5)
        assert isinstance(gone.value, NotFound)  # callers that only know NotFound still refuse
        assert gone.value.code == "pruned"
        with pytest.raises(NotFound) as missing:
            store_versions.snapshot(s, list_id, 7)
        assert not isinstance(missing.value, Pruned)


def test_the_floor_never_moves_back_and_a_second_run_is_a_no_op(db: Database, list_id: int) -> None:
    _history(db, list_id)
    with db.transaction() as s:
        prune_list(s, list_id, RetentionPolicy(snapshot_days=1), now=later(days=5.5))
    before = state_of(db)
    for days in (1, 30):  # same policy again, then a longer period
        with db.transaction() as s:
            result = prune_list(
                s, list_id, RetentionPolicy(snapshot_days=days), now=later(days=5.5)
            )
        assert result.snapshot_floor == result.previous_floor == 4
        assert not result.changed
    assert state_of(db) == before


def test_publishing_continues_after_pruning_and_re_adds_a_pruned_hash(
    db: Database, list_id: int
) -> None:
    sets = _history(db, list_id)
    with db.transaction() as s:
        prune_list(s, list_id, RetentionPolicy(snapshot_days=1), now=later(days=30))
    # h0 came off in version 2, and its membership row is gone; it comes back
    # through the normal four-eyes path and version 7 adds it again.
    with db.read() as s:
        h0 = s.scalar(select(EntryRow.id).where(EntryRow.url == "http://h0.example.com/page.html"))
    assert h0 is not None
    with db.transaction() as s:
        store_entries.reinstate(s, list_id, h0, actor="carol", reason="back", now=later(days=31))
    with db.transaction() as s:
        store_entries.approve(s, list_id, h0, actor="bob", actor_role="analyst", now=later(days=31))
    _expire(db, list_id, _entry_by_name(db, "h5"), days=31)
    version, adds, removes = publish(db, list_id, now=later(days=32))
    assert version == 7
    assert len(adds) == 1
    assert len(removes) == 1
    assert _snapshot(db, list_id, 7) == (sets[6] | set(adds)) - set(removes)


def _entry_by_name(db: Database, name: str) -> int:
    with db.read() as s:
        entry_id = s.scalar(
            select(EntryRow.id).where(EntryRow.url == f"http://{name}.example.com/page.html")
        )
    assert entry_id is not None
    return entry_id


def test_a_snapshot_dry_run_counts_and_changes_nothing(db: Database, list_id: int) -> None:
    _history(db, list_id)
    before = state_of(db)
    with db.transaction() as s:
        result = prune_list(
            s, list_id, RetentionPolicy(snapshot_days=7), now=later(days=10.5), dry_run=True
        )
    assert (result.snapshot_floor, result.memberships_deleted, result.dry_run) == (3, 2, True)
    assert state_of(db) == before
    assert _snapshot(db, list_id, 1) != set()


# --- plaintext ---------------------------------------------------------------


def _plaintext(db: Database, entry_id: int) -> tuple[str, str, str, bool]:
    with db.read() as s:
        e = s.get(EntryRow, entry_id)
        assert e is not None
        return e.expression, e.url, e.host, e.plaintext_pruned_at is not None


def test_plaintext_is_pruned_only_for_entries_long_off_and_published_off(
    db: Database, list_id: int
) -> None:
    old_off = _add(db, list_id, "old-off")
    recent_off = _add(db, list_id, "recent-off")
    listed = _add(db, list_id, "listed")
    pending = _add(db, list_id, "pending", approve=False)
    never_listed = _add(db, list_id, "never-listed")
    publish(db, list_id, now=later(days=1))
    unpublished_off = _add(db, list_id, "unpublished-off")
    publish(db, list_id, now=later(days=1.5))
    _expire(db, list_id, old_off, days=2)
    _expire(db, list_id, never_listed, days=0.1)  # removed before any version
    publish(db, list_id, now=later(days=2.5))
    _expire(db, list_id, recent_off, days=50)
    _expire(db, list_id, unpublished_off, days=3)  # its removal is not yet published
    before = {i: _plaintext(db, i) for i in (listed, pending, recent_off, unpublished_off)}

    with db.transaction() as s:
        result = prune_list(s, list_id, RetentionPolicy(plaintext_days=30), now=later(days=60))
    assert result.plaintext_pruned == 2
    assert not result.more
    for entry_id in (old_off, never_listed):
        assert _plaintext(db, entry_id) == ("", "", "", True)
    assert {i: _plaintext(db, i) for i in before} == before
    with db.read() as s:
        canary = get_list_by_id(s, list_id).canary_entry_id
        records = store_audit.records(s, list_id, since=0, limit=1000)
    assert canary is not None
    assert not _plaintext(db, canary)[3]
    prunes = [r for r in records if r.action == Action.ENTRY_PRUNE_PLAINTEXT]
    assert sorted(r.entry_id for r in prunes if r.entry_id) == sorted([old_off, never_listed])
    assert all(r.actor == SYSTEM_RETENTION for r in prunes)
    with db.read() as s:
        hashes = {
            e.id: e.hash
            for e in s.scalars(select(EntryRow).where(EntryRow.id.in_([old_off, never_listed])))
        }
    # The hash stays (and is what the records name): expression_hash of the old URL.
    for r in prunes:
        assert r.entry_id is not None
        assert r.details["hash"] == b64encode(hashes[r.entry_id])
    assert hashes[old_off] == hashlib.sha256(b"old-off.example.com/page.html").digest()
    # The audit chain still verifies after the erasure, up to the stored head.
    assert verify_chain(records) == store_audit_head(db, list_id)


def test_plaintext_is_pruned_in_bounded_batches(db: Database, list_id: int) -> None:
    ids = [_add(db, list_id, f"b{i}") for i in range(7)]
    publish(db, list_id, now=later(days=1))
    for entry_id in ids:
        _expire(db, list_id, entry_id, days=2)
    publish(db, list_id, now=later(days=3))
    policy = RetentionPolicy(plaintext_days=10)
    with db.transaction() as s:
        first = prune_list(s, list_id, policy, now=later(days=20), limit=3)
    assert (first.plaintext_pruned, first.more) == (3, True)
    seen: list[tuple[str, PruneResult]] = []
    totals = prune_database(
        db,
        policy,
        now=later(days=20),
        progress=lambda name, total: seen.append((name, total)),
    )
    assert totals["main"].plaintext_pruned == 4
    assert all(_plaintext(db, i)[3] for i in ids)
    assert seen
    assert seen[-1][0] == "main"


def test_a_plaintext_dry_run_counts_and_changes_nothing(db: Database, list_id: int) -> None:
    entry_id = _add(db, list_id, "dry")
    publish(db, list_id, now=later(days=1))
    _expire(db, list_id, entry_id, days=2)
    publish(db, list_id, now=later(days=3))
    before = state_of(db)
    totals = prune_database(db, RetentionPolicy(plaintext_days=1), now=later(days=9), dry_run=True)
    assert totals["main"].plaintext_pruned == 1
    assert state_of(db) == before
    assert not _plaintext(db, entry_id)[3]


def _pruned_entry(db: Database, list_id: int, name: str) -> int:
    entry_id = _add(db, list_id, name)
    publish(db, list_id, now=later(days=1))
    _expire(db, list_id, entry_id, days=2)
    publish(db, list_id, now=later(days=3))
    with db.transaction() as s:
        prune_list(s, list_id, RetentionPolicy(plaintext_days=1), now=later(days=9))
    assert _plaintext(db, entry_id)[3]
    return entry_id


def test_reinstating_a_pruned_entry_is_refused_until_its_url_is_added_again(
    db: Database, list_id: int, unchanged: Unchanged
) -> None:
    entry_id = _pruned_entry(db, list_id, "again")

    def reinstate() -> None:
        with db.transaction() as s:
            store_entries.reinstate(
                s, list_id, entry_id, actor="carol", reason="back", now=later(days=10)
            )

    unchanged(reinstate, InvalidState, "pruned by retention")
    with db.transaction() as s:
        entry, created = store_entries.add_entry(
            s,
            list_id,
            url="http://again.example.com/page.html",
            scope="page",
            reason="seen again",
            actor="carol",
            now=later(days=10),
        )
        assert (entry.id, created) == (entry_id, False)
    assert _plaintext(db, entry_id) == (
        "again.example.com/page.html",
        "http://again.example.com/page.html",
        "again.example.com",
        False,
    )
    reinstate()
    with db.read() as s:
        actions = [r.action for r in store_audit.entry_records(s, entry_id)]
    assert actions[-3:] == [
        Action.ENTRY_PRUNE_PLAINTEXT,
        Action.ENTRY_RESTORE_PLAINTEXT,
        Action.ENTRY_REINSTATE,
    ]


def test_bulk_add_restores_pruned_plaintext_once(db: Database, list_id: int) -> None:
    entry_id = _pruned_entry(db, list_id, "bulk")
    row = store_imports.BulkRow("http://bulk.example.com/page.html", "page", "again")
    with db.transaction() as s:
        results = store_imports.bulk_add(s, list_id, [row, row], actor="carol", now=later(days=10))
    assert [r.status for r in results] == ["existing", "existing"]
    assert _plaintext(db, entry_id) == (
        "bulk.example.com/page.html",
        "http://bulk.example.com/page.html",
        "bulk.example.com",
        False,
    )
    with db.read() as s:
        actions = [r.action for r in store_audit.entry_records(s, entry_id)]
    assert actions.count(Action.ENTRY_RESTORE_PLAINTEXT) == 1


def test_prune_database_refuses_an_unknown_list_before_pruning(db: Database, list_id: int) -> None:
    _pruned_entry(db, list_id, "first")
    counts = table_counts(db)
    with pytest.raises(NotFound):
        prune_database(db, RetentionPolicy(snapshot_days=1), lists=["main", "nope"])
    assert table_counts(db) == counts


def test_cutoffs_are_relative_to_now(db: Database, list_id: int) -> None:
    entry_id = _add(db, list_id, "edge")
    publish(db, list_id, now=later(days=1))
    _expire(db, list_id, entry_id, days=2)
    publish(db, list_id, now=later(days=3))
    off_at = later(days=2)
    policy = RetentionPolicy(plaintext_days=5)
    with db.transaction() as s:
        assert (
            prune_list(
                s, list_id, policy, now=off_at + timedelta(days=5, seconds=-1)
            ).plaintext_pruned
            == 0
        )
    with db.transaction() as s:
        assert prune_list(s, list_id, policy, now=off_at + timedelta(days=5)).plaintext_pruned == 1
