"""Contract: the audit log is one unbroken hash chain per list (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable

import pytest
from sqlalchemy import delete, select, update
from support.contract_helpers import NOW, later, publish, table_counts

from blocklist.auditlog import AUDIT_ZERO, Action, Actor, AuditChainError, verify_chain
from blocklist.errors import FormatError
from blocklist.store import Database, InvalidField
from blocklist.store import audit as store_audit
from blocklist.store import entries as store_entries
from blocklist.store import imports as store_imports
from blocklist.store import tokens as store_tokens
from blocklist.store import versions as store_versions
from blocklist.store.models import AuditRow

Unchanged = Callable[[Callable[[], object], type[BaseException]], None]

THREADS = 6
APPENDS_PER_THREAD = 8


def all_records(db: Database, list_id: int | None) -> list[store_audit.AuditRecord]:
    out: list[store_audit.AuditRecord] = []
    with db.read() as s:
        while True:
            page = store_audit.records(s, list_id, since=len(out), limit=7)
            if not page:
                return out
            out.extend(page)


def run_many_operations(db: Database, list_id: int) -> None:
    """Adds, approvals, expiries, reinstatements, bulk adds, publishes."""
    ids = []
    for i in range(6):
        with db.transaction() as s:
            entry, _ = store_entries.add_entry(
                s,
                list_id,
                url=f"http://m.example.com/{i}.html",
                scope="page",
                reason=f"r{i}",
                actor="alice",
                now=later(minutes=i),
            )
            ids.append(entry.id)
        with db.transaction() as s:
            store_entries.approve(
                s, list_id, entry.id, actor="bob", actor_role="analyst", now=later(minutes=i)
            )
    publish(db, list_id, now=later(hours=1))
    with db.transaction() as s:
        store_entries.expire(s, list_id, ids[0], actor="carol", reason="wrong", now=later(hours=2))
        store_entries.expire(
            s, list_id, ids[1], actor="carol", reason="later", at=later(hours=3), now=later(hours=2)
        )
        store_entries.reinstate(
            s, list_id, ids[0], actor="dave", reason="appeal", now=later(hours=2)
        )
    with db.transaction() as s:
        rows = [
            store_imports.BulkRow(f"http://b.example.com/{i}.html", "page", "bulk")
            for i in range(20)
        ]
        store_imports.bulk_add(s, list_id, rows, actor="erin", now=later(hours=4))
    publish(db, list_id, now=later(hours=5))  # sweeps the due expiry as system:expiry


def test_chain_verifies_after_many_operations(db: Database, list_id: int) -> None:
    run_many_operations(db, list_id)
    records = all_records(db, list_id)
    # 2 for the list, 6 adds, 6 approvals, 3 analyst decisions, 20 bulk, 1 sweep.
    assert len(records) == 38
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    head = verify_chain(records)
    with db.read() as s:
        assert store_audit.head(s, list_id) == (len(records), head)
        assert store_audit.verify(s, list_id) == (len(records), head)
        # Every version statement's audit line is a head the chain passed through.
        heads = {AUDIT_ZERO}
        prev = AUDIT_ZERO
        for r in records:
            prev = verify_chain([r], prev=prev, first_seq=r.seq)
            heads.add(prev)
        for n in (1, 2):
            assert store_versions.get_version(s, list_id, n).audit_head in heads
    actions = {r.action for r in records}
    assert {
        Action.LIST_CREATE,
        Action.ENTRY_ADD,
        Action.ENTRY_APPROVE,
        Action.ENTRY_EXPIRE,
        Action.ENTRY_SCHEDULE_EXPIRY,
        Action.ENTRY_REINSTATE,
    } <= actions
    assert (Actor.EXPIRY, Action.ENTRY_EXPIRE) in {(r.actor, r.action) for r in records}


def test_chain_hash_matches_an_independent_computation(db: Database, list_id: int) -> None:
    first = all_records(db, list_id)[0]
    body = {
        "seq": 1,
        "time": "2026-03-01T12:00:00Z",
        "actor": Actor.INIT,
        "action": Action.LIST_CREATE,
        "list": "main",
        "entry": None,
        "details": {
            "name": "main",
            "origin": "example.org/cleanfeed/main",
            "home_country": "CA",
            "approvals_required": 1,
            "public": False,
        },
    }
    encoded = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    expected = hashlib.sha256(b"cleanfeed-audit/v1\n" + bytes(32) + encoded.encode()).digest()
    assert first.hash == expected


def test_sub_second_times_are_hashed_as_stored(db: Database, list_id: int) -> None:
    with db.transaction() as s:
        store_audit.append(
            s,
            list_id=list_id,
            actor="alice",
            action="test.note",
            details={"n": 1},
            now=NOW.replace(microsecond=987654),
        )
    with db.read() as s:
        assert store_audit.verify(s, list_id).seq == 3


def test_tampering_is_detected(db: Database, list_id: int) -> None:
    run_many_operations(db, list_id)
    with db.transaction() as s:
        s.execute(
            update(AuditRow)
            .where(AuditRow.chain == list_id, AuditRow.seq == 5)
            .values(details={"hash": "rewritten"})
        )
    with db.read() as s, pytest.raises(AuditChainError):
        store_audit.verify(s, list_id)


def test_a_deleted_record_is_detected(db: Database, list_id: int) -> None:
    run_many_operations(db, list_id)
    with db.transaction() as s:
        s.execute(delete(AuditRow).where(AuditRow.chain == list_id, AuditRow.seq == 7))
    with db.read() as s, pytest.raises(AuditChainError):
        store_audit.verify(s, list_id)


def test_bad_records_are_refused(db: Database, list_id: int, unchanged: Unchanged) -> None:
    def append(**fields: object) -> None:
        values: dict[str, object] = {
            "list_id": list_id,
            "actor": "alice",
            "action": "test.note",
            "details": {},
        }
        values.update(fields)
        with db.transaction() as s:
            store_audit.append(s, now=NOW, **values)  # type: ignore[arg-type]

    unchanged(lambda: append(details={"x": 1.5}), FormatError)
    unchanged(lambda: append(actor=""), InvalidField)
    unchanged(lambda: append(actor="a\nb"), InvalidField)
    unchanged(lambda: append(action="Bad Action"), InvalidField)


def test_concurrent_appenders_never_fork_the_chain(db: Database, list_id: int) -> None:
    """Threads append to one list chain (directly and through services) at once."""
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            barrier.wait()
            for i in range(APPENDS_PER_THREAD):
                with db.transaction() as s:
                    if i % 2:
                        store_audit.append(
                            s,
                            list_id=list_id,
                            actor=f"worker-{n}",
                            action="test.note",
                            details={"n": n, "i": i},
                        )
                    else:
                        store_entries.add_entry(
                            s,
                            list_id,
                            url=f"http://c{n}.example.com/{i}.html",
                            scope="page",
                            reason="race",
                            actor=f"worker-{n}",
                        )
        except BaseException as e:  # reported below, after join
            errors.append(e)

    before = table_counts(db)["audit_log"]
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    records = all_records(db, list_id)
    assert len(records) == before + THREADS * APPENDS_PER_THREAD
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    verify_chain(records)
    with db.read() as s:
        store_audit.verify(s, list_id)


def test_concurrent_token_and_list_chains_stay_separate(db: Database, list_id: int) -> None:
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def tokens(n: int) -> None:
        try:
            barrier.wait()
            for i in range(5):
                with db.transaction() as s:
                    store_tokens.create_token(s, name=f"t{n}-{i}", role="isp", lists=["main"])
        except BaseException as e:
            errors.append(e)

    def notes(n: int) -> None:
        try:
            barrier.wait()
            for i in range(5):
                with db.transaction() as s:
                    store_audit.append(
                        s, list_id=list_id, actor="x", action="test.note", details={"i": i}
                    )
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=f, args=(n,)) for n in range(2) for f in (tokens, notes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.read() as s:
        assert store_audit.verify(s, None).seq == 10
        assert store_audit.verify(s, list_id).seq == 2 + 10
        assert s.scalars(select(AuditRow.chain).distinct().order_by(AuditRow.chain)).all() == [
            0,
            list_id,
        ]
