"""The ISP client's pure trusted state: every acceptance and every rejection.

Each rejection test asserts the typed error AND that the trusted state is
exactly as before (python-tuf's trusted metadata set tests, named after the
attack). Valid logs come from support.memory_log.MemoryLog, the same core the server
publishes with; tampered variants are crafted with the real signing keys
where the attack needs a valid signature.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.isp_helpers import (
    NOW,
    ORIGIN,
    T,
    craft_statement,
    fingerprint,
    h,
    hashes,
    later,
    new_log,
    other_key,
    sign_cp,
    synced,
    text_of,
    trusted_for,
)
from support.memory_log import MemoryLog

from blocklist.keyring import Keyring
from blocklist.merkle import EMPTY_ROOT
from blocklist.statedigest import StateDigest
from clients.errors import (
    BadSignature,
    ChainBroken,
    ClientError,
    DeltaInvalid,
    Equivocation,
    KeyringRejected,
    MalformedData,
    ProofMismatch,
    Rollback,
    Stale,
    StateMismatch,
    UnknownKey,
    WitnessQuorum,
    WrongOrigin,
)
from clients.isp.config import DEFAULT_MAX_AGE
from clients.isp.snapshot import SnapshotHashes
from clients.isp.trusted import CheckpointOutcome, TrustedState
from signer.keyring import sign_keyring
from signer.note import parse_note, sign_note


def assert_rejected(
    ts: TrustedState, error: type[ClientError], action: Callable[[], object]
) -> ClientError:
    before = fingerprint(ts)
    with pytest.raises(error) as info:
        action()
    assert fingerprint(ts) == before, "a rejected update changed the trusted state"
    return info.value


def flip_signature(note: str, line: int = 0) -> str:
    """Flip one bit in the last byte of a signature line's base64 payload."""
    parsed = parse_note(note)
    sig = parsed.signatures[line]
    raw = bytearray(sig.signature)
    raw[-1] ^= 0x01
    tampered = type(sig)(sig.name, sig.key_id, bytes(raw))
    lines = [s.line for s in parsed.signatures]
    lines[line] = tampered.line
    return parsed.text + "\n" + "".join(lines)


@pytest.fixture
def log() -> MemoryLog:
    log = new_log()
    log.publish(hashes(1, 2, 3), now=NOW)
    log.publish(hashes(4), hashes(1), now=NOW)
    return log


# --- acceptance ------------------------------------------------------------------


def test_first_sync_from_snapshot(log: MemoryLog) -> None:
    ts = synced(log)
    assert ts.version == 2
    assert set(ts.hashes()) == set(hashes(2, 3, 4))
    assert ts.count == 3
    assert ts.digest == StateDigest.from_hashes(hashes(2, 3, 4)).digest()
    assert ts.contains(h(2))
    assert not ts.contains(h(1))
    assert ts.origin == ORIGIN
    assert ts.changes().replace is not None


def test_empty_log_first_sync() -> None:
    log = new_log()
    ts = trusted_for(log)
    assert ts.update_checkpoint(log.checkpoint(NOW), T) is CheckpointOutcome.CURRENT
    assert ts.initialised
    assert ts.version == 0
    assert ts.checkpoint is not None
    assert ts.checkpoint.root == EMPTY_ROOT


def test_incremental_statements_match_naive_set(log: MemoryLog) -> None:
    ts = synced(log)
    log.publish(hashes(5, 6), hashes(2), now=NOW)
    log.publish(hashes(2), hashes(5), now=NOW)
    assert ts.update_checkpoint(log.checkpoint(NOW), T) is CheckpointOutcome.NEWER
    assert ts.apply_statements(log.statements[2:]) == 2
    assert ts.version == 4
    assert set(ts.hashes()) == log.members
    assert ts.digest == StateDigest.from_hashes(log.members).digest()
    # Not persisted yet: the overlay is relative to the snapshot it replaced.
    changes = ts.changes()
    assert changes.replace is not None
    assert (set(changes.replace) - set(changes.removed)) | set(changes.added) == log.members
    assert set(changes.added) == {h(6)}
    assert changes.removed == ()


def test_same_checkpoint_newer_timestamp_is_remembered(log: MemoryLog) -> None:
    ts = synced(log)
    assert ts.checkpoint_time == int(T)
    result = ts.update_checkpoint(log.checkpoint(later(60)), T + 60)
    assert result is CheckpointOutcome.CURRENT
    assert ts.checkpoint_time == int(T) + 60
    # An older re-signature does not move freshness backwards.
    ts.update_checkpoint(log.checkpoint(later(30)), T + 60)
    assert ts.checkpoint_time == int(T) + 60


