"""Contract: entries, four-eyes approval, expiry, reinstatement (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

import pytest
from sqlalchemy import select
from support.contract_helpers import NOW, later, publish, table_counts

from blocklist.auditlog import Action, Actor
from blocklist.canonical import expression_hash
from blocklist.encoding import b64encode
from blocklist.errors import DomesticHosting, InvalidEntry, InvalidURL
from blocklist.store import (
    AdminCannotApprove,
    Database,
    DuplicateApproval,
    InvalidField,
    InvalidState,
    NotFound,
    PermissionDenied,
    SelfApproval,
)
from blocklist.store import audit as store_audit
from blocklist.store import entries as store_entries
from blocklist.store import imports as store_imports
from blocklist.store import search as store_search
from blocklist.store import versions as store_versions
from blocklist.store.models import AuditRow, EntryRow

Unchanged = Callable[[Callable[[], object], type[BaseException]], None]

PAGE = "http://bad.example.com/gallery/page.html"
PAGE_EXPR = "bad.example.com/gallery/page.html"


def add(
    db: Database,
    list_id: int,
    url: str = PAGE,
    *,
    scope: str = "page",
    actor: str = "alice",
    now: datetime = NOW,
    **fields: object,
) -> tuple[int, bool]:
    with db.transaction() as s:
        entry, created = store_entries.add_entry(
            s,
            list_id,
            url=url,
            scope=scope,
            reason=str(fields.pop("reason", "depicts abuse")),
            actor=actor,
            now=now,
            **fields,  # type: ignore[arg-type]
        )
        return entry.id, created


def approve(
    db: Database,
    list_id: int,
    entry_id: int,
    actor: str = "bob",
    role: str = "analyst",
    now: datetime = NOW,
) -> str:
    with db.transaction() as s:
        return store_entries.approve(
            s, list_id, entry_id, actor=actor, actor_role=role, now=now
        ).status


def entry(db: Database, list_id: int, entry_id: int) -> EntryRow:
    with db.read() as s:
        return store_entries.get_entry(s, list_id, entry_id)


def actions(db: Database, entry_id: int) -> list[tuple[str, str]]:
    with db.read() as s:
        return [(r.actor, r.action) for r in store_audit.entry_records(s, entry_id)]


# --- add ---------------------------------------------------------------------


def test_add_entry_stores_a_pending_entry(db: Database, list_id: int) -> None:
    entry_id, created = add(
        db,
        list_id,
        reference="CASE-1",
        category="A1",
        hosting_country="nl",
        expires_at=later(days=30),
    )
    assert created
    row = entry(db, list_id, entry_id)
    assert row.expression == PAGE_EXPR
    assert row.hash == expression_hash(PAGE_EXPR)
    assert row.host == "bad.example.com"
    assert row.url == PAGE
    assert row.scope == "page"
    assert row.status == "pending"
    assert (row.reference, row.category, row.hosting_country) == ("CASE-1", "A1", "NL")
    assert row.expires_at == later(days=30)
    assert row.created_by == "alice"
    assert row.created_at == NOW
    assert row.listed is False
    assert row.needs_publish is False
    assert actions(db, entry_id) == [("alice", Action.ENTRY_ADD)]


def test_audit_records_name_entries_by_hash_never_by_expression(db: Database, list_id: int) -> None:
    entry_id, _ = add(db, list_id)
    with db.read() as s:
        (record,) = store_audit.entry_records(s, entry_id)
    assert record.details["hash"] == b64encode(expression_hash(PAGE_EXPR))
    assert "bad.example.com" not in record.to_json().decode()


def test_same_expression_returns_the_existing_entry(db: Database, list_id: int) -> None:
    first, created = add(db, list_id)
    assert created
    before = table_counts(db)
    # Another spelling of the same page: same canonical expression.
    again, created = add(db, list_id, "HTTP://BAD.example.COM/gallery/./page.html#top")
    assert (again, created) == (first, False)
    assert table_counts(db) == before


def test_same_expression_on_another_list_is_a_new_entry(
    db: Database, list_id: int, list2_id: int
) -> None:
    a, _ = add(db, list_id)
    b, created = add(db, list2_id)
    assert created
    assert a != b


@pytest.mark.parametrize(
    ("url", "scope", "fields", "error"),
    [
        ("mailto:someone@example.com", "page", {}, InvalidURL),
        ("http:///no-host", "page", {}, InvalidURL),
        ("http://bad.example.com/dir/", "page", {}, InvalidEntry),
        ("http://bad.example.com/a/b/c/d/", "prefix", {}, InvalidEntry),
        (PAGE, "everything", {}, InvalidEntry),
        (PAGE, "page", {"reason": ""}, InvalidEntry),
        (PAGE, "page", {"reason": "   "}, InvalidEntry),
        (PAGE, "page", {"reason": "x" * 2001}, InvalidEntry),
        (PAGE, "page", {"reason": "nul\x00byte"}, InvalidEntry),
        (PAGE, "page", {"reference": "r" * 129}, InvalidEntry),
        (PAGE, "page", {"reference": "two\nlines"}, InvalidEntry),
        (PAGE, "page", {"category": "c" * 65}, InvalidEntry),
        (PAGE, "page", {"hosting_country": "Netherlands"}, InvalidEntry),
        (PAGE, "page", {"hosting_country": "ca"}, DomesticHosting),
        (PAGE, "page", {"expires_at": NOW}, InvalidEntry),
        (PAGE, "page", {"expires_at": later(days=-1)}, InvalidEntry),
        (PAGE, "page", {"actor": ""}, InvalidField),
        ("http://bad.example.com/" + "a" * 9000, "page", {}, InvalidEntry),
        ("http://bad.example.com/nul\x00.html", "page", {}, InvalidEntry),
    ],
)
def test_bad_entry_is_refused_and_changes_nothing(
    db: Database,
    list_id: int,
    unchanged: Unchanged,
    url: str,
    scope: str,
    fields: dict[str, object],
    error: type[Exception],
) -> None:
    unchanged(lambda: add(db, list_id, url, scope=scope, **fields), error)


def test_naive_times_are_refused(db: Database, list_id: int, unchanged: Unchanged) -> None:
    naive = NOW.replace(tzinfo=None)
    unchanged(lambda: add(db, list_id, now=naive), InvalidField)
    unchanged(lambda: add(db, list_id, expires_at=later(days=1).replace(tzinfo=None)), InvalidEntry)

    def pending_changes() -> None:
        with db.transaction() as s:
            store_versions.pending_changes(s, list_id, now=naive, limit=10)

    unchanged(pending_changes, InvalidField)


def test_add_to_missing_list_is_not_found(db: Database, unchanged: Unchanged) -> None:
    unchanged(lambda: add(db, 424242), NotFound)


def test_urls_with_controls_are_canonicalised_not_refused(db: Database, list_id: int) -> None:
    # Safe Browsing strips tab/CR/LF and escapes other control bytes.
    entry_id, _ = add(db, list_id, "http://bad.example.com/a\tb\x01c.html")
    row = entry(db, list_id, entry_id)
    assert row.expression == "bad.example.com/ab%01c.html"
    assert row.url == "http://bad.example.com/a\tb\x01c.html"


def test_multiline_reason_is_kept(db: Database, list_id: int) -> None:
    entry_id, _ = add(db, list_id, reason="line one\nline two\tend")
    assert entry(db, list_id, entry_id).reason == "line one\nline two\tend"


# --- four-eyes ---------------------------------------------------------------


def test_one_approval_activates_on_a_one_approval_list(db: Database, list_id: int) -> None:
    entry_id, _ = add(db, list_id)
    assert approve(db, list_id, entry_id, "bob") == "active"
    row = entry(db, list_id, entry_id)
    assert row.needs_publish is True
    assert actions(db, entry_id) == [("alice", Action.ENTRY_ADD), ("bob", Action.ENTRY_APPROVE)]


def test_two_approvals_needed_on_a_two_approval_list(db: Database, list2_id: int) -> None:
    entry_id, _ = add(db, list2_id)
    assert approve(db, list2_id, entry_id, "bob") == "pending"
    assert entry(db, list2_id, entry_id).needs_publish is False
    assert approve(db, list2_id, entry_id, "carol") == "active"
    with db.read() as s:
        history = store_search.get_entry_with_history(s, list2_id, entry_id)
    assert [(a.actor, a.round) for a in history.approvals] == [("bob", 1), ("carol", 1)]
    assert history.records[-1].details["approvals"] == 2
    assert history.records[-1].details["required"] == 2


def test_self_approval_is_refused(db: Database, list2_id: int, unchanged: Unchanged) -> None:
    entry_id, _ = add(db, list2_id, actor="alice")
    unchanged(lambda: approve(db, list2_id, entry_id, "alice"), SelfApproval)


def test_admin_approval_is_refused(db: Database, list_id: int, unchanged: Unchanged) -> None:
    entry_id, _ = add(db, list_id)
    unchanged(lambda: approve(db, list_id, entry_id, "root", role="admin"), AdminCannotApprove)
    unchanged(lambda: approve(db, list_id, entry_id, "isp-1", role="isp"), PermissionDenied)


def test_duplicate_approval_is_refused(db: Database, list2_id: int, unchanged: Unchanged) -> None:
    entry_id, _ = add(db, list2_id)
    approve(db, list2_id, entry_id, "bob")
    unchanged(lambda: approve(db, list2_id, entry_id, "bob"), DuplicateApproval)
    assert entry(db, list2_id, entry_id).status == "pending"


def test_approving_an_active_entry_is_refused(
    db: Database, list_id: int, unchanged: Unchanged
) -> None:
    entry_id, _ = add(db, list_id)
    approve(db, list_id, entry_id, "bob")
    unchanged(lambda: approve(db, list_id, entry_id, "carol"), InvalidState)


def test_approving_after_the_expiry_time_is_refused(
    db: Database, list_id: int, unchanged: Unchanged
) -> None:
    entry_id, _ = add(db, list_id, expires_at=later(hours=1))
    unchanged(lambda: approve(db, list_id, entry_id, "bob", now=later(hours=2)), InvalidState)


def test_entry_of_another_list_is_not_found(
    db: Database, list_id: int, list2_id: int, unchanged: Unchanged
) -> None:
    entry_id, _ = add(db, list_id)
    unchanged(lambda: approve(db, list2_id, entry_id, "bob"), NotFound)
    with db.read() as s, pytest.raises(NotFound):
        store_search.get_entry_with_history(s, list2_id, entry_id)


# --- expiry --------------------------------------------------------------------


def expire(
    db: Database,
    list_id: int,
    entry_id: int,
    *,
    at: datetime | None = None,
    now: datetime = NOW,
    actor: str = "dave",
) -> EntryRow:
    with db.transaction() as s:
        return store_entries.expire(
            s, list_id, entry_id, actor=actor, reason="wrong block", at=at, now=now
        )


def test_expire_now_after_publication(db: Database, list_id: int) -> None:
    entry_id, _ = add(db, list_id)
    approve(db, list_id, entry_id)
    publish(db, list_id)
    assert entry(db, list_id, entry_id).listed is True
    row = expire(db, list_id, entry_id, now=later(minutes=5))
    assert row.status == "expired"
    assert row.needs_publish is True
    with db.read() as s:
        (record,) = [r for r in store_audit.entry_records(s, entry_id) if r.actor == "dave"]
    assert record.action == Action.ENTRY_EXPIRE
    assert record.details["reason"] == "wrong block"
    version, adds, removes = publish(db, list_id, now=later(minutes=6))
    assert (adds, removes) == ([], [expression_hash(PAGE_EXPR)])
    row = entry(db, list_id, entry_id)
    assert (row.listed, row.needs_publish, row.removed_version) == (False, False, version)


def test_expire_before_publication_removes(db: Database, list_id: int) -> None:
    pending, _ = add(db, list_id)
    approved, _ = add(db, list_id, "http://bad.example.com/other.html")
    approve(db, list_id, approved)
    assert expire(db, list_id, pending).status == "removed"
    assert expire(db, list_id, approved).status == "removed"
    # Neither was ever published, so nothing is pending for the publisher.
    assert entry(db, list_id, approved).needs_publish is False


def test_expire_twice_is_refused(db: Database, list_id: int, unchanged: Unchanged) -> None:
    entry_id, _ = add(db, list_id)
    expire(db, list_id, entry_id)
    unchanged(lambda: expire(db, list_id, entry_id), InvalidState)


def test_expire_needs_a_reason(db: Database, list_id: int, unchanged: Unchanged) -> None:
    entry_id, _ = add(db, list_id)

    def no_reason() -> None:
        with db.transaction() as s:
            store_entries.expire(s, list_id, entry_id, actor="dave", reason="", now=NOW)

    unchanged(no_reason, InvalidEntry)


def test_future_expiry_is_picked_up_only_when_due(db: Database, list_id: int) -> None:
    entry_id, _ = add(db, list_id)
    approve(db, list_id, entry_id)
    publish(db, list_id)
    row = expire(db, list_id, entry_id, at=later(days=1), now=later(minutes=1))
    assert (row.status, row.expires_at, row.needs_publish) == ("active", later(days=1), False)
    assert actions(db, entry_id)[-1] == ("dave", Action.ENTRY_SCHEDULE_EXPIRY)

    with db.transaction() as s:
        early = store_versions.pending_changes(s, list_id, now=later(hours=23), limit=100)
    assert early.removes == []
    assert entry(db, list_id, entry_id).status == "active"

    with db.transaction() as s:
        due = store_versions.pending_changes(s, list_id, now=later(days=1), limit=100)
    assert due.removes == [(entry_id, expression_hash(PAGE_EXPR))]
    assert entry(db, list_id, entry_id).status == "expired"
    assert actions(db, entry_id)[-1] == (Actor.EXPIRY, Action.ENTRY_EXPIRE)


def test_expiry_set_at_add_time_removes_a_pending_entry_when_due(
    db: Database, list_id: int
) -> None:
    entry_id, _ = add(db, list_id, expires_at=later(hours=1))
    with db.transaction() as s:
        changes = store_versions.pending_changes(s, list_id, now=later(hours=1), limit=100)
    assert entry_id not in [i for i, _ in changes.adds]
    assert entry(db, list_id, entry_id).status == "removed"


# --- reinstatement ----------------------------------------------------------------


def test_reinstate_needs_fresh_approvals(db: Database, list_id: int, unchanged: Unchanged) -> None:
    entry_id, _ = add(db, list_id, actor="alice")
    approve(db, list_id, entry_id, "bob")
    publish(db, list_id)
    expire(db, list_id, entry_id, actor="bob")
    publish(db, list_id)

    with db.transaction() as s:
        row = store_entries.reinstate(s, list_id, entry_id, actor="carol", reason="appeal lost")
        assert (row.status, row.approval_round, row.submitted_by) == ("pending", 2, "carol")
        assert row.needs_publish is False

    # The reinstating analyst opened the round and may not approve it...
    unchanged(lambda: approve(db, list_id, entry_id, "carol"), SelfApproval)
    # ...but bob, who approved round 1, may approve round 2.
    assert approve(db, list_id, entry_id, "bob") == "active"
    version, adds, _ = publish(db, list_id)
    assert adds == [expression_hash(PAGE_EXPR)]
    row = entry(db, list_id, entry_id)
    assert (row.listed, row.added_version, row.removed_version) == (True, version, None)
    assert [a for _, a in actions(db, entry_id)] == [
        Action.ENTRY_ADD,
        Action.ENTRY_APPROVE,
        Action.ENTRY_EXPIRE,
        Action.ENTRY_REINSTATE,
        Action.ENTRY_APPROVE,
    ]


def test_reinstate_before_the_removal_was_published(db: Database, list_id: int) -> None:
    entry_id, _ = add(db, list_id)
    approve(db, list_id, entry_id)
    publish(db, list_id)
    expire(db, list_id, entry_id)
    with db.transaction() as s:
        store_entries.reinstate(s, list_id, entry_id, actor="carol", reason="mistake")
    # Still listed but no longer approved: the removal stays pending until
    # the reinstatement is approved (four-eyes governs reinstatements).
    _, adds, removes = publish(db, list_id)
    assert (adds, removes) == ([], [expression_hash(PAGE_EXPR)])


def test_reinstate_of_an_active_entry_is_refused(
    db: Database, list_id: int, unchanged: Unchanged
) -> None:
    entry_id, _ = add(db, list_id)
    approve(db, list_id, entry_id)

    def reinstate() -> None:
        with db.transaction() as s:
            store_entries.reinstate(s, list_id, entry_id, actor="carol", reason="why not")

    unchanged(reinstate, InvalidState)


# --- search ------------------------------------------------------------------------


@pytest.fixture
def populated(db: Database, list_id: int) -> dict[str, int]:
    urls = {
        "page": ("http://bad.example.com/gallery/page.html", "page", "CASE-1"),
        "prefix": ("http://bad.example.com/gallery/", "prefix", "CASE-1"),
        "host": ("http://cdn.example.net/", "host", "CASE-2"),
        "sub": ("http://img.cdn.example.net/x.jpg", "page", None),
        "other": ("http://good.example.org/x.html", "page", None),
    }
    ids = {}
    for key, (url, scope, reference) in urls.items():
        ids[key], _ = add(db, list_id, url, scope=scope, reference=reference)
    approve(db, list_id, ids["host"])
    return ids


def search_ids(db: Database, list_id: int, **kwargs: object) -> set[int]:
    with db.read() as s:
        page = store_search.search(s, list_id, limit=500, **kwargs)  # type: ignore[arg-type]
    assert page.next_cursor is None
    return {e.id for e in page.items}


def test_search_by_url_finds_every_entry_that_blocks_it(
    db: Database, list_id: int, populated: dict[str, int]
) -> None:
    found = search_ids(db, list_id, url="https://bad.example.com/gallery/page.html?id=7")
    assert found == {populated["page"], populated["prefix"]}
    found = search_ids(db, list_id, url="http://a.img.cdn.example.net/any/thing")
    assert found == {populated["host"]}


def test_search_by_host_includes_subdomains(
    db: Database, list_id: int, populated: dict[str, int]
) -> None:
    assert search_ids(db, list_id, host="cdn.example.net") == {populated["host"], populated["sub"]}
    assert search_ids(db, list_id, host="IMG.CDN.example.net") == {populated["sub"]}
    assert search_ids(db, list_id, host="example.com") == {populated["page"], populated["prefix"]}
    with pytest.raises(InvalidField):
        search_ids(db, list_id, host="example.com/path")


def test_search_by_hash_status_and_reference(
    db: Database, list_id: int, populated: dict[str, int]
) -> None:
    digest = expression_hash("bad.example.com/gallery/")
    assert search_ids(db, list_id, hash=digest) == {populated["prefix"]}
    with db.read() as s:
        canary = store_search.search(s, list_id, reference=None, status="active").items
    assert {e.id for e in canary} == {populated["host"], 1}
    assert search_ids(db, list_id, reference="CASE-1") == {populated["page"], populated["prefix"]}
    assert search_ids(db, list_id, reference="CASE-1", status="active") == set()
    with pytest.raises(InvalidField):
        search_ids(db, list_id, status="gone")
    with pytest.raises(InvalidField):
        search_ids(db, list_id, hash=b"short")


def test_search_pagination_is_stable_under_inserts(db: Database, list_id: int) -> None:
    for i in range(12):
        add(db, list_id, f"http://p.example.com/{i}.html")
    seen: list[int] = []
    cursor = None
    inserted = 0
    while True:
        with db.read() as s:
            page = store_search.search(s, list_id, host="p.example.com", cursor=cursor, limit=5)
        seen.extend(e.id for e in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        add(db, list_id, f"http://p.example.com/new-{inserted}.html")  # between pages
        inserted += 1
    assert len(seen) == len(set(seen)), "an entry appeared on two pages"
    assert seen == sorted(seen)
    everything = search_ids(db, list_id, host="p.example.com")
    assert set(seen) == everything, "an entry was skipped"
    assert len(everything) == 12 + inserted


# --- history -----------------------------------------------------------------------


def test_entry_history_lists_every_decision(db: Database, list2_id: int) -> None:
    entry_id, _ = add(db, list2_id)
    approve(db, list2_id, entry_id, "bob")
    approve(db, list2_id, entry_id, "carol")
    expire(db, list2_id, entry_id, at=later(days=3))
    with db.read() as s:
        history = store_search.get_entry_with_history(s, list2_id, entry_id)
    assert history.entry.id == entry_id
    assert [(r.actor, r.action) for r in history.records] == [
        ("alice", Action.ENTRY_ADD),
        ("bob", Action.ENTRY_APPROVE),
        ("carol", Action.ENTRY_APPROVE),
        ("dave", Action.ENTRY_SCHEDULE_EXPIRY),
    ]
    assert all(r.entry_id == entry_id and r.list_name == "strict" for r in history.records)


# --- bulk ----------------------------------------------------------------------------


def test_bulk_add_reports_each_row(db: Database, list_id: int) -> None:
    existing, _ = add(db, list_id, "http://old.example.com/a.html")
    rows = [
        store_imports.BulkRow("http://bulk.example.com/1.html", "page", "r1", reference="B-1"),
        store_imports.BulkRow("http://old.example.com/a.html", "page", "dup of stored"),
        store_imports.BulkRow("javascript:alert(1)", "page", "bad url"),
        store_imports.BulkRow("http://bulk.example.com/2.html", "page", ""),
        store_imports.BulkRow("http://BULK.example.com/1.html", "page", "dup in batch"),
        store_imports.BulkRow("http://bulk.example.com/dir/", "prefix", "r3"),
        store_imports.BulkRow("http://x.example.com/y.html", "page", "r4", hosting_country="CA"),
    ]
    before = table_counts(db)
    with db.transaction() as s:
        results = store_imports.bulk_add(s, list_id, rows, actor="alice", now=NOW)
    assert [r.index for r in results] == list(range(len(rows)))
    assert [r.status for r in results] == [
        "added",
        "existing",
        "failed",
        "failed",
        "existing",
        "added",
        "failed",
    ]
    assert results[1].entry_id == existing
    assert results[4].entry_id == results[0].entry_id
    assert [r.code for r in results if r.status == "failed"] == [
        "invalid_url",
        "invalid_entry",
        "domestic_hosting",
    ]
    assert all(r.message for r in results if r.status == "failed")
    assert results[5].hash == expression_hash("bulk.example.com/dir/")
    after = table_counts(db)
    assert after["entries"] == before["entries"] + 2
    assert after["audit_log"] == before["audit_log"] + 2
    row = entry(db, list_id, results[0].entry_id or 0)
    assert (row.expression, row.reference, row.status) == (
        "bulk.example.com/1.html",
        "B-1",
        "pending",
    )
    with db.read() as s:
        assert store_audit.verify(s, list_id).seq == after["audit_log"]


def test_bulk_all_or_nothing_rolls_back(db: Database, list_id: int, unchanged: Unchanged) -> None:
    rows = [
        store_imports.BulkRow("http://bulk.example.com/1.html", "page", "r1"),
        store_imports.BulkRow("ftp:", "page", "bad"),
    ]

    def bulk() -> None:
        with db.transaction() as s:
            store_imports.bulk_add(s, list_id, rows, actor="alice", all_or_nothing=True, now=NOW)

    unchanged(bulk, store_imports.BulkRejected)
    with db.transaction() as s, pytest.raises(store_imports.BulkRejected) as caught:
        store_imports.bulk_add(s, list_id, rows, actor="alice", all_or_nothing=True, now=NOW)
    assert [r.status for r in caught.value.results] == ["skipped", "failed"]

    with db.transaction() as s:
        results = store_imports.bulk_add(
            s, list_id, rows[:1], actor="alice", all_or_nothing=True, now=NOW
        )
    assert [r.status for r in results] == ["added"]


def test_bulk_size_is_capped(db: Database, list_id: int, unchanged: Unchanged) -> None:
    row = store_imports.BulkRow("http://bulk.example.com/1.html", "page", "r1")
    rows = [row] * (store_imports.MAX_BULK_ROWS + 1)

    def bulk() -> None:
        with db.transaction() as s:
            store_imports.bulk_add(s, list_id, rows, actor="alice", now=NOW)

    unchanged(bulk, store_imports.LimitExceeded)


def test_bulk_entries_behave_like_single_entries(db: Database, list_id: int) -> None:
    rows = [
        store_imports.BulkRow(f"http://bulk.example.com/{i}.html", "page", f"reason {i}")
        for i in range(50)
    ]
    with db.transaction() as s:
        results = store_imports.bulk_add(s, list_id, rows, actor="alice", now=NOW)
    ids = [r.entry_id for r in results]
    assert None not in ids
    approve(db, list_id, ids[7] or 0, "bob")
    with db.read() as s:
        history = store_search.get_entry_with_history(s, list_id, ids[7] or 0)
        add_record = history.records[0]
        rows_by_seq = s.scalars(select(AuditRow.seq).where(AuditRow.entry_id.in_(ids))).all()
    assert add_record.details["reason"] == "reason 7"
    assert json.loads(add_record.to_json())["entry"] == ids[7]
    assert len(rows_by_seq) == 51
