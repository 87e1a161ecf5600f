"""Contract: bulk imports grouped by id and bulk approval with four-eyes per entry.

Issue 13 item 7: 10,000 imported entries must not need 10,000 approval
calls, and the four-eyes rule still holds for every entry of a batch. Runs
on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import inspect, select
from support.contract_helpers import NOW, insert_list_row

from blocklist.auditlog import Action, verify_chain
from blocklist.store import (
    AdminCannotApprove,
    Database,
    LimitExceeded,
    NotFound,
    PermissionDenied,
    migrate,
)
from blocklist.store import audit as store_audit
from blocklist.store import imports as store_imports
from blocklist.store import lists as store_lists
from blocklist.store.imports import APPROVE_APPROVED, APPROVE_REFUSED, BulkRow
from blocklist.store.models import ApprovalRow, AuditRow, EntryRow

Unchanged = Callable[[Callable[[], object], type[BaseException]], None]


def rows(n: int, start: int = 0) -> list[BulkRow]:
    return [
        BulkRow(url=f"http://bulk.example.com/p/{i}.html", scope="page", reason="report")
        for i in range(start, start + n)
    ]


def import_batch(
    db: Database,
    list_id: int,
    n: int,
    *,
    actor: str = "alice",
    import_id: int | None = None,
    start: int = 0,
) -> tuple[int, list[int]]:
    with db.transaction() as s:
        if import_id is None:
            import_id = store_imports.create_import(s, list_id, actor=actor, now=NOW).id
        results = store_imports.bulk_add(
            s, list_id, rows(n, start), actor=actor, import_id=import_id, now=NOW
        )
    return import_id, [r.entry_id for r in results if r.entry_id is not None]


def approve_many(
    db: Database, list_id: int, ids: list[int], actor: str = "bob", role: str = "analyst"
) -> list[store_imports.ApproveResult]:
    with db.transaction() as s:
        return store_imports.approve_many(s, list_id, ids, actor=actor, actor_role=role, now=NOW)


def test_bulk_add_under_an_import_records_it(db: Database, list_id: int) -> None:
    import_id, ids = import_batch(db, list_id, 3)
    with db.read() as s:
        page = store_imports.import_entries(s, list_id, import_id)
        adds = s.scalars(
            select(AuditRow).where(AuditRow.action == Action.ENTRY_ADD, AuditRow.entry_id.in_(ids))
        ).all()
    assert page.entry_ids == ids
    assert page.next_cursor is None
    assert {r.details["import"] for r in adds} == {import_id}


def test_a_second_batch_joins_the_import_and_pages_are_ordered(db: Database, list_id: int) -> None:
    import_id, first = import_batch(db, list_id, 3)
    with db.transaction() as s:
        second = store_imports.bulk_add(
            s, list_id, rows(2, start=10), actor="alice", import_id=import_id, now=NOW
        )
    ids = first + [r.entry_id for r in second if r.entry_id is not None]
    with db.read() as s:
        page1 = store_imports.import_entries(s, list_id, import_id, limit=4)
        page2 = store_imports.import_entries(
            s, list_id, import_id, cursor=page1.next_cursor, limit=4
        )
    assert page1.entry_ids == ids[:4]
    assert page1.next_cursor == ids[3]
    assert page2.entry_ids == ids[4:]
    assert page2.next_cursor is None


def test_another_analysts_import_cannot_be_extended(
    db: Database, list_id: int, unchanged: Unchanged
) -> None:
    import_id, _ = import_batch(db, list_id, 1)

    def extend() -> None:
        with db.transaction() as s:
            store_imports.bulk_add(s, list_id, rows(1, 5), actor="carol", import_id=import_id)

    unchanged(extend, PermissionDenied)


def test_an_import_of_another_list_is_not_found(
    db: Database, list_id: int, list2_id: int, unchanged: Unchanged
) -> None:
    import_id, _ = import_batch(db, list_id, 1)

    def extend() -> None:
        with db.transaction() as s:
            store_imports.bulk_add(s, list2_id, rows(1, 5), actor="alice", import_id=import_id)

    unchanged(extend, NotFound)
    with db.read() as s, pytest.raises(NotFound):
        store_imports.import_entries(s, list2_id, import_id)


def test_bulk_approval_applies_four_eyes_per_entry(db: Database, list_id: int) -> None:
    _, alices = import_batch(db, list_id, 3, actor="alice")
    _, bobs = import_batch(db, list_id, 2, actor="bob", start=100)  # bob's own: refused per entry
    results = approve_many(db, list_id, [*alices, *bobs, 999_999], actor="bob")
    by_id = {r.entry_id: r for r in results}
    assert [r.entry_id for r in results] == [*alices, *bobs, 999_999]
    for i in alices:
        assert by_id[i].status == APPROVE_APPROVED
        assert by_id[i].entry_status == "active"
    for i in bobs:
        assert by_id[i].status == APPROVE_REFUSED
        assert by_id[i].code == "self_approval"
        assert by_id[i].entry_status == "pending"
    assert by_id[999_999].code == "not_found"
    with db.read() as s:
        statuses = {i: st for i, st in s.execute(select(EntryRow.id, EntryRow.status))}
        approvals = s.scalars(select(ApprovalRow.entry_id).where(ApprovalRow.actor == "bob")).all()
        store_audit.verify(s, list_id)
    assert {statuses[i] for i in alices} == {"active"}
    assert {statuses[i] for i in bobs} == {"pending"}
    assert sorted(approvals) == sorted(alices)


def test_bulk_approval_matches_single_approvals_on_a_two_approval_list(
    db: Database, list2_id: int
) -> None:
    _, ids = import_batch(db, list2_id, 2)
    first = approve_many(db, list2_id, ids, actor="bob")
    assert [(r.status, r.entry_status, r.approvals, r.required) for r in first] == [
        (APPROVE_APPROVED, "pending", 1, 2)
    ] * 2
    again = approve_many(db, list2_id, ids, actor="bob")
    assert {r.code for r in again} == {"duplicate_approval"}
    second = approve_many(db, list2_id, [ids[0], ids[0]], actor="carol")
    # The first activates the entry (bob and carol); the repeat finds it active.
    assert [(r.status, r.code) for r in second] == [
        (APPROVE_APPROVED, None),
        (APPROVE_REFUSED, "invalid_state"),
    ]
    third = approve_many(db, list2_id, ids, actor="carol")
    assert [(r.status, r.code, r.entry_status) for r in third] == [
        (APPROVE_REFUSED, "invalid_state", "active"),
        (APPROVE_APPROVED, None, "active"),
    ]


def test_bulk_approval_audit_records_replay_like_single_ones(db: Database, list_id: int) -> None:
    _, ids = import_batch(db, list_id, 2)
    approve_many(db, list_id, ids, actor="bob")
    with db.read() as s:
        records = store_audit.records(s, list_id)
    verify_chain(records)
    approves = [r for r in records if r.action == Action.ENTRY_APPROVE]
    assert [(r.actor, r.entry_id, r.details["status"]) for r in approves] == [
        ("bob", ids[0], "active"),
        ("bob", ids[1], "active"),
    ]


def test_admins_and_oversized_batches_are_refused_whole(
    db: Database, list_id: int, unchanged: Unchanged
) -> None:
    _, ids = import_batch(db, list_id, 1)
    unchanged(
        lambda: approve_many(db, list_id, ids, actor="root", role="admin"), AdminCannotApprove
    )
    unchanged(lambda: approve_many(db, list_id, ids, role="isp"), PermissionDenied)
    too_many = list(range(1, store_imports.MAX_APPROVE_ROWS + 2))
    unchanged(lambda: approve_many(db, list_id, too_many), LimitExceeded)


def test_migration_0005_keeps_existing_entries(empty_db: Database) -> None:
    migrate.upgrade(empty_db, "0003")
    with empty_db.engine.connect() as conn:
        assert "imports" not in inspect(conn).get_table_names()
    # A list with its canary entry (a row the lists table points back to,
    # which SQLite's copy-and-rename of the entries table must keep valid).
    with empty_db.transaction() as s:
        insert_list_row(s, "m")
    migrate.upgrade(empty_db)
    with empty_db.transaction() as s:
        lst = store_lists.get_list_by_id(s, 1)
        assert lst.name == "m"
        import_id = store_imports.create_import(s, 1, actor="alice", now=NOW).id
        store_imports.bulk_add(s, 1, rows(2), actor="alice", import_id=import_id, now=NOW)
    with empty_db.read() as s:
        assert len(store_imports.import_entries(s, 1, import_id).entry_ids) == 2