def test_key_rotation_accepted(log: MemoryLog) -> None:
    ts = synced(log)
    log.rotate_online_key(NOW)
    log.publish(hashes(7), now=NOW)
    assert ts.update_keyring(log.keyrings[1], T) is True
    assert ts.keyring is not None
    assert ts.keyring.serial == 2
    assert ts.update_checkpoint(log.checkpoint(NOW), T) is CheckpointOutcome.NEWER
    ts.apply_statements(log.statements[2:])
    assert ts.version == 3
    assert ts.contains(h(7))


def test_statement_by_rotated_out_key_beyond_its_range_rejected(log: MemoryLog) -> None:
    ts = synced(log)
    old_key = log.online_key
    log.rotate_online_key(NOW)
    ts.update_keyring(log.keyrings[1], T)
    # A compromised old key signs version 3 (its range ended at 2).
    forged = craft_statement(log, adds=hashes(66), key=old_key)
    ts.update_checkpoint(sign_cp(ORIGIN, 3, bytes(32), log.online_key), T)
    assert_rejected(ts, UnknownKey, lambda: ts.apply_statements([forged]))
    # ... and cannot sign checkpoints any more either (its range is closed).
    cp = sign_cp(ORIGIN, 3, bytes(32), old_key)
    assert_rejected(ts, UnknownKey, lambda: ts.update_checkpoint(cp, T))


# --- signatures, keys, origin ----------------------------------------------------


def test_checkpoint_bad_signature(log: MemoryLog) -> None:
    ts = synced(log)
    log.publish(hashes(9), now=NOW)
    cp = log.checkpoint(NOW)
    assert_rejected(ts, BadSignature, lambda: ts.update_checkpoint(flip_signature(cp, 0), T))
    assert_rejected(ts, BadSignature, lambda: ts.update_checkpoint(flip_signature(cp, 1), T))


def test_statement_bad_signature(log: MemoryLog) -> None:
    ts = synced(log)
    log.publish(hashes(9), now=NOW)
    ts.update_checkpoint(log.checkpoint(NOW), T)
    bad = flip_signature(log.statements[2])
    assert_rejected(ts, BadSignature, lambda: ts.apply_statements([bad]))


def test_checkpoint_unknown_key(log: MemoryLog) -> None:
    ts = synced(log)
    cp = sign_cp(ORIGIN, 3, bytes(32), other_key())
    assert_rejected(ts, UnknownKey, lambda: ts.update_checkpoint(cp, T))


def test_statement_unknown_key(log: MemoryLog) -> None:
    ts = synced(log)
    ts.update_checkpoint(sign_cp(ORIGIN, 3, bytes(32), log.online_key), T)
    forged = craft_statement(log, adds=hashes(8), key=other_key())
    assert_rejected(ts, UnknownKey, lambda: ts.apply_statements([forged]))


def test_checkpoint_of_another_origin_mix_and_match(log: MemoryLog) -> None:
    ts = synced(log)
    # Validly signed by our own online key, but for another list.
    cp = sign_cp("cleanfeed.invalid/other", 3, bytes(32), log.online_key)
    assert_rejected(ts, WrongOrigin, lambda: ts.update_checkpoint(cp, T))


def test_statement_of_another_origin_mix_and_match(log: MemoryLog) -> None:
    ts = synced(log)
    ts.update_checkpoint(sign_cp(ORIGIN, 3, bytes(32), log.online_key), T)
    forged = craft_statement(log, adds=hashes(8), origin="cleanfeed.invalid/other")
    assert_rejected(ts, WrongOrigin, lambda: ts.apply_statements([forged]))


def test_keyring_of_another_list_rejected() -> None:
    other = new_log("cleanfeed.invalid/other")
    log = new_log()
    ts = TrustedState([log.root_vkey], origin=ORIGIN)
    assert_rejected(ts, ClientError, lambda: ts.update_keyring(other.keyrings[0], T))


# --- rollback, freeze, equivocation ------------------------------------------------


def test_checkpoint_rollback_smaller_tree(log: MemoryLog) -> None:
    old_cp = log.checkpoint(NOW)
    log.publish(hashes(9), now=NOW)
    ts = synced(log)
    # A fresh signature on the old, smaller tree: still a rollback.
    old_size = int(text_of(old_cp).split("\n")[1])
    replay = sign_cp(ORIGIN, old_size, log.root(old_size), log.online_key, later(60))
    assert_rejected(ts, Rollback, lambda: ts.update_checkpoint(replay, T + 60))


