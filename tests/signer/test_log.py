"""The pure publishing core (signer.log) and MemoryLog.

Every log built here is checked by the independent verifier in
log_verifier.py: signatures under the keyring's ranges, the ``previous``
chain, set semantics, state digests from scratch, and the RFC 6962 root.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.log_verifier import (
    naive_lthash,
    naive_mth,
    note_text,
    verify_checkpoint_note,
    verify_log,
)
from support.memory_log import MemoryLog

from blocklist.encoding import b64encode
from blocklist.errors import DeltaError
from blocklist.merkle import MemoryHashStore, stored_hash_count, verify_consistency
from blocklist.statedigest import StateDigest
from blocklist.statement import MAX_CHANGES_PER_VERSION, Statement
from signer.errors import BadSignature, UnknownKey
from signer.keyring import verifiers_for_statement
from signer.keys import SecretKey
from signer.log import LogTip, cut_versions, empty_checkpoint
from signer.note import Verifier, verify_cosignature, verify_note

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
ORIGIN = "example.org/cleanfeed/test"


def h(i: int) -> bytes:
    return hashlib.sha256(f"entry-{i}".encode()).digest()


def check(log: MemoryLog, *, check_digests: bool = True) -> None:
    verified = verify_log(
        log.keyrings,
        log.statements,
        root_vkey=log.root_vkey,
        origin=log.origin,
        now=NOW,
        check_digests=check_digests,
    )
    assert verified.members == log.members
    assert verified.root == log.root()
    checkpoint, timestamp = verify_checkpoint_note(log.checkpoint(NOW), verified.keyring)
    assert (checkpoint.origin, checkpoint.size, checkpoint.root) == (
        log.origin,
        log.version,
        verified.root,
    )
    assert timestamp == int(NOW.timestamp())


def test_memory_log_statements_verify_and_chain() -> None:
    log = MemoryLog(ORIGIN, now=NOW)
    assert log.publish([h(1), h(2), h(3)], now=NOW) == [1]
    assert log.publish([h(4)], [h(2)], now=NOW + timedelta(minutes=1)) == [2]
    assert log.publish([], [h(1), h(3), h(4)], now=NOW + timedelta(minutes=2)) == [3]
    assert log.publish([h(1)], now=NOW + timedelta(minutes=3)) == [4]
    check(log)
    assert log.members == {h(1)}
    last = Statement.parse(log.statement_text(4))
    assert last.adds == (h(1),)
    assert last.count == 1
    assert last.time == NOW + timedelta(minutes=3)


def test_statement_fields_are_what_was_asked() -> None:
    log = MemoryLog(ORIGIN, now=NOW)
    log.set_audit_head(b"\x07" * 32)
    log.publish([h(2), h(1)], now=NOW.replace(microsecond=123456))
    statement = Statement.parse(log.statement_text(1))
    assert statement.adds == tuple(sorted([h(1), h(2)]))
    assert statement.audit == b"\x07" * 32
    assert statement.keyring == 1
    assert statement.previous == bytes(32)
    assert statement.time == NOW  # truncated to whole seconds
    assert statement.state == naive_lthash({h(1), h(2)})


def test_nothing_to_publish_makes_no_version() -> None:
    log = MemoryLog(ORIGIN, now=NOW)
    assert log.publish([], [], now=NOW) == []
    assert log.version == 0
    assert log.statements == []


def test_size_zero_checkpoint_has_the_empty_root() -> None:
    key = SecretKey.generate(ORIGIN)
    note = empty_checkpoint(ORIGIN, key, NOW)
    verified = verify_note(note, [key.verifier])
    assert verified.text == f"{ORIGIN}\n0\n{b64encode(hashlib.sha256(b'').digest())}\n"
    assert verify_cosignature(note, key.verifier) == int(NOW.timestamp())
    log = MemoryLog(ORIGIN, now=NOW)
    assert log.root() == hashlib.sha256(b"").digest() == naive_mth([])


def test_checkpoint_has_plain_and_timestamped_lines_of_the_online_key() -> None:
    log = MemoryLog(ORIGIN, now=NOW)
    log.publish([h(1)], now=NOW)
    later = NOW + timedelta(minutes=10)
    note = log.checkpoint(later)
    lines = note.split("\n\n", 1)[1].splitlines()
    assert len(lines) == 2
    assert verify_cosignature(note, log.online_key.verifier) == int(later.timestamp())
    assert verify_note(note, [log.online_key.verifier]).verifiers == (log.online_key.verifier,)
    # Signed by the online key only: the root key does not verify it.
    with pytest.raises(UnknownKey):
        verify_note(note, [log.root_key.verifier])


def test_split_at_ten_thousand_changes() -> None:
    log = MemoryLog(ORIGIN, now=NOW)
    first = [h(i) for i in range(50)]
    log.publish(first, now=NOW)
    adds = [h(i) for i in range(50, 50 + MAX_CHANGES_PER_VERSION + 7)]
    removes = first[:10]
    assert log.publish(adds, removes, now=NOW) == [2, 3]
    s2 = Statement.parse(log.statement_text(2))
    s3 = Statement.parse(log.statement_text(3))
    assert len(s2.adds) + len(s2.removes) == MAX_CHANGES_PER_VERSION
    assert len(s3.adds) + len(s3.removes) == 17
    # Additions first, sorted by raw bytes, then removals.
    assert list(s2.adds) + list(s3.adds) == sorted(adds)
    assert s2.removes == ()
    assert s3.removes == tuple(sorted(removes))
    check(log, check_digests=False)
    assert s3.state == naive_lthash(log.members)


@pytest.mark.parametrize(
    ("adds", "removes"),
    [
        ([1], []),  # adds a present hash
        ([], [9]),  # removes an absent hash
        ([5, 5], []),  # adds twice
        ([5], [5]),  # adds and removes the same hash
    ],
)
def test_invalid_delta_is_refused_and_changes_nothing(adds: list[int], removes: list[int]) -> None:
    log = MemoryLog(ORIGIN, now=NOW)
    log.publish([h(1), h(2)], now=NOW)
    before = (list(log.statements), set(log.members), log.tip, log.root())
    with pytest.raises(DeltaError):
        log.publish([h(i) for i in adds], [h(i) for i in removes], now=NOW)
    assert (list(log.statements), set(log.members), log.tip, log.root()) == before


def test_cut_versions_tree_hashes_match_a_full_store() -> None:
    # Several versions cut at once: later leaves need subtree hashes of
    # earlier ones that the base reader does not hold yet.
    key = SecretKey.generate(ORIGIN)
    store = MemoryHashStore()
    tip = LogTip.empty(ORIGIN, keyring_serial=1)
    members: set[bytes] = set()
    for rnd in range(3):
        adds = [h(1000 * rnd + i) for i in range(7)]
        result = cut_versions(tip, store, adds, [], members, key, NOW, limit=1)
        assert [s.version for s in result.versions] == list(range(tip.version + 1, tip.version + 8))
        assert result.first_hash_index == stored_hash_count(tip.version)
        for signed in result.versions:
            store.append_leaf_hash(signed.leaf_hash)
        # What the core said to store is exactly what a full store holds.
        assert store.read_hashes(range(result.first_hash_index, stored_hash_count(store.size))) == (
            list(result.new_hashes)
        )
        assert list(result.new_hashes) == [x for s in result.versions for x in s.tree_hashes]
        assert result.root == store.root()
        assert result.versions[-1].state_vector == result.tip.state.to_bytes()
        members.update(adds)
        tip = result.tip
    texts = [note_text(s.note).encode() for s in result.versions]
    assert len(texts) == 7


def test_cut_versions_never_mutates_the_tip_state() -> None:
    key = SecretKey.generate(ORIGIN)
    tip = LogTip.empty(ORIGIN, keyring_serial=1)
    before = tip.state.to_bytes()
    cut_versions(tip, MemoryHashStore(), [h(1)], [], set(), key, NOW)
    assert tip.state.to_bytes() == before == StateDigest().to_bytes()


def test_statement_signed_by_another_key_does_not_verify() -> None:
    log = MemoryLog(ORIGIN, now=NOW)
    log.publish([h(1)], now=NOW)
    stranger = SecretKey.generate(ORIGIN)
    with pytest.raises(UnknownKey):
        verify_note(log.statements[0], [stranger.verifier])
    tampered = log.statements[0].replace("count 1", "count 2")
    with pytest.raises(BadSignature):
        verify_note(tampered, [log.online_key.verifier])


def test_rotation_keeps_old_statements_valid_and_moves_checkpoints() -> None:
    log = MemoryLog(ORIGIN, now=NOW)
    old = log.online_key
    log.publish([h(1)], now=NOW)
    log.publish([h(2)], now=NOW)
    new = log.rotate_online_key(NOW)
    log.publish([h(3)], now=NOW)
    check(log)
    assert verifiers_for_statement(log.keyring, 2) == [Verifier.from_vkey(old.vkey)]
    assert verifiers_for_statement(log.keyring, 3) == [Verifier.from_vkey(new.vkey)]
    assert Statement.parse(log.statement_text(3)).keyring == 2
    with pytest.raises(UnknownKey):
        verify_note(log.checkpoint(NOW), [old.verifier])


def test_rotation_before_any_version_drops_the_unused_key() -> None:
    log = MemoryLog(ORIGIN, now=NOW)
    old = log.online_key
    log.rotate_online_key(NOW)
    assert [r.vkey for r in log.keyring.keys] == [log.online_key.vkey]
    assert old.vkey not in log.keyring.keys_for_version(1)
    log.publish([h(1)], now=NOW)
    check(log)


def test_proofs_of_memory_log_verify() -> None:
    log = MemoryLog(ORIGIN, now=NOW)
    for i in range(13):
        log.publish([h(i)], now=NOW)
    texts = [log.statement_text(v).encode() for v in range(1, 14)]
    for m in range(0, 14):
        verify_consistency(m, 13, naive_mth(texts[:m]), naive_mth(texts), log.consistency_proof(m))
    assert log.snapshot(5) == sorted(h(i) for i in range(5))
    assert log.snapshot() == sorted(h(i) for i in range(13))


changes = st.lists(
    st.tuples(st.lists(st.integers(0, 40), max_size=6), st.lists(st.integers(0, 40), max_size=6)),
    min_size=1,
    max_size=8,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes)
def test_incremental_state_equals_state_from_scratch(
    steps: list[tuple[list[int], list[int]]],
) -> None:
    # Law: whatever the sequence of valid deltas, each statement's state is
    # the digest of the set replayed from scratch, and the count its size.
    log = MemoryLog(ORIGIN, now=NOW)
    present: set[int] = set()
    for add_ids, remove_ids in steps:
        adds = sorted({i for i in add_ids if i not in present})
        removes = sorted({i for i in remove_ids if i in present} - set(adds))
        versions = log.publish([h(i) for i in adds], [h(i) for i in removes], now=NOW, limit=3)
        assert len(versions) == -(-(len(adds) + len(removes)) // 3)
        present = (present - set(removes)) | set(adds)
        assert log.members == {h(i) for i in present}
    check(log)
