"""Full bundles after retention: pruned plaintext must be recorded, and only then absent.

The model (audit_helpers.FullLog) erases an entry's plaintext and appends
the ``entry.prune_plaintext`` record as blocklist.store.retention does;
each test then breaks one half of that pairing, or the rule that only
entries off the list are pruned.
"""

from __future__ import annotations

import dataclasses

import pytest
from support.audit_helpers import FullLog, assert_audit_failed, page, run, story

from blocklist.encoding import b64encode
from clients.audit.bundle import dumps, loads
from clients.errors import BundleError


def _withdrawn(f: FullLog) -> int:
    """The entry story() withdrew before it was ever listed."""
    return next(e.id for e in f.entries.values() if e.status == "removed")


def _expired(f: FullLog) -> int:
    """An entry listed, then expired and published off."""
    eid = f.add_approved(page(9))
    f.tick()
    f.publish()
    f.tick()
    f.expire(eid)
    f.tick()
    f.publish()
    f.tick()
    return eid


def test_pruned_entries_verify_and_are_counted() -> None:
    f = story()
    gone = [_withdrawn(f), _expired(f)]
    for eid in gone:
        f.prune(eid)
    f.tick()
    f.publish()
    bundle = loads(dumps(f.bundle()))  # through the JSON format, nulls included
    assert bundle.entries is not None
    assert [e.id for e in bundle.entries if e.expression is None and e.url is None] == gone
    report = run(bundle, f, now=f.now)
    assert report.ok, report.failure
    assert report.counts.entries == len(f.entries)
    assert report.counts.entries_pruned == 2


def test_restored_plaintext_verifies_again() -> None:
    f = story()
    eid = _expired(f)
    f.prune(eid)
    f.restore(eid)
    report = run(f.bundle(), f, now=f.now)
    assert report.ok, report.failure
    assert report.counts.entries_pruned == 0


def test_missing_plaintext_without_a_prune_record_fails() -> None:
    f = story()
    eid = _expired(f)
    f.prune(eid, record=False)
    assert_audit_failed(f, "entries", "no entry.prune_plaintext record in force", entry_id=eid)


def test_plaintext_kept_after_a_prune_record_fails() -> None:
    f = story()
    eid = _expired(f)
    f.prune(eid, erase=False)
    assert_audit_failed(f, "entries", "says retention pruned", entry_id=eid)


def test_plaintext_missing_again_after_a_restore_fails() -> None:
    f = story()
    eid = _expired(f)
    f.prune(eid)
    f.restore(eid)
    f.entries[eid].pruned = True  # served without plaintext although restored
    assert_audit_failed(f, "entries", "no entry.prune_plaintext record in force", entry_id=eid)


def test_pruning_a_listed_entry_fails() -> None:
    f = story()
    listed = next(e.id for e in f.entries.values() if e.listed and e.id != 1)
    f.prune(listed)
    f.tick()
    f.publish()  # a later version commits to the record
    assert_audit_failed(f, "audit.records", "not off the list", entry_id=listed)


def test_pruning_twice_fails() -> None:
    f = story()
    eid = _expired(f)
    f.prune(eid)
    f.prune(eid)
    f.tick()
    f.publish()
    assert_audit_failed(f, "audit.records", "already pruned", entry_id=eid)


def test_restoring_what_was_never_pruned_fails() -> None:
    f = story()
    eid = _expired(f)
    f.restore(eid)
    f.tick()
    f.publish()
    assert_audit_failed(f, "audit.records", "was not pruned", entry_id=eid)


def test_a_bundle_with_half_pruned_plaintext_is_malformed() -> None:
    f = story()
    eid = _expired(f)
    f.prune(eid)
    bundle = f.bundle()
    assert bundle.entries is not None
    entries = tuple(
        dataclasses.replace(e, url=f"http://{b64encode(e.hash)[:8]}.example.org/")
        if e.id == eid
        else e
        for e in bundle.entries
    )
    text = dumps(dataclasses.replace(bundle, entries=entries))
    with pytest.raises(BundleError, match="null together"):
        loads(text)