def test_rollback_rejected_even_when_held_checkpoint_is_expired(log: MemoryLog) -> None:
    log.publish(hashes(9), now=NOW)
    ts = synced(log)
    much_later = T + 10 * DEFAULT_MAX_AGE
    replay = sign_cp(ORIGIN, 2, log.root(2), log.online_key, later(10 * DEFAULT_MAX_AGE))
    assert_rejected(ts, Rollback, lambda: ts.update_checkpoint(replay, much_later))


def test_stale_checkpoint_freeze(log: MemoryLog) -> None:
    ts = synced(log)
    cp = log.checkpoint(NOW)
    # The same (validly signed) checkpoint served forever.
    assert_rejected(ts, Stale, lambda: ts.update_checkpoint(cp, T + DEFAULT_MAX_AGE + 1))
    ts.update_checkpoint(cp, T + DEFAULT_MAX_AGE)  # exactly at the limit: fresh
    assert_rejected(ts, Stale, lambda: ts.check_fresh(T + DEFAULT_MAX_AGE + 1))


def test_future_dated_checkpoint(log: MemoryLog) -> None:
    ts = synced(log)
    assert_rejected(ts, Stale, lambda: ts.update_checkpoint(log.checkpoint(later(301)), T))
    assert ts.update_checkpoint(log.checkpoint(later(299)), T) is CheckpointOutcome.CURRENT


def test_checkpoint_without_timestamp_is_stale(log: MemoryLog) -> None:
    ts = synced(log)
    text = text_of(log.checkpoint(NOW))
    plain = sign_note(text, [log.online_key])
    assert_rejected(ts, Stale, lambda: ts.update_checkpoint(plain, T))


def test_equivocation_same_size_other_root_keeps_both_notes(log: MemoryLog) -> None:
    ts = synced(log)
    held = ts.checkpoint_note
    fork = sign_cp(ORIGIN, 2, hashlib.sha256(b"fork").digest(), log.online_key)
    err = assert_rejected(ts, Equivocation, lambda: ts.update_checkpoint(fork, T))
    assert isinstance(err, Equivocation)
    assert err.kind == "checkpoint"
    assert err.held_note == held
    assert err.new_note == fork


def test_checkpoint_root_inconsistent_with_signed_statements(log: MemoryLog) -> None:
    ts = synced(log)
    log.publish(hashes(9), now=NOW)
    wrong = sign_cp(ORIGIN, 3, hashlib.sha256(b"fork").digest(), log.online_key)
    ts.update_checkpoint(wrong, T)
    err = assert_rejected(ts, Equivocation, lambda: ts.apply_statements(log.statements[2:]))
    assert isinstance(err, Equivocation)
    assert err.new_note == wrong


# --- the statement chain -----------------------------------------------------------


@pytest.fixture
def ahead(log: MemoryLog) -> tuple[TrustedState, MemoryLog]:
    ts = synced(log)
    log.publish(hashes(10), now=NOW)
    log.publish(hashes(11), now=NOW)
    log.publish(hashes(12), now=NOW)
    ts.update_checkpoint(log.checkpoint(NOW), T)
    return ts, log


@pytest.mark.parametrize(
    ("name", "pick"),
    [
        ("gap", lambda s: [s[0], s[2]]),
        ("duplicate", lambda s: [s[0], s[0], s[1], s[2]]),
        ("reorder", lambda s: [s[1], s[0], s[2]]),
        ("missing_tail", lambda s: [s[0], s[1]]),
        ("none", lambda s: []),
        ("extra", lambda s: [s[0], s[1], s[2], s[2]]),
    ],
)
def test_statement_chain_attacks(
    ahead: tuple[TrustedState, MemoryLog], name: str, pick: Callable[[list[str]], list[str]]
) -> None:
    ts, log = ahead
    notes = pick(log.statements[2:])
    assert_rejected(ts, ChainBroken, lambda: ts.apply_statements(notes))


def test_statement_with_wrong_previous(log: MemoryLog) -> None:
    ts = synced(log)
    ts.update_checkpoint(sign_cp(ORIGIN, 3, bytes(32), log.online_key), T)
    forged = craft_statement(log, adds=hashes(8), previous=hashlib.sha256(b"x").digest())
    # validly signed by the log but not extending the held statement: a split
    # view, kept as equivocation evidence rather than a mere broken chain
    assert_rejected(ts, Equivocation, lambda: ts.apply_statements([forged]))


