"""The publisher (signer.publisher) on SQLite and PostgreSQL.

Each published log is re-verified by the independent verifier
(log_verifier.py): signatures under the keyring, the ``previous`` chain,
set semantics, state digests from scratch, the RFC 6962 root and the
checkpoint's two signature lines.
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from support.log_verifier import VerifiedLog, verify_checkpoint_note, verify_log
from support.publish_helpers import (
    Deployment,
    Published,
    add_active,
    add_pending,
    expire_now,
    insert_active_entries,
    list_id,
    published,
)

from blocklist.canonical import expression_hash
from blocklist.merkle import EMPTY_ROOT
from blocklist.statement import MAX_CHANGES_PER_VERSION
from blocklist.store import versions as store_versions
from blocklist.store.models import PublishRequestRow
from signer.highwater import ForkRefused, HighWaterError, HighWaterMark, HighWaterMissing
from signer.publisher import Publisher

CANARY = expression_hash("canary.example.org/canary.html")


def verify(dep: Deployment) -> tuple[Published, VerifiedLog]:
    """Verify everything the database serves; return it with the verified log."""
    pub = published(dep.db)
    log = verify_log(
        pub.keyrings,
        pub.statements,
        root_vkey=dep.init.root_vkey,
        origin=dep.init.origin,
        now=dep.clock(),
    )
    checkpoint, _ = verify_checkpoint_note(pub.checkpoint, log.keyring)
    assert checkpoint.origin == dep.init.origin
    assert checkpoint.size == len(pub.statements)
    assert checkpoint.root == log.root
    assert pub.snapshot == sorted(log.members)
    return pub, log


def mark(dep: Deployment) -> HighWaterMark:
    return dep.publisher.highwater.read()


def test_first_publish_publishes_the_canary(deployment: Deployment) -> None:
    dep = deployment
    assert mark(dep) == HighWaterMark(dep.init.origin, 0, EMPTY_ROOT)
    result = dep.publisher.publish_once()
    assert (result.version_before, result.version_after, result.versions) == (0, 1, [1])
    pub, log = verify(dep)
    assert log.members == {CANARY}
    _, timestamp = verify_checkpoint_note(pub.checkpoint, log.keyring)
    assert timestamp == int(dep.clock().timestamp())
    assert result.root == log.root
    assert mark(dep) == HighWaterMark(dep.init.origin, 1, log.root)
    # The audit line commits to the list's audit head at publish time.
    assert log.statements[0].audit == pub.audit_head


def test_nothing_pending_makes_no_version(deployment: Deployment) -> None:
    dep = deployment
    dep.publisher.publish_once()
    before = published(dep.db)
    mark_before = mark(dep)
    dep.clock.advance(minutes=5)
    result = dep.publisher.publish_once()
    assert (result.version_before, result.version_after, result.versions) == (1, 1, [])
    after = published(dep.db)
    # Nothing signed, nothing stored: same statements, same checkpoint note.
    assert after == before
    assert mark(dep) == mark_before


def test_additions_and_analyst_expiry(deployment: Deployment) -> None:
    dep = deployment
    now = dep.clock()
    a, ha = add_active(dep.db, "http://example.com/a.html", now)
    _, hb = add_active(dep.db, "http://example.com/b.html", now)
    _, hp = add_pending(dep.db, "http://example.com/pending.html", now)
    result = dep.publisher.publish_once()
    assert result.versions == [1]
    _, log = verify(dep)
    assert log.members == {CANARY, ha, hb}
    assert hp not in log.members  # not approved: never published

    dep.clock.advance(minutes=1)
    expire_now(dep.db, a, dep.clock())
    _, hc = add_active(dep.db, "http://example.com/c.html", dep.clock())
    result = dep.publisher.publish_once()
    assert result.versions == [2]
    pub, log = verify(dep)
    assert log.statements[1].adds == (hc,)
    assert log.statements[1].removes == (ha,)
    assert log.members == {CANARY, hb, hc}
    assert log.statements[1].audit == pub.audit_head


def test_due_expiry_is_published_when_its_time_comes(deployment: Deployment) -> None:
    dep = deployment
    now = dep.clock()
    _, h = add_active(dep.db, "http://example.com/t.html", now, expires_at=now + timedelta(hours=1))
    dep.publisher.publish_once()
    _, log = verify(dep)
    assert h in log.members

    dep.clock.advance(minutes=59)
    assert dep.publisher.publish_once().versions == []
    dep.clock.advance(minutes=1)
    result = dep.publisher.publish_once()
    assert result.versions == [2]
    pub, log = verify(dep)
    assert log.statements[1].removes == (h,)
    assert h not in log.members
    # The scheduled expiry was recorded in the audit log before the version
    # was cut, and the statement commits to it.
    assert log.statements[1].audit == pub.audit_head
    assert log.statements[1].audit != log.statements[0].audit


def test_expired_before_publication_is_never_published(deployment: Deployment) -> None:
    dep = deployment
    e, _ = add_active(dep.db, "http://example.com/gone.html", dep.clock())
    expire_now(dep.db, e, dep.clock())
    dep.publisher.publish_once()
    _, log = verify(dep)
    assert log.members == {CANARY}


def test_split_at_ten_thousand_and_backlog_continues(deployment: Deployment) -> None:
    dep = deployment
    hashes = insert_active_entries(dep.db, MAX_CHANGES_PER_VERSION + 1, dep.clock())
    publisher = dep.new_publisher(max_versions=1)
    first = publisher.publish_once()
    assert (first.versions, first.more_pending) == ([1], True)
    second = publisher.publish_once()
    assert (second.versions, second.more_pending) == ([2], False)
    _, log = verify(dep)
    assert len(log.statements[0].adds) == MAX_CHANGES_PER_VERSION
    assert len(log.statements[1].adds) == 2
    assert log.members == {CANARY, *hashes}
    assert mark(dep).size == 2


def test_one_publish_cuts_consecutive_versions(deployment: Deployment) -> None:
    dep = deployment
    hashes = insert_active_entries(dep.db, MAX_CHANGES_PER_VERSION + 1, dep.clock())
    result = dep.publisher.publish_once()
    assert result.versions == [1, 2]
    _, log = verify(dep)
    assert log.members == {CANARY, *hashes}
    assert log.statements[1].previous != log.statements[0].previous


def test_checkpoint_is_resigned_only_when_stale(deployment: Deployment) -> None:
    dep = deployment
    dep.publisher.publish_once()
    first = published(dep.db)
    dep.clock.advance(seconds=599)
    assert dep.publisher.refresh_checkpoint() is None
    assert published(dep.db).checkpoint == first.checkpoint
    dep.clock.advance(seconds=1)
    refreshed = dep.publisher.refresh_checkpoint()
    assert refreshed is not None
    pub, log = verify(dep)
    checkpoint, timestamp = verify_checkpoint_note(pub.checkpoint, log.keyring)
    assert timestamp == int(dep.clock().timestamp())
    assert (checkpoint.size, checkpoint.root) == (1, log.root) == (refreshed.size, refreshed.root)
    assert pub.checkpoint != first.checkpoint
    assert mark(dep) == HighWaterMark(dep.init.origin, 1, log.root)
    forced = dep.publisher.refresh_checkpoint(force=True)
    assert forced is not None


def test_refresh_before_any_version_signs_the_empty_tree(deployment: Deployment) -> None:
    dep = deployment
    dep.clock.advance(hours=1)
    result = dep.publisher.refresh_checkpoint()
    assert result is not None
    assert (result.size, result.root) == (0, EMPTY_ROOT)
    pub = published(dep.db)
    assert pub.statements == []


def test_publish_requests_are_served_and_marked_done(deployment: Deployment) -> None:
    dep = deployment
    lid = list_id(dep.db)
    assert dep.publisher.serve_requests() is None
    with dep.db.transaction() as s:
        store_versions.request_publish(s, lid, actor="alice", now=dep.clock())
    assert dep.publisher.has_open_requests()
    result = dep.publisher.serve_requests()
    assert result is not None
    assert result.versions == [1]
    assert published(dep.db).open_requests == 0
    assert dep.publisher.serve_requests() is None
    # Nothing pending: the request is answered with the unchanged version.
    with dep.db.transaction() as s:
        request = store_versions.request_publish(s, lid, actor="alice", now=dep.clock())
        request_id = request.id
    result = dep.publisher.serve_requests()
    assert result is not None
    assert (result.version_after, result.versions) == (1, [])
    with dep.db.read() as s:
        row = s.get(PublishRequestRow, request_id)
        assert row is not None
        assert row.done_version == 1
    verify(dep)


def test_missing_highwater_refuses_until_adopted(deployment: Deployment) -> None:
    dep = deployment
    dep.publisher.publish_once()
    add_active(dep.db, "http://example.com/a.html", dep.clock())
    dep.publisher.highwater.path.unlink()
    before = published(dep.db)
    with pytest.raises(HighWaterMissing, match="adopt-highwater"):
        dep.publisher.publish_once()
    with pytest.raises(HighWaterMissing):
        dep.publisher.refresh_checkpoint(force=True)
    assert published(dep.db) == before
    adopted = dep.publisher.adopt_highwater()
    _, log = verify(dep)
    assert adopted == HighWaterMark(dep.init.origin, 1, log.root)
    with pytest.raises(HighWaterError, match="exists already"):
        dep.publisher.adopt_highwater()
    assert dep.publisher.publish_once().versions == [2]
    verify(dep)


def _backup(src: Path, dst: Path) -> None:
    """An online backup with SQLite's backup API (consistent, WAL included)."""
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    a.close()
    b.close()


