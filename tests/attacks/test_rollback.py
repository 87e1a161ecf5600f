"""Rollback: an older view of the log or of the keyring is never accepted.

A server restored from an old backup, a replica that lags, or an attacker
replaying what it recorded earlier serves a smaller tree or an older
keyring serial. The client keeps the newer list it holds, also when its own
checkpoint has gone stale meanwhile (a client that was offline must not be
rolled back by a freshly signed old head), and also on the snapshot path
taken after local corruption. The signer's side of the same attack (a
restored database) is in ``test_restored_backup.py``.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

from support.attack_helpers import Forger, World, replacing, timestamp_of
from support.isp_helpers import sign_cp

from blocklist.merkle import EMPTY_ROOT, CompactRange
from clients.isp.config import DEFAULT_MAX_AGE
from clients.isp.store import DB_NAME
from signer.keyring_ops import rotate_online_key

#: Seconds after which the client's held checkpoint is stale (default max age + 1 h).
OFFLINE = DEFAULT_MAX_AGE + 3600


def _root_at(w: World, size: int) -> bytes:
    return CompactRange(size, w.range_hashes(size)).root()


def test_replayed_older_checkpoint(world: World) -> None:
    w = world
    w.add(w.url("a"))
    w.publish()
    assert w.sync().status == "updated"
    recorded = w.checkpoint_note()  # what a network attacker records at version 1
    w.add(w.url("b"))
    w.publish()
    assert w.sync().version_after == 2
    before = w.held()
    w.proxy.tamper = replacing(checkpoint=recorded)
    w.assert_rejected(w.sync(), "rollback", before)


def test_smaller_tree_freshly_signed(synced: World) -> None:
    # The server itself went back to version 1 (an old backup without the
    # signer's high-water mark) and re-signs it with a fresh timestamp.
    w = synced
    before = w.held()
    fresh = sign_cp(w.origin, 1, _root_at(w, 1), w.online_key(), datetime.now(UTC))
    w.proxy.tamper = replacing(checkpoint=fresh)
    w.assert_rejected(w.sync(), "rollback", before)


def test_smaller_tree_while_the_held_checkpoint_is_expired(synced: World) -> None:
    w = synced
    before = w.held()
    held_time = timestamp_of(before.checkpoint_note or "", w.online_key())
    now = held_time + OFFLINE
    fresh = sign_cp(w.origin, 1, _root_at(w, 1), w.online_key(), datetime.fromtimestamp(now, UTC))
    w.proxy.tamper = replacing(checkpoint=fresh)
    w.assert_rejected(w.sync(at=now), "rollback", before)
    # The genuine, re-signed head of the same size is still accepted afterwards.
    w.proxy.tamper = replacing(
        checkpoint=Forger(w).checkpoint(when=datetime.fromtimestamp(now, UTC))
    )
    assert w.sync(at=now).status == "current"


def test_empty_tree_freshly_signed(synced: World) -> None:
    w = synced
    before = w.held()
    w.proxy.tamper = replacing(checkpoint=Forger(w).checkpoint(size=0, root=EMPTY_ROOT))
    w.assert_rejected(w.sync(), "rollback", before)


def _rotated(w: World) -> str:
    """Rotate the online key (keyring serial 2), publish and sync; return keyring 1."""
    serial_1 = w.keyring_note(1)
    rotate_online_key(w.d.data_dir, "main")
    w.add(w.url("after-rotation"))
    w.publish()
    outcome = w.sync()
    assert outcome.status == "updated", outcome
    assert len(w.held().keyrings) == 2
    return serial_1


def test_older_keyring_serial(synced: World) -> None:
    w = synced
    serial_1 = _rotated(w)
    before = w.held()
    w.proxy.tamper = replacing(keyring=serial_1)
    w.assert_rejected(w.sync(), "rollback", before)


def test_older_keyring_serial_while_the_held_checkpoint_is_expired(synced: World) -> None:
    w = synced
    serial_1 = _rotated(w)
    before = w.held()
    w.proxy.tamper = replacing(keyring=serial_1)
    w.assert_rejected(w.sync(offset=OFFLINE), "rollback", before)


def test_smaller_tree_after_local_corruption_is_not_taken_as_a_repair(synced: World) -> None:
    w = synced
    with sqlite3.connect(w.state_dir / DB_NAME) as raw:
        raw.execute("DELETE FROM hashes WHERE hash = (SELECT MIN(hash) FROM hashes)")
    raw.close()
    before = w.held()
    fresh = sign_cp(w.origin, 1, _root_at(w, 1), w.online_key(), datetime.now(UTC))
    w.proxy.tamper = replacing(checkpoint=fresh)
    w.proxy.requests.clear()
    # Force the periodic full check now: the client knows its set is damaged
    # and may take the snapshot path, but never to a smaller tree.
    outcome = w.sync(config=w.configured(full_check_interval=0))
    w.assert_rejected(outcome, "rollback", before)
    assert not any(r.url.path.endswith("/snapshot") for r in w.proxy.requests)
    # The honest server's snapshot path then repairs it at the same version.
    w.proxy.tamper = None
    repaired = w.sync(config=w.configured(full_check_interval=0))
    assert repaired.status == "updated", repaired
    assert repaired.version_after == 2, repaired
    assert "repaired" in repaired.message