def test_delta_adding_a_present_hash(log: MemoryLog) -> None:
    ts = synced(log)
    ts.update_checkpoint(sign_cp(ORIGIN, 3, bytes(32), log.online_key), T)
    forged = craft_statement(log, adds=[h(2)])
    assert_rejected(ts, DeltaInvalid, lambda: ts.apply_statements([forged]))


def test_delta_removing_an_absent_hash(log: MemoryLog) -> None:
    ts = synced(log)
    ts.update_checkpoint(sign_cp(ORIGIN, 3, bytes(32), log.online_key), T)
    forged = craft_statement(log, removes=[h(1)])
    assert_rejected(ts, DeltaInvalid, lambda: ts.apply_statements([forged]))


def test_state_digest_mismatch(log: MemoryLog) -> None:
    ts = synced(log)
    ts.update_checkpoint(sign_cp(ORIGIN, 3, bytes(32), log.online_key), T)
    forged = craft_statement(log, adds=[h(8)], state=hashlib.sha256(b"wrong").digest())
    assert_rejected(ts, StateMismatch, lambda: ts.apply_statements([forged]))


def test_count_mismatch(log: MemoryLog) -> None:
    ts = synced(log)
    ts.update_checkpoint(sign_cp(ORIGIN, 3, bytes(32), log.online_key), T)
    forged = craft_statement(log, adds=[h(8)], count=99)
    assert_rejected(ts, StateMismatch, lambda: ts.apply_statements([forged]))


def test_statement_without_newer_checkpoint_is_refused(log: MemoryLog) -> None:
    ts = synced(log)
    assert_rejected(ts, ClientError, lambda: ts.apply_statements([]))


def test_lazy_iterator_failure_changes_nothing(ahead: tuple[TrustedState, MemoryLog]) -> None:
    ts, log = ahead

    class Dropped(ClientError):
        reason = "test"

    def notes() -> object:
        yield log.statements[2]
        raise Dropped("connection lost after one page")

    assert_rejected(ts, Dropped, lambda: ts.apply_statements(notes()))  # type: ignore[arg-type]


# --- snapshot path -----------------------------------------------------------------


def snapshot_args(log: MemoryLog) -> dict[str, object]:
    n = log.version
    return {
        "checkpoint_note": log.checkpoint(NOW),
        "statement_note": log.statements[n - 1],
        "inclusion_proof": log.inclusion_proof(n, n),
        "range_hashes": log.range_hashes(n),
        "snapshot": b"".join(log.snapshot(n)),
    }


def test_snapshot_digest_mismatch(log: MemoryLog) -> None:
    ts = trusted_for(log)
    args = snapshot_args(log)
    members = log.snapshot()
    members[0] = h("intruder")
    args["snapshot"] = b"".join(sorted(members))
    assert_rejected(ts, StateMismatch, lambda: ts.apply_snapshot(**args, now=T))  # type: ignore[arg-type]


def test_snapshot_missing_an_entry(log: MemoryLog) -> None:
    ts = trusted_for(log)
    args = snapshot_args(log)
    args["snapshot"] = b"".join(log.snapshot()[1:])
    assert_rejected(ts, StateMismatch, lambda: ts.apply_snapshot(**args, now=T))  # type: ignore[arg-type]


def test_snapshot_unsorted(log: MemoryLog) -> None:
    ts = trusted_for(log)
    args = snapshot_args(log)
    args["snapshot"] = b"".join(reversed(log.snapshot()))
    assert_rejected(ts, MalformedData, lambda: ts.apply_snapshot(**args, now=T))  # type: ignore[arg-type]


def test_snapshot_compact_range_mismatch(log: MemoryLog) -> None:
    ts = trusted_for(log)
    args = snapshot_args(log)
    rng = list(log.range_hashes())
    rng[0] = bytes(a ^ 1 for a in rng[0])
    args["range_hashes"] = rng
    assert_rejected(ts, ProofMismatch, lambda: ts.apply_snapshot(**args, now=T))  # type: ignore[arg-type]


def test_snapshot_inclusion_proof_mismatch(log: MemoryLog) -> None:
    ts = trusted_for(log)
    args = snapshot_args(log)
    proof = list(log.inclusion_proof(2, 2))
    proof[0] = bytes(32)
    args["inclusion_proof"] = proof
    assert_rejected(ts, ProofMismatch, lambda: ts.apply_snapshot(**args, now=T))  # type: ignore[arg-type]