def _restore(backup: Path, db_file: Path) -> None:
    for suffix in ("-wal", "-shm"):
        Path(str(db_file) + suffix).unlink(missing_ok=True)
    db_file.write_bytes(backup.read_bytes())


def test_restored_old_backup_is_refused(sqlite_deployment: Deployment, tmp_path: Path) -> None:
    dep = sqlite_deployment
    db_file = dep.data_dir / "cleanfeed.db"
    dep.publisher.publish_once()
    backup = tmp_path / "backup.db"
    _backup(db_file, backup)
    add_active(dep.db, "http://example.com/a.html", dep.clock())
    dep.publisher.publish_once()
    _, log = verify(dep)
    signed = mark(dep)
    assert signed.size == 2

    # Disaster recovery with an old backup: version 2 is gone from the database.
    dep.db.dispose()
    _restore(backup, db_file)
    add_active(dep.db, "http://example.com/other.html", dep.clock())
    before = published(dep.db)
    assert len(before.statements) == 1
    for attempt in (
        dep.publisher.publish_once,
        lambda: dep.publisher.refresh_checkpoint(force=True),
    ):
        with pytest.raises(ForkRefused) as info:
            attempt()
        message = str(info.value)
        assert "the database is behind the signer's high-water mark (size 2, root " in message
        assert "it looks like an old backup or a lagging replica" in message
        assert "refusing to fork the log" in message
        assert "restore the latest backup" in message
    # Nothing was signed or stored, and the mark still holds version 2.
    assert published(dep.db) == before
    assert mark(dep) == signed == HighWaterMark(dep.init.origin, 2, log.root)


def test_second_publisher_object_sees_the_first_ones_versions(deployment: Deployment) -> None:
    dep = deployment
    other = Publisher(dep.db, "main", dep.keys_dir, clock=dep.clock)
    dep.publisher.publish_once()
    add_active(dep.db, "http://example.com/a.html", dep.clock())
    assert other.publish_once().versions == [2]
    add_active(dep.db, "http://example.com/b.html", dep.clock())
    assert dep.publisher.publish_once().versions == [3]
    verify(dep)
    assert mark(dep).size == 3
