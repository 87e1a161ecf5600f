"""A restored old database backup must not fork the log.

An operator (or an insider) restores a database backup older than what the
signer already signed. The signer's high-water mark, kept beside its key
and outside the database, refuses to sign anything that is not a consistent
extension of the largest tree it signed (protocol section 7.4). Covered,
and referenced from docs/security.md:

- the publisher: ``tests/signer/test_publisher.py::test_restored_old_backup_is_refused``
  and the mark's rules in ``tests/signer/test_highwater.py``;
- end to end with real processes (API 503 ``fork_refused``, ``cleanfeed
  signer publish`` failing, the ISP seeing a rollback):
  ``tests/e2e/test_backup_restore.py::test_restore_older_backup_is_refused_by_the_high_water_mark``.

This file adds the API's answers in-process and the defence in depth behind
the mark: if the mark comes back from the same old backup as the database
(its off-host copy after every publish, docs/operations.md "Backups and
restore", was not used), the signer does fork, and then every ISP that
held the newer version catches it as equivocation and keeps evidence an
auditor can use.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from support.api_testing import MAIN
from support.attack_helpers import World, checkpoint_of

from clients.audit.bundle import loads
from clients.audit.verify import verify_bundle
from signer.highwater import HighWater


def _db_file(w: World) -> Path:
    return w.d.data_dir / "cleanfeed.db"


def _backup(w: World, to: Path) -> None:
    with sqlite3.connect(_db_file(w)) as src, sqlite3.connect(to) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def _restore(w: World, backup: Path) -> None:
    """Copy the backup over the live database with SQLite's backup API (in place)."""
    with sqlite3.connect(backup) as src, sqlite3.connect(_db_file(w)) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def test_restored_database_is_refused_by_the_api_and_the_isp_keeps_its_list(
    world: World, tmp_path: Path
) -> None:
    w = world
    w.add(w.url("a"))
    assert w.publish() == 1
    backup = tmp_path / "backup-v1.db"
    _backup(w, backup)
    w.add(w.url("b"))
    assert w.publish() == 2
    assert w.sync().version_after == 2
    mark = HighWater.for_list(w.keys_dir, MAIN).read()
    _restore(w, backup)
    assert checkpoint_of(w.checkpoint_note()).size == 1
    w.add(w.url("c"))  # new work on the restored database
    r = w.call("POST", f"/v1/lists/{MAIN}/publish", w.tokens.alice)
    assert r.status_code == 503, r.text
    assert r.json()["code"] == "fork_refused"
    assert checkpoint_of(w.checkpoint_note()).size == 1  # nothing signed
    assert HighWater.for_list(w.keys_dir, MAIN).read() == mark
    before = w.held()
    w.assert_rejected(w.sync(), "rollback", before)


def test_database_restored_with_its_old_mark_forks_and_isps_keep_evidence(
    world: World, tmp_path: Path
) -> None:
    w = world
    w.add(w.url("a"))
    assert w.publish() == 1
    backup = tmp_path / "backup-v1.db"
    _backup(w, backup)
    mark_file = HighWater.for_list(w.keys_dir, MAIN).path
    old_mark = tmp_path / "highwater-v1.json"
    shutil.copy2(mark_file, old_mark)
    w.add(w.url("b"))
    assert w.publish() == 2
    assert w.sync().version_after == 2
    seen_at_2 = w.checkpoint_note()

    # The whole data directory comes back from the old backup, mark included.
    _restore(w, backup)
    shutil.copy2(old_mark, mark_file)
    w.add(w.url("other-b"))
    assert w.publish() == 2  # a second, different version 2: the log forked
    forked_head = w.checkpoint_note()
    assert checkpoint_of(forked_head).root != checkpoint_of(seen_at_2).root

    before = w.held()
    w.assert_rejected(w.sync(), "equivocation", before)
    (evidence,) = w.evidence()
    assert (evidence.held_note, evidence.new_note) == (seen_at_2, forked_head)

    # The auditor, given the ISP's checkpoint, proves the fork against the
    # restored server's own bundle.
    bundle = w.call("GET", f"/v1/lists/{MAIN}/audit/bundle", w.tokens.auditor)
    assert bundle.status_code == 200
    report = verify_bundle(loads(bundle.content), [w.root_vkey], extra_checkpoints=[seen_at_2])
    assert report.failure is not None
    assert report.failure.check == "extra_checkpoint"
    (proof,) = report.equivocations
    assert proof.conflicting_note == seen_at_2