def test_snapshot_of_an_older_statement(log: MemoryLog) -> None:
    ts = trusted_for(log)
    args = snapshot_args(log)
    args["statement_note"] = log.statements[0]
    assert_rejected(ts, ProofMismatch, lambda: ts.apply_snapshot(**args, now=T))  # type: ignore[arg-type]


def test_snapshot_path_refused_without_reason(log: MemoryLog) -> None:
    ts = synced(log)
    with pytest.raises(ValueError, match="first sync or local corruption"):
        ts.apply_snapshot(**snapshot_args(log), now=T)  # type: ignore[arg-type]


def test_resync_after_corruption_still_refuses_rollback(log: MemoryLog) -> None:
    old = snapshot_args(log)
    log.publish(hashes(20), now=NOW)
    ts = synced(log)
    ts.mark_corrupt()
    assert_rejected(ts, Rollback, lambda: ts.apply_snapshot(**old, now=T))  # type: ignore[arg-type]


def test_resync_after_corruption_needs_consistency(log: MemoryLog) -> None:
    ts = synced(log)
    log.publish(hashes(20), now=NOW)
    log.publish(hashes(21), now=NOW)
    ts.mark_corrupt()
    args = snapshot_args(log)
    bad = [bytes(32)] * len(log.consistency_proof(2, 4))
    assert_rejected(
        ts,
        ProofMismatch,
        lambda: ts.apply_snapshot(**args, now=T, consistency_proof=bad),  # type: ignore[arg-type]
    )
    ts.apply_snapshot(**args, now=T, consistency_proof=log.consistency_proof(2, 4))  # type: ignore[arg-type]
    assert ts.version == 4
    assert set(ts.hashes()) == log.members


# --- keyrings ----------------------------------------------------------------------


def test_keyring_skipped_serial(log: MemoryLog) -> None:
    ts = synced(log)
    log.rotate_online_key(NOW)
    log.rotate_online_key(NOW)
    err = assert_rejected(ts, KeyringRejected, lambda: ts.update_keyring(log.keyrings[2], T))
    assert isinstance(err, KeyringRejected)
    assert err.detail == "serial_gap"


def test_keyring_rollback(log: MemoryLog) -> None:
    log.rotate_online_key(NOW)
    ts = synced(log)
    assert_rejected(ts, Rollback, lambda: ts.update_keyring(log.keyrings[0], T))


def test_keyring_same_serial_other_content_is_equivocation(log: MemoryLog) -> None:
    ts = synced(log)
    held = log.keyrings[0]
    k = Keyring.parse(text_of(held))
    other = Keyring.create(
        origin=k.origin,
        serial=k.serial,
        expires=k.expires.replace(year=k.expires.year + 1),
        threshold=k.threshold,
        roots=k.roots,
        keys=k.keys,
    )
    note = sign_keyring(other, [log.root_key])
    err = assert_rejected(ts, Equivocation, lambda: ts.update_keyring(note, T))
    assert isinstance(err, Equivocation)
    assert err.kind == "keyring"
    assert err.held_note == held
    assert err.new_note == note


def test_keyring_expired(log: MemoryLog) -> None:
    ts = TrustedState([log.root_vkey])
    expired_at = T + 400 * 86400
    assert_rejected(ts, Stale, lambda: ts.update_keyring(log.keyrings[0], expired_at))


def test_expired_intermediate_keyring_can_be_walked() -> None:
    log = new_log()
    log.rotate_online_key(later(300 * 86400))
    when = T + 380 * 86400  # serial 1 expired, serial 2 still valid
    ts = TrustedState([log.root_vkey])
    ts.update_keyring(log.keyrings[0], when, final=False)
    ts.update_keyring(log.keyrings[1], when)
    assert ts.keyring is not None
    assert ts.keyring.serial == 2


def test_keyring_signed_by_an_unpinned_root(log: MemoryLog) -> None:
    impostor = MemoryLog(ORIGIN, now=NOW)
    ts = TrustedState([log.root_vkey])
    assert_rejected(ts, KeyringRejected, lambda: ts.update_keyring(impostor.keyrings[0], T))


# --- witnesses ---------------------------------------------------------------------


