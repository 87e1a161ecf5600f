"""The ISP client's local store: atomic commits, the sync lock, integrity checks."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support.isp_helpers import NOW, T, h, hashes, new_log, synced
from support.memory_log import MemoryLog

from clients.errors import LocalStateError, NotInitialised, StateLocked
from clients.isp.statelock import LOCK_NAME
from clients.isp.store import DB_NAME, StateStore
from clients.isp.trusted import HashChanges, TrustedState


def committed(tmp_path: Path, log: MemoryLog) -> tuple[StateStore, TrustedState]:
    store = StateStore(tmp_path / "state")
    ts = synced(log)
    store.commit(ts.record(), ts.changes(), etag='"e1"', now=T)
    ts.mark_persisted(store.hash_table())
    return store, ts


def test_commit_round_trip(tmp_path: Path) -> None:
    log = new_log()
    log.publish(hashes(1, 2, 3), now=NOW)
    store, ts = committed(tmp_path, log)
    store.close()
    with StateStore(tmp_path / "state", create=False) as again:
        record = again.load_record()
        assert record == ts.record()
        assert list(again.iter_hashes()) == sorted(hashes(1, 2, 3))
        assert again.etag() == '"e1"'
        assert again.verify_local(record)
        # The reloaded state verifies and answers membership from the table.
        resumed = TrustedState([log.root_vkey], record=record, hashes=again.hash_table())
        assert resumed.contains(h(1))
        assert not resumed.contains(h(9))


def test_incremental_commit_touches_only_the_delta(tmp_path: Path) -> None:
    log = new_log()
    log.publish(hashes(1, 2, 3), now=NOW)
    store, ts = committed(tmp_path, log)
    log.publish(hashes(4), hashes(2), now=NOW)
    ts.update_checkpoint(log.checkpoint(NOW), T)
    ts.apply_statements(log.statements[1:])
    changes = ts.changes()
    assert changes == HashChanges(added=(h(4),), removed=(h(2),), replace=None)
    store.commit(ts.record(), changes, now=T)
    assert set(store.iter_hashes()) == log.members
    assert store.load_record() == ts.record()


def test_failed_commit_leaves_the_old_state(tmp_path: Path) -> None:
    log = new_log()
    log.publish(hashes(1, 2, 3), now=NOW)
    store, ts = committed(tmp_path, log)
    before_record = store.load_record()
    before = list(store.iter_hashes())
    log.publish(hashes(4), hashes(2), now=NOW)
    ts.update_checkpoint(log.checkpoint(NOW), T)
    ts.apply_statements(log.statements[1:])
    # A change set whose last insert violates the primary key: the removal
    # and the meta update before it must be rolled back with it.
    bad = HashChanges(added=(h(4), h(1)), removed=(h(2),))
    with pytest.raises(LocalStateError):
        store.commit(ts.record(), bad, now=T)
    assert store.load_record() == before_record
    assert list(store.iter_hashes()) == before


def test_files_are_private(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    store.close()
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "state" / DB_NAME).stat().st_mode) == 0o600


def test_reader_needs_an_existing_state(tmp_path: Path) -> None:
    with pytest.raises(NotInitialised):
        StateStore(tmp_path / "nothing", create=False)


def test_verify_local_detects_a_lost_row(tmp_path: Path) -> None:
    log = new_log()
    log.publish(hashes(1, 2, 3), now=NOW)
    store, _ = committed(tmp_path, log)
    record = store.load_record()
    assert record is not None
    assert store.verify_local(record)
    with sqlite3.connect(tmp_path / "state" / DB_NAME) as raw:
        raw.execute("DELETE FROM hashes WHERE hash = ?", (h(2),))
    assert not store.verify_local(record)


def _split(blob: bytes) -> list[bytes]:
    return [blob[i : i + 32] for i in range(0, len(blob), 32)]


def test_hash_blob_holds_every_hash_once(tmp_path: Path) -> None:
    log = new_log()
    log.publish(hashes(*range(50)), now=NOW)
    store, _ = committed(tmp_path, log)
    blob = store.hash_blob()
    assert blob is not None
    assert sorted(_split(blob)) == list(store.iter_hashes()) == sorted(log.members)
    assert store.hash_set() == log.members
    with sqlite3.connect(tmp_path / "state" / DB_NAME) as raw:
        raw.execute("DELETE FROM hashes")
    assert store.hash_blob() == b""
    assert store.hash_set() == frozenset()


def test_hash_blob_refuses_rows_that_are_not_32_bytes(tmp_path: Path) -> None:
    # A damaged row would shift every hash after it in one blob; the caller
    # reads the rows instead, and a wrong-sized value matches nothing.
    log = new_log()
    log.publish(hashes(1, 2, 3), now=NOW)
    store, _ = committed(tmp_path, log)
    with sqlite3.connect(tmp_path / "state" / DB_NAME) as raw:
        raw.execute("INSERT INTO hashes (hash) VALUES (?)", (b"\x01" * 31,))
    assert store.hash_blob() is None
    assert store.hash_set() == {*log.members, b"\x01" * 31}


def test_hash_blob_beyond_sqlite_string_limit_falls_back_to_rows(tmp_path: Path) -> None:
    log = new_log()
    log.publish(hashes(*range(10)), now=NOW)
    store, _ = committed(tmp_path, log)
    # SQLite refuses a result longer than SQLITE_LIMIT_LENGTH (a billion bytes
    # by default, 31 million hashes); lower it to below ten hashes.
    store._conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 300)
    assert store.hash_blob() is None
    assert store.hash_set() == log.members


def test_outcomes_counted_and_evidence_deduplicated(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    store.record_outcome("success", success=True, message="ok", now=T, min_wait=60)
    store.record_outcome(
        "rollback", success=False, message="smaller tree", now=T + 1, min_wait=None
    )
    store.record_outcome(
        "rollback", success=False, message="smaller tree", now=T + 2, min_wait=None
    )
    status = store.status()
    assert status.counters == {"rollback": 2, "success": 1}
    assert status.last_success == T
    assert status.last_error_reason == "rollback"
    assert status.last_error_time == T + 2
    assert store.min_wait() == 60
    store.record_evidence("checkpoint", "a\n", "b\n", "fork", now=T)
    store.record_evidence("checkpoint", "a\n", "b\n", "fork", now=T + 5)
    assert [(e.held_note, e.new_note) for e in store.evidence()] == [("a\n", "b\n")]


HOLDER = textwrap.dedent(
    """
    import fcntl, os, sys
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    print("locked", flush=True)
    sys.stdin.read()  # hold the lock until the parent closes our stdin
    """
)


def test_second_sync_process_gets_a_clear_lock_error(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "state" / LOCK_NAME)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StateLocked, match="another cleanfeed sync holds"), store.lock(0.3):
            pass  # pragma: no cover - never entered
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
        assert holder.stdout is not None
        holder.stdout.close()
    # Released: the lock is ours now, and records our pid for the next one.
    with store.lock(5.0):
        assert (tmp_path / "state" / LOCK_NAME).read_text() == str(os.getpid())


def test_second_sync_waits_for_the_lock(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "state" / LOCK_NAME)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    assert holder.stdin is not None
    holder.stdin.close()  # the holder exits; our wait (up to 60 s) then succeeds
    with store.lock(60.0):
        pass
    holder.wait(timeout=30)
    holder.stdout.close()


def test_export_reports_round_trip_and_survive_damage(tmp_path: Path) -> None:
    from clients.isp.records import ExportReport
    from clients.isp.store import EXPORT_REPORTS_KEY

    report = ExportReport(
        "hosts", "/x/hosts", 3, 1, 2, {"page": 1, "prefix": 1}, 1, ("2 page/prefix entries",)
    )
    with StateStore(tmp_path / "s") as store:
        assert store.status().exports == ()
        store.set_export_reports([report])
        assert store.status().exports == (report,)
        assert report.to_json()["not_enforceable_by_scope"] == {
            "page": 1,
            "prefix": 1,
            "host": 0,
            "other": 0,
        }
        # A damaged or foreign value shows no report rather than failing status.
        for damaged in ("not json", '{"a": 1}', '[{"format": "hosts"}]'):
            store.set_meta({EXPORT_REPORTS_KEY: damaged})
            assert store.status().exports == ()
