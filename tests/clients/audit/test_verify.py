"""Offline verification of bundles: honest bundles verify, every tamper is caught.

Bundles come from :class:`support.memory_log.MemoryLog` (hash-only), from
:class:`audit_helpers.FullLog` (an independent model of the service's
decisions, for full bundles) and from the real service in-process. Each
attack is named after what it does and asserts the check, the version (or
keyring serial, record, checkpoint, entry) and the reason of the failure.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from support.audit_helpers import (
    LATER,
    LIST,
    ORIGIN,
    T0,
    FullLog,
    assert_audit_failed,
    assert_failed,
    checkpoint_for,
    forge_next,
    hash_only,
    page,
    pretty,
    rechain,
    replay,
    run,
    sha,
    small_log,
    statement_of,
    story,
    with_statements,
)
from support.memory_log import MemoryLog

from blocklist.auditlog import Action, Actor, AuditRecord
from blocklist.checkpoint import Checkpoint
from blocklist.encoding import b64encode
from blocklist.keyring import Keyring
from blocklist.merkle import verify_consistency
from blocklist.statedigest import StateDigest
from clients.audit.bundle import Bundle, BundleEntry, dumps, load, loads, save
from clients.audit.verify import verify_bundle
from clients.errors import BundleError
from signer.keyring import sign_keyring
from signer.keys import SecretKey
from signer.log import sign_checkpoint
from signer.note import Verifier, verify_note


def replace_statement(bundle: Bundle, index: int, note: str) -> Bundle:
    notes = list(bundle.statements)
    notes[index] = note
    return dataclasses.replace(bundle, statements=tuple(notes))


# --- honest bundles ---------------------------------------------------------------


def test_hash_only_bundle_verifies_across_a_key_rotation() -> None:
    log = small_log()
    report = run(hash_only(log), log)
    assert report.ok, report.failure
    # Cross-check with a naive replay written here.
    final = replay(log.statements)
    assert final == log.members
    assert report.count == len(final)
    assert report.state == StateDigest.from_hashes(final).digest()
    assert report.version == 6
    assert report.counts.statements == 6
    assert report.counts.additions == sum(len(statement_of(n).adds) for n in log.statements)
    assert report.counts.removals == sum(len(statement_of(n).removes) for n in log.statements)
    assert (report.counts.keyrings, report.counts.online_keys) == (2, 2)
    assert report.checkpoint is not None
    assert report.checkpoint.size == 6
    assert report.checkpoint.root == log.root()
    assert report.checkpoint.timestamp == int((T0 + timedelta(days=1)).timestamp())
    assert report.unauthenticated == ["list", "approvals_required"]
    assert report.warnings == []


def test_empty_log_verifies() -> None:
    log = MemoryLog(ORIGIN, now=T0)
    report = run(hash_only(log), log)
    assert report.ok, report.failure
    assert (report.version, report.count) == (0, 0)
    assert report.checkpoint is not None
    assert report.checkpoint.size == 0


@pytest.mark.parametrize("required", [1, 2])
def test_full_bundle_verifies(required: int) -> None:
    f = story(required)
    report = run(f.bundle(), f, now=f.now)
    assert report.ok, report.failure
    assert report.approvals_required == required
    assert report.canary == sha("canary.cleanfeed.invalid/")
    assert report.counts.audit_records == len(f.records)
    assert report.counts.entries == len(f.entries)
    assert report.counts.backed_additions == report.counts.additions == 5
    assert report.counts.backed_removals == report.counts.removals == 2


def test_bundle_file_round_trip(tmp_path: Path) -> None:
    f = story()
    bundle = f.bundle()
    path = tmp_path / "bundle.json"
    save(bundle, path)
    assert path.stat().st_mode & 0o777 == 0o600  # full bundles hold plaintext
    assert load(path) == bundle
    assert run(load(path), f, now=f.now).ok


def test_verifies_years_later_with_a_warning() -> None:
    # Keyrings expire after a year; a bundle audited later is not failed for it.
    log = small_log()
    report = run(hash_only(log), log, now=T0 + timedelta(days=3 * 365))
    assert report.ok, report.failure
    assert any("expired" in w for w in report.warnings)


def test_worker_processes_give_the_same_report() -> None:
    log = small_log(versions=12, per_version=30)
    bundle = hash_only(log)
    assert run(bundle, log, workers=2).to_json() == run(bundle, log, workers=1).to_json()
    tampered = replace_statement(bundle, 8, bundle.statements[7])
    one = run(tampered, log, workers=1)
    two = run(tampered, log, workers=2)
    assert one.failure == two.failure
    assert_failed(two, "statement.numbering", "holds version 8", version=9)


# --- statements -----------------------------------------------------------------


def flip_text(note: str, line_prefix: str, column: int) -> str:
    """Change one base64 character of the first line starting with ``line_prefix``."""
    start = note.index("\n" + line_prefix) + 1 + len(line_prefix) + column
    swapped = "B" if note[start] != "B" else "C"
    return note[:start] + swapped + note[start + 1 :]


def test_a_byte_of_a_statement_text() -> None:
    log = small_log()
    bundle = hash_only(log)
    tampered = replace_statement(bundle, 3, flip_text(bundle.statements[3], "add ", 10))
    assert_failed(run(tampered, log), "statement.signature", "invalid signature", version=4)


def test_a_byte_of_a_statement_signature() -> None:
    log = small_log()
    bundle = hash_only(log)
    tampered = replace_statement(bundle, 1, flip_text(bundle.statements[1], "— ", 40))
    assert_failed(run(tampered, log), "statement.signature", "invalid signature", version=2)


def test_a_broken_statement_format() -> None:
    log = small_log()
    bundle = hash_only(log)
    note = bundle.statements[2].replace("\ncount ", "\ncount 0", 1)
    assert_failed(
        run(replace_statement(bundle, 2, note), log), "statement.format", "count", version=3
    )


def test_a_reordered_statement() -> None:
    log = small_log()
    bundle = hash_only(log)
    notes = list(bundle.statements)
    notes[1], notes[2] = notes[2], notes[1]
    report = run(dataclasses.replace(bundle, statements=tuple(notes)), log)
    assert_failed(
        report, "statement.numbering", "position 2 of the bundle holds version 3", version=2
    )


def test_a_dropped_version() -> None:
    log = small_log()
    bundle = hash_only(log)
    notes = bundle.statements[:2] + bundle.statements[3:]
    report = run(dataclasses.replace(bundle, statements=notes), log)
    assert_failed(report, "statement.numbering", "holds version 4", version=3)


def test_a_duplicated_version() -> None:
    log = small_log()
    bundle = hash_only(log)
    notes = bundle.statements[:3] + bundle.statements[2:]
    report = run(dataclasses.replace(bundle, statements=notes), log)
    assert_failed(report, "statement.numbering", "holds version 3", version=4)


def test_truncated_history_is_not_covered_by_the_checkpoint() -> None:
    log = small_log()
    bundle = hash_only(log)
    report = run(dataclasses.replace(bundle, statements=bundle.statements[:-1]), log)
    assert_failed(report, "checkpoint", "beyond the bundle's 5 statements", checkpoint="bundle[0]")


def test_statement_of_another_list_mix_and_match() -> None:
    log = small_log()
    notes = list(log.statements)
    notes.append(forge_next(log, notes, adds=(sha("example.org/x"),), origin="cleanfeed.invalid/x"))
    report = run(with_statements(hash_only(log), notes, log.online_key), log)
    assert_failed(report, "statement.origin", "cleanfeed.invalid/x", version=7)


def test_broken_previous_chain() -> None:
    log = small_log()
    notes = list(log.statements)
    notes.append(forge_next(log, notes, adds=(sha("example.org/x"),), previous=b"\x01" * 32))
    report = run(with_statements(hash_only(log), notes, log.online_key), log)
    assert_failed(report, "statement.previous", "version 6's text hashes to", version=7)


def test_delta_adding_a_listed_hash() -> None:
    log = small_log()
    notes = list(log.statements)
    present = sorted(log.members)[0]
    notes.append(forge_next(log, notes, adds=(present,)))
    report = run(with_statements(hash_only(log), notes, log.online_key), log)
    assert_failed(
        report, "statement.delta", f"adds {b64encode(present)}, which is already listed", version=7
    )


def test_delta_removing_an_absent_hash() -> None:
    log = small_log()
    notes = list(log.statements)
    absent = sha("example.org/never-listed")
    notes.append(forge_next(log, notes, removes=(absent,), count=len(log.members)))
    report = run(with_statements(hash_only(log), notes, log.online_key), log)
    assert_failed(
        report, "statement.delta", f"removes {b64encode(absent)}, which is not listed", version=7
    )


def test_wrong_count() -> None:
    log = small_log()
    notes = list(log.statements)
    notes.append(forge_next(log, notes, adds=(sha("example.org/x"),), count=len(log.members) + 2))
    report = run(with_statements(hash_only(log), notes, log.online_key), log)
    assert_failed(report, "statement.count", "the replayed list has", version=7)


def test_wrong_state_digest() -> None:
    log = small_log()
    notes = list(log.statements)
    notes.append(forge_next(log, notes, adds=(sha("example.org/x"),), state=b"\x02" * 32))
    report = run(with_statements(hash_only(log), notes, log.online_key), log)
    assert_failed(report, "statement.state", "does not match the replayed list", version=7)


def test_statement_signed_by_an_unknown_key() -> None:
    log = small_log()
    notes = list(log.statements)
    intruder = SecretKey.generate(ORIGIN)
    notes.append(forge_next(log, notes, key=intruder, adds=(sha("example.org/x"),)))
    report = run(with_statements(hash_only(log), notes, log.online_key), log)
    assert_failed(report, "statement.signature", "no signature by", version=7)


def test_compromised_key_after_rotation_cannot_sign_later_versions() -> None:
    log = MemoryLog(ORIGIN, now=T0)
    log.publish([sha("example.org/1")], now=T0)
    old = log.online_key
    log.rotate_online_key(now=T0)  # keyring 2 closes the old key's range at 1
    notes = list(log.statements)
    # The stolen old key signs version 2 naming keyring serial 1, where its
    # range was still open.
    notes.append(forge_next(log, notes, key=old, keyring=1, adds=(sha("example.org/2"),)))
    report = run(with_statements(hash_only(log), notes, log.online_key), log)
    assert_failed(report, "statement.keyring", "keyring serial 2 no longer gives it", version=2)


def test_statement_signed_under_an_expired_keyring() -> None:
    log = MemoryLog(ORIGIN, now=T0, keyring_lifetime=timedelta(hours=1))
    log.publish([sha("example.org/1")], now=T0 + timedelta(minutes=30))
    log.publish([sha("example.org/2")], now=T0 + timedelta(hours=2))
    report = run(hash_only(log, at=T0 + timedelta(minutes=50)), log)
    assert_failed(report, "statement.keyring", "which expired at 2024-01-01T01:00:00Z", version=2)


def renew(log: MemoryLog) -> None:
    """A new keyring serial with the same keys (a renewal)."""
    log.keyring = dataclasses.replace(
        log.keyring, serial=log.keyring.serial + 1, expires=log.keyring.expires + timedelta(days=1)
    )
    log.keyrings.append(sign_keyring(log.keyring, [log.root_key]))
    log.tip = dataclasses.replace(log.tip, keyring_serial=log.keyring.serial)


def test_keyring_in_force_going_back() -> None:
    log = MemoryLog(ORIGIN, now=T0)
    log.publish([sha("example.org/1")], now=T0)
    renew(log)
    log.publish([sha("example.org/2")], now=T0)
    notes = list(log.statements)
    notes.append(forge_next(log, notes, keyring=1, adds=(sha("example.org/3"),)))
    report = run(with_statements(hash_only(log), notes, log.online_key), log)
    assert_failed(report, "statement.keyring", "went back", version=3)


# --- keyrings ------------------------------------------------------------------------


def test_forged_keyring() -> None:
    log = small_log()
    attacker = SecretKey.generate(f"{ORIGIN}/root")
    forged = dataclasses.replace(log.keyring, serial=3)
    bundle = hash_only(log)
    bundle = dataclasses.replace(
        bundle, keyrings=(*bundle.keyrings, sign_keyring(forged, [attacker]))
    )
    assert_failed(run(bundle, log), "keyring", "threshold", keyring_serial=3)


def test_bundle_under_another_pinned_root() -> None:
    log = small_log()
    other = SecretKey.generate(f"{ORIGIN}/root")
    report = verify_bundle(hash_only(log), [other.vkey], now=LATER, workers=1)
    assert_failed(report, "keyring", "threshold", keyring_serial=1)


def test_skipped_keyring_serial() -> None:
    log = small_log()
    renew(log)
    bundle = hash_only(log)
    bundle = dataclasses.replace(bundle, keyrings=(bundle.keyrings[0], bundle.keyrings[2]))
    assert_failed(run(bundle, log), "keyring", "serial_gap", keyring_serial=2)


def test_no_keyring() -> None:
    log = small_log()
    bundle = dataclasses.replace(hash_only(log), keyrings=())
    assert_failed(run(bundle, log), "keyring", "no keyring", keyring_serial=1)


def test_root_rotation_signed_by_old_and_new_roots() -> None:
    log = small_log()
    new_root = SecretKey.generate(f"{ORIGIN}/root2")
    rotated = Keyring.create(
        origin=ORIGIN,
        serial=log.keyring.serial + 1,
        expires=log.keyring.expires,
        threshold=1,
        roots=[new_root.vkey],
        keys=list(log.keyring.keys),
    )
    log.keyrings.append(sign_keyring(rotated, [log.root_key, new_root]))
    report = run(hash_only(log), log)
    assert report.ok, report.failure
    assert report.counts.root_rotations == 1
    # The same rotation signed by the old root only (TUF root rotation rule).
    log.keyrings[-1] = sign_keyring(rotated, [log.root_key])
    assert_failed(run(hash_only(log), log), "keyring", "rotation_unsigned", keyring_serial=3)


def test_pinned_origin_mismatch() -> None:
    log = small_log()
    report = run(hash_only(log), log, origin="cleanfeed.invalid/other")
    assert_failed(report, "bundle", "pinned")


# --- checkpoints ------------------------------------------------------------------------


def test_replaced_checkpoint_signed_by_an_unknown_key() -> None:
    log = small_log()
    bundle = hash_only(log)
    intruder = SecretKey.generate(ORIGIN)
    forged = sign_checkpoint(ORIGIN, log.version, log.root(), intruder, T0 + timedelta(days=1))
    report = run(dataclasses.replace(bundle, checkpoints=(forged,)), log)
    assert_failed(report, "checkpoint", "signature", checkpoint="bundle[0]")


def test_replaced_checkpoint_older_than_the_statements() -> None:
    log = small_log()
    bundle = hash_only(log)
    older = checkpoint_for(list(log.statements[:-1]), log.online_key)
    report = run(dataclasses.replace(bundle, checkpoints=(older,)), log)
    assert_failed(report, "checkpoint", "no checkpoint of the bundle's size 6")


def test_replaced_checkpoint_with_another_root() -> None:
    log = small_log()
    bundle = hash_only(log)
    forged = sign_checkpoint(ORIGIN, log.version, b"\x03" * 32, log.online_key, LATER)
    report = run(dataclasses.replace(bundle, checkpoints=(forged,)), log)
    assert_failed(report, "checkpoint", "is not the Merkle root", checkpoint="bundle[0]")


def test_checkpoint_without_its_timestamp_line() -> None:
    log = small_log()
    bundle = hash_only(log)
    note = bundle.checkpoints[0]
    without = note[: note.rindex("— ")]  # drop the 0x04 line (the last one)
    report = run(dataclasses.replace(bundle, checkpoints=(without,)), log)
    assert_failed(report, "checkpoint", "no valid timestamped cosignature", checkpoint="bundle[0]")


def check_equivocation_proof(proof: Any, log: MemoryLog) -> None:
    """Re-check the evidence with the notes and keys alone."""
    verifier = Verifier.from_vkey(log.online_key.vkey)
    keys = [Verifier.from_vkey(r.vkey) for r in log.keyring.keys]
    conflicting = Checkpoint.parse(verify_note(proof.conflicting_note, keys).text)
    latest = Checkpoint.parse(verify_note(proof.log_note, [verifier]).text)
    assert conflicting.size == proof.size
    assert conflicting.root == proof.claimed_root != proof.log_root
    verify_consistency(proof.size, latest.size, proof.log_root, latest.root, proof.consistency)
    text = proof.to_text()
    assert proof.conflicting_note.rstrip("\n") in text
    assert proof.log_note.rstrip("\n") in text


def test_bundle_checkpoints_that_equivocate() -> None:
    log = small_log()
    bundle = hash_only(log)
    fork = sign_checkpoint(ORIGIN, 5, b"\x04" * 32, log.online_key, T0 + timedelta(hours=1))
    report = run(dataclasses.replace(bundle, checkpoints=(fork, *bundle.checkpoints)), log)
    assert_failed(report, "checkpoint", "equivocation", checkpoint="bundle[0]")
    [proof] = report.equivocations
    check_equivocation_proof(proof, log)


# --- extra checkpoints ----------------------------------------------------------------


def test_extra_checkpoint_consistent_with_the_log() -> None:
    log = MemoryLog(ORIGIN, now=T0)
    log.publish([sha("example.org/1")], now=T0)
    log.publish([sha("example.org/2")], now=T0)
    seen_by_isp = log.checkpoint(now=T0 + timedelta(minutes=1))  # size 2, old key
    log.rotate_online_key(now=T0)
    log.publish([sha("example.org/3")], now=T0 + timedelta(minutes=2))
    report = run(hash_only(log), log, extra_checkpoints=[seen_by_isp])
    assert report.ok, report.failure
    [extra] = report.extra_checkpoints
    assert (extra.status, extra.size) == ("ok", 2)
    assert report.counts.extra_checkpoints == 1


def test_extra_checkpoint_equivocation_is_proven_with_both_notes() -> None:
    log = small_log()
    # A forked view of size 4 that a split-view attack showed one ISP.
    fork = MemoryLog(ORIGIN, now=T0, root_key=log.root_key)
    for note in log.statements[:3]:
        st = statement_of(note)
        fork.publish(st.adds, st.removes, now=st.time)
    fork.publish([sha("example.org/only-in-fork")], now=T0)
    text = Checkpoint(ORIGIN, 4, fork.root()).to_text()
    isp_note = sign_checkpoint(ORIGIN, 4, fork.root(), log.online_key, T0)
    assert text in isp_note
    report = run(hash_only(log), log, extra_checkpoints=[isp_note])
    assert_failed(report, "extra_checkpoint", "equivocation", checkpoint="extra[0]")
    assert report.extra_checkpoints[0].status == "equivocation"
    [proof] = report.equivocations
    assert (proof.size, proof.log_size) == (4, 6)
    check_equivocation_proof(proof, log)


def test_extra_checkpoint_same_size_other_root() -> None:
    log = small_log()
    other = sign_checkpoint(ORIGIN, 6, b"\x05" * 32, log.online_key, LATER)
    report = run(hash_only(log), log, extra_checkpoints=[other])
    assert_failed(report, "extra_checkpoint", "equivocation", checkpoint="extra[0]")
    [proof] = report.equivocations
    assert proof.consistency == ()
    check_equivocation_proof(proof, log)


def test_extra_checkpoint_beyond_the_bundle() -> None:
    log = small_log()
    bundle = hash_only(log)
    log.publish([sha("example.org/later")], now=LATER)
    newer = log.checkpoint(now=LATER)
    report = run(bundle, log, extra_checkpoints=[newer])
    assert_failed(report, "extra_checkpoint", "fetch a newer bundle", checkpoint="extra[0]")
    assert report.extra_checkpoints[0].status == "beyond_log"


def test_extra_checkpoint_with_a_bad_signature() -> None:
    log = small_log()
    note = log.checkpoint(now=LATER)
    bad = flip_text(note, "— ", 30)
    report = run(hash_only(log), log, extra_checkpoints=[note, bad])
    assert_failed(report, "extra_checkpoint", "signature", checkpoint="extra[1]")
    assert [c.status for c in report.extra_checkpoints] == ["ok", "invalid"]


def test_extra_checkpoint_by_a_rotated_out_key() -> None:
    log = MemoryLog(ORIGIN, now=T0)
    log.publish([sha("example.org/1")], now=T0)
    old = log.online_key
    log.rotate_online_key(now=T0)
    log.publish([sha("example.org/2")], now=T0)
    late = sign_checkpoint(ORIGIN, 2, log.root(), old, LATER)  # old key, beyond its range
    report = run(hash_only(log), log, extra_checkpoints=[late])
    assert_failed(report, "extra_checkpoint", "may sign trees of size 0..1 only")


def test_extra_checkpoints_not_checked_when_the_bundle_fails() -> None:
    log = small_log()
    bundle = hash_only(log)
    tampered = replace_statement(bundle, 0, flip_text(bundle.statements[0], "add ", 3))
    report = run(tampered, log, extra_checkpoints=[log.checkpoint(now=LATER)])
    assert report.failure is not None
    assert report.failure.check == "statement.signature"
    assert [c.status for c in report.extra_checkpoints] == ["not_checked"]


# --- full bundles: the audit log and the decisions --------------------------------------


def edit_record(bundle: Bundle, seq: int, **changes: Any) -> list[AuditRecord]:
    assert bundle.audit_log is not None
    records = list(bundle.audit_log)
    records[seq - 1] = dataclasses.replace(records[seq - 1], **changes)
    return records


def first_seq(f: FullLog, action: str, actor: str | None = None) -> int:
    seq: int = next(
        r.seq for r in f.records if r.action == action and (actor is None or r.actor == actor)
    )
    return seq


def test_audit_log_edit() -> None:
    f = story()
    bundle = f.bundle()
    seq = first_seq(f, Action.ENTRY_ADD, "alice")
    records = edit_record(bundle, seq, details={**f.records[seq - 1].details, "reason": "edited"})
    report = run(dataclasses.replace(bundle, audit_log=tuple(records)), f, now=f.now)
    assert_failed(report, "audit.chain", "does not match its chain hash", audit_seq=seq)


def test_audit_log_rewritten_with_a_consistent_chain() -> None:
    f = story()
    bundle = f.bundle()
    seq = first_seq(f, Action.ENTRY_ADD, "alice")
    records = edit_record(bundle, seq, details={**f.records[seq - 1].details, "reason": "edited"})
    report = run(dataclasses.replace(bundle, audit_log=tuple(rechain(records))), f, now=f.now)
    # The signed statements commit to the old heads.
    assert_failed(report, "audit.head", "is not the audit log's head", version=1)


def test_removed_approval_record() -> None:
    f = story()
    bundle = f.bundle()
    seq = first_seq(f, Action.ENTRY_APPROVE, "carol")
    records = [r for r in f.records if r.seq != seq]
    report = run(dataclasses.replace(bundle, audit_log=tuple(records)), f, now=f.now)
    assert_failed(report, "audit.chain", f"audit seq {seq + 1} where {seq} was expected")
    report = run(dataclasses.replace(bundle, audit_log=tuple(rechain(records))), f, now=f.now)
    assert_failed(report, "audit.head", "is not the audit log's head", version=1)


def test_published_with_too_few_approvals() -> None:
    f = FullLog(2)
    eid = f.add(page(1))
    f.approve(eid, "bob")
    f.force_adds = [eid]  # the server skips four-eyes
    f.publish()
    report = run(f.bundle(), f, now=f.now)
    assert_failed(
        report,
        "audit.addition",
        "which had 1 of 2 required approval(s) by analysts other than alice",
        version=1,
        entry_id=eid,
    )


def test_self_approval_does_not_count() -> None:
    f = FullLog(1)
    eid = f.add(page(1))
    f.approve(eid, "alice", record_only=True)
    f.force_adds = [eid]
    f.publish()
    assert_audit_failed(f, "audit.addition", "0 of 1", version=1)


def test_repeated_approval_counts_once() -> None:
    f = FullLog(2)
    eid = f.add(page(1))
    f.approve(eid, "bob")
    f.approve(eid, "bob", record_only=True)
    f.force_adds = [eid]
    f.publish()
    assert_audit_failed(f, "audit.addition", "1 of 2", version=1)


def test_system_actor_approval_does_not_count() -> None:
    f = FullLog(1)
    eid = f.add(page(1))
    f.approve(eid, Actor.PUBLISHER, record_only=True)
    f.force_adds = [eid]
    f.publish()
    assert_audit_failed(f, "audit.addition", "0 of 1", version=1)


def test_approval_after_the_version_does_not_back_it() -> None:
    f = FullLog(2)
    eid = f.add(page(1))
    f.approve(eid, "bob")
    f.force_adds = [eid]
    f.publish()  # the head of version 1 precedes carol's approval
    f.tick()
    f.approve(eid, "carol")
    assert_audit_failed(f, "audit.addition", "1 of 2", version=1)


def test_addition_with_no_entry_record() -> None:
    f = FullLog(1)
    f.log.set_audit_head(f.head)
    stray = sha("example.org/stray")
    f.log.publish([stray], now=f.now)
    assert_audit_failed(
        f, "audit.addition", f"adds {b64encode(stray)}, but no entry.add record", version=1
    )


def test_removal_with_no_expiry_record() -> None:
    f = FullLog(1)
    eid = f.add_approved(page(1))
    f.publish()
    f.tick()
    f.force_removes = [eid]
    f.publish()
    assert_audit_failed(f, "audit.removal", "with no expiry record", version=2, entry_id=eid)


def test_removal_by_a_system_expiry_nobody_scheduled() -> None:
    f = FullLog(1)
    eid = f.add_approved(page(1))
    f.publish()
    f.tick()
    e = f.entries[eid]
    e.status = "expired"
    f.record(
        Actor.EXPIRY,
        Action.ENTRY_EXPIRE,
        eid,
        {
            "hash": b64encode(e.hash),
            "reason": "scheduled expiry",
            "at": "2024-01-01T00:01:00Z",
            "status": "expired",
        },
    )
    f.publish()
    assert_audit_failed(f, "audit.removal", "a system expiry that no analyst scheduled", version=2)


def test_reinstated_entry_needs_fresh_approvals() -> None:
    f = FullLog(1)
    eid = f.add_approved(page(1))
    f.publish()
    f.tick()
    f.expire(eid)
    f.publish()
    f.tick()
    f.reinstate(eid, actor="bob")
    f.approve(eid, "bob", record_only=True)  # the reinstating analyst approves: no
    f.force_adds = [eid]
    f.publish()
    assert_audit_failed(
        f,
        "audit.addition",
        "0 of 1 required approval(s) by analysts other than bob (round 2)",
        version=3,
    )


def test_audit_head_moving_back() -> None:
    f = story()
    bundle = f.bundle()
    notes = list(bundle.statements)
    eid = f.add_approved(page(9))
    notes.append(forge_next(f.log, notes, adds=(f.entries[eid].hash,), audit=f.records[0].hash))
    tampered = with_statements(
        dataclasses.replace(bundle, audit_log=tuple(f.records)), notes, f.log.online_key
    )
    assert_failed(run(tampered, f, now=f.now), "audit.head", "the log went back", version=4)


def test_audit_line_that_is_no_head() -> None:
    f = story()
    bundle = f.bundle()
    notes = list(bundle.statements)
    notes.append(forge_next(f.log, notes, adds=(sha("example.org/x"),), audit=b"\x06" * 32))
    tampered = with_statements(bundle, notes, f.log.online_key)
    assert_failed(
        run(tampered, f, now=f.now), "audit.head", "is not the audit log's head", version=4
    )


def replace_entry(bundle: Bundle, entry_id: int, **changes: Any) -> Bundle:
    assert bundle.entries is not None
    entries = tuple(
        dataclasses.replace(e, **changes) if e.id == entry_id else e for e in bundle.entries
    )
    return dataclasses.replace(bundle, entries=entries)


def test_expression_not_matching_its_hash() -> None:
    f = story()
    report = run(
        replace_entry(f.bundle(), 2, expression="example.org/abuse/other.html"), f, now=f.now
    )
    assert_failed(report, "entries", "does not hash (SHA-256) to the entry's hash", entry_id=2)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("reason", "another reason", "reason 'another reason' differs"),
        ("created_by", "mallory", "created_by 'mallory' differs"),
        ("status", "active", "status 'active' differs"),
        ("scope", "prefix", "scope 'prefix' differs"),
        ("reference", None, "reference None differs"),
        ("created_at", "2023-01-01T00:00:00Z", "created_at 2023-01-01T00:00:00Z differs"),
        ("url", page(7), "url canonicalises to another expression"),
    ],
)
def test_entry_field_that_contradicts_the_audit_log(field: str, value: Any, message: str) -> None:
    f = story()
    report = run(replace_entry(f.bundle(), 3, **{field: value}), f, now=f.now)
    assert_failed(report, "entries", message, entry_id=3)


def test_entry_missing_from_the_bundle() -> None:
    f = story()
    bundle = f.bundle()
    assert bundle.entries is not None
    without = dataclasses.replace(bundle, entries=tuple(e for e in bundle.entries if e.id != 4))
    assert_failed(
        run(without, f, now=f.now), "entries", "missing from the bundle's entries", entry_id=4
    )


def test_approvals_required_lowered_in_the_bundle() -> None:
    f = story(2)
    report = run(dataclasses.replace(f.bundle(), approvals_required=1), f, now=f.now)
    assert_failed(
        report, "audit.records", "approvals_required 1, the list.create record says 2", audit_seq=1
    )


def test_list_name_changed_in_a_full_bundle() -> None:
    f = story()
    report = run(dataclasses.replace(f.bundle(), list_name="other"), f, now=f.now)
    assert_failed(
        report, "audit.records", "record of list 'main' in the bundle of 'other'", audit_seq=1
    )


def test_hash_only_bundle_with_plaintext_is_refused() -> None:
    f = story()
    doc = json.loads(dumps(f.bundle()))
    doc["kind"] = "hash-only"
    with pytest.raises(BundleError, match="unknown key"):
        loads(json.dumps(doc))


# --- the real service -------------------------------------------------------------------


def test_bundles_of_the_real_service(tmp_path: Path) -> None:
    from support.audit_service import service

    from clients.audit.fetch import fetch_bundle

    with service(tmp_path) as s:
        tokens = s.deployment.tokens
        for full, token in ((False, tokens.auditor), (True, tokens.auditor_full)):
            out = tmp_path / f"bundle-{full}.json"
            fetch_bundle(
                s.http,
                server="https://cleanfeed.test",
                list_name="main",
                token=token,
                output=out,
                full=full,
            )
            bundle = load(out)
            report = verify_bundle(bundle, [s.root_vkey], workers=1)
            assert report.ok, report.failure
            assert report.version == 2
            assert report.counts.additions == 4  # canary + 3 pages
            assert report.counts.removals == 1
        assert bundle.is_full
        assert report.counts.backed_additions == 4
        # Tampering with what the service served.
        flipped = replace_statement(bundle, 1, flip_text(bundle.statements[1], "add ", 5))
        assert_failed(
            verify_bundle(flipped, [s.root_vkey], workers=1),
            "statement.signature",
            "invalid",
            version=2,
        )
        assert bundle.audit_log is not None
        add = next(r for r in bundle.audit_log if r.actor == "alice")
        edited = edit_record(bundle, add.seq, actor="mallory")
        report = verify_bundle(
            dataclasses.replace(bundle, audit_log=tuple(edited)), [s.root_vkey], workers=1
        )
        assert_failed(report, "audit.chain", "does not match its chain hash", audit_seq=add.seq)


# --- mutation loops ---------------------------------------------------------------------


def _diff(a: Any, b: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths where two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        return [p for k in a for p in _diff(a[k], b[k], (*path, k))]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            p for i, (x, y) in enumerate(zip(a, b, strict=True)) for p in _diff(x, y, (*path, i))
        ]
    return [] if a == b else [path]


def _outcome(
    data: bytes, original: Any, log: MemoryLog | FullLog, allowed: set[tuple[Any, ...]], now: Any
) -> str:
    try:
        bundle = loads(data)
    except BundleError:
        return "detected"
    report = run(bundle, log, now=now)
    if not report.ok:
        return "detected"
    paths = _diff(original, json.loads(data))
    if not paths:
        return "irrelevant"  # the same JSON value, e.g. other whitespace
    # Verified but different: only fields no signature covers, and the
    # report must say so.
    assert all(p[:1] in allowed or p[:1] + p[2:] in allowed for p in paths), (paths, report.failure)
    assert {str(p[0]) for p in paths} <= {
        u.split("[")[0].split(" ")[0] for u in report.unauthenticated
    }
    return "unauthenticated"


def test_every_single_byte_change_of_a_small_bundle_is_detected_or_irrelevant() -> None:
    log = MemoryLog(ORIGIN, now=T0)
    log.publish([sha("example.org/a"), sha("example.org/b")], now=T0)
    log.publish([sha("example.org/c")], [sha("example.org/a")], now=T0 + timedelta(minutes=1))
    # Pretty-printed, so that there is JSON whitespace between tokens.
    data = pretty(dumps(hash_only(log)))
    original = json.loads(data)
    label = data.index(b'"list": "') + len(b'"list": "')
    label_bytes = range(label, label + len(LIST))
    undetected: dict[str, set[int]] = {"irrelevant": set(), "unauthenticated": set()}
    tried = 0
    for i in range(len(data)):
        for new in {data[i] ^ 0x01, ord(" ")} - {data[i]}:
            tried += 1
            mutated = data[:i] + bytes([new]) + data[i + 1 :]
            outcome = _outcome(mutated, original, log, {("list",)}, LATER)
            if outcome != "detected":
                undetected[outcome].add(i)
    # Only whitespace between tokens (a newline turned into a space) is
    # irrelevant, and only the list label is unauthenticated: every other
    # single-byte change (keys, kinds, notes, signatures, numbers) is caught.
    assert undetected["irrelevant"]
    assert all(data[i : i + 1] in (b"\n", b" ") for i in undetected["irrelevant"])
    assert all(not _inside_string(data, i) for i in undetected["irrelevant"])
    assert undetected["unauthenticated"] <= set(label_bytes)
    assert tried > 3 * len(data) // 2


def _inside_string(data: bytes, index: int) -> bool:
    """Whether ``data[index]`` lies inside a JSON string (escapes respected)."""
    inside = escaped = False
    for byte in data[:index]:
        if escaped:
            escaped = False
        elif byte == 0x5C and inside:
            escaped = True
        elif byte == 0x22:
            inside = not inside
    return inside


def test_sampled_byte_changes_of_a_full_bundle_are_detected_or_irrelevant() -> None:
    f = FullLog(2)
    eid = f.add_approved(page(1))
    f.publish()
    f.tick()
    f.expire(eid)
    f.publish()
    data = pretty(dumps(f.bundle()))
    original = json.loads(data)
    rnd = random.Random(7)
    allowed = {("entries", "url"), ("entries", "created_at")}
    outcomes: dict[str, int] = {}
    for i in rnd.sample(range(len(data)), min(len(data), 1500)):
        new = rnd.choice([data[i] ^ 0x01, data[i] ^ 0x20, ord("0"), ord(" ")])
        if new == data[i]:
            continue
        outcome = _outcome(data[:i] + bytes([new]) + data[i + 1 :], original, f, allowed, f.now)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert outcomes["detected"] > 0.9 * sum(outcomes.values())


def test_unauthenticated_fields_of_a_hash_only_bundle_are_reported() -> None:
    log = small_log()
    bundle = dataclasses.replace(hash_only(log), list_name="relabelled", approvals_required=2)
    report = run(bundle, log)
    assert report.ok
    assert report.list_name == "relabelled"
    assert report.approvals_required is None  # nothing authenticated it
    assert report.unauthenticated == ["list", "approvals_required"]


def test_entry_url_is_checked_only_up_to_canonicalisation() -> None:
    f = story()
    bundle = f.bundle()
    entry = next(e for e in bundle.entries or () if e.id == 2)
    assert entry.url is not None
    assert entry.expression is not None
    same = entry.url.replace("example.org", "EXAMPLE.org")  # canonicalises identically
    assert run(replace_entry(bundle, 2, url=same), f, now=f.now).ok
    assert isinstance(entry, BundleEntry)
    assert hashlib.sha256(entry.expression.encode()).digest() == entry.hash