def test_witness_quorum(log: MemoryLog) -> None:
    witness = other_key("witness.example")

    def witnessed(cp: str, when: float) -> str:
        parsed = parse_note(cp)
        return sign_note(
            parsed.text, [], cosigners=[witness], timestamp=int(when), existing=parsed.signatures
        )

    ts = trusted_for(log, witnesses=[witness.verifier.cosigner.vkey], witness_quorum=1)
    args = snapshot_args(log)
    args["checkpoint_note"] = witnessed(log.checkpoint(NOW), T)
    ts.apply_snapshot(**args, now=T)  # type: ignore[arg-type]
    cp = log.checkpoint(later(10))
    assert_rejected(ts, WitnessQuorum, lambda: ts.update_checkpoint(cp, T + 10))
    # A cosignature by another key with the witness's name does not count.
    impostor = other_key("witness.example")
    parsed = parse_note(cp)
    fake = sign_note(
        parsed.text, [], cosigners=[impostor], timestamp=int(T) + 10, existing=parsed.signatures
    )
    assert_rejected(ts, WitnessQuorum, lambda: ts.update_checkpoint(fake, T + 10))
    assert ts.update_checkpoint(witnessed(cp, T + 10), T + 10) is CheckpointOutcome.CURRENT
    assert ts.checkpoint_time == int(T) + 10


def test_witness_quorum_applies_to_first_sync(log: MemoryLog) -> None:
    witness = other_key("witness.example")
    with pytest.raises(WitnessQuorum):
        synced(log, witnesses=[witness.verifier.cosigner.vkey], witness_quorum=1)


# --- laws ----------------------------------------------------------------------------


def test_sorted_hashes_membership_matches_a_set() -> None:
    members = sorted(hashes(*range(50)))
    arr = SnapshotHashes.validate(b"".join(members))
    assert len(arr) == 50
    assert list(arr) == members
    for i in range(60):
        assert (h(i) in arr) == (h(i) in set(members))


batches = st.lists(
    st.tuples(st.sets(st.integers(0, 30), max_size=6), st.sets(st.integers(0, 30), max_size=6)),
    min_size=1,
    max_size=6,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches)
def test_incremental_apply_equals_naive_replay(steps: list[tuple[set[int], set[int]]]) -> None:
    """Law: applying signed deltas gives the set (and digest) a naive replay gives."""
    log = new_log()
    log.publish(hashes(100), now=NOW)
    ts = synced(log)
    naive = {h(100)}
    for add_ids, remove_ids in steps:
        adds = [h(i) for i in add_ids if h(i) not in naive]
        removes = [h(i) for i in remove_ids - add_ids if h(i) in naive]
        if not adds and not removes:
            continue
        log.publish(adds, removes, now=NOW)
        naive = (naive - set(removes)) | set(adds)
    if log.version > 1:
        ts.update_checkpoint(log.checkpoint(NOW), T)
        ts.apply_statements(log.statements[1:])
    assert set(ts.hashes()) == naive
    assert ts.digest == StateDigest.from_hashes(naive).digest()
    assert ts.count == len(naive)


def test_parallel_snapshot_digest_equals_the_serial_one() -> None:
    """Law: LtHash16 vectors of disjoint chunks sum to the vector of the whole."""
    from clients.isp.snapshot import PARALLEL_DIGEST_MIN, snapshot_digest

    members = sorted(hashlib.sha256(b"%d" % i).digest() for i in range(PARALLEL_DIGEST_MIN + 7))
    arr = SnapshotHashes(b"".join(members))
    parallel = snapshot_digest(arr, workers=2)
    assert parallel == snapshot_digest(arr, workers=1)
    assert parallel.digest() == StateDigest.from_hashes(members).digest()


# --- the pinned roots and origin are part of the state (issue 13 item 4) ------------


def test_a_configuration_contradicting_the_state_is_refused_not_repaired(log: MemoryLog) -> None:
    from clients.errors import ConfigError, LocalCorruption, RootKeyMismatch

    record = synced(log).record()
    assert TrustedState([log.root_vkey], origin=ORIGIN, record=record).version == log.version
    stranger = other_key(f"{ORIGIN}/root").vkey
    with pytest.raises(RootKeyMismatch, match="new, empty --state-dir"):
        TrustedState([stranger], record=record)
    with pytest.raises(RootKeyMismatch):  # one unknown key among known ones is refused too
        TrustedState([log.root_vkey, stranger], record=record)
    # Another origin was LocalCorruption, which the syncer "repairs" by
    # starting over from a snapshot: a configuration error must not be.
    with pytest.raises(ConfigError, match="new, empty --state-dir") as e:
        TrustedState([log.root_vkey], origin="cleanfeed.invalid/other", record=record)
    assert not isinstance(e.value, LocalCorruption)
