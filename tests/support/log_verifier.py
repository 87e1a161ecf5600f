"""An independent verifier of a published log, written for the tests.

It re-derives everything the signer claims from first principles: the
Merkle root with the recursive definition of RFC 6962 section 2.1 (not the
stored-hash code under test), the LtHash16 state digest of each version
from scratch (not the incremental vector), the ``previous`` chain, the set
semantics of each delta, and every signature under the key range the
keyring gives that version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from blocklist.checkpoint import Checkpoint
from blocklist.keyring import Keyring
from blocklist.statement import Statement
from signer.keyring import verifiers_for_checkpoint, verifiers_for_statement, verify_keyring_chain
from signer.note import verify_cosignature, verify_note


def naive_mth(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 2.1 MTH, recursively, over the leaves' data."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + naive_mth(leaves[:k]) + naive_mth(leaves[k:])).digest()


def naive_lthash(hashes: Sequence[bytes] | set[bytes]) -> bytes:
    """LtHash16 of a set, from scratch: sum of SHAKE-128 expansions mod 2^16, SHA-256."""
    lanes = np.zeros(1024, dtype=np.int64)
    for h in hashes:
        lanes += np.frombuffer(hashlib.shake_128(h).digest(2048), dtype="<u2").astype(np.int64)
    return hashlib.sha256((lanes % 65536).astype("<u2").tobytes()).digest()


def note_text(note: str) -> str:
    """The text of a signed note (everything up to the blank line)."""
    return note[: note.index("\n\n") + 1]


@dataclass
class VerifiedLog:
    """What a successful verification established."""

    keyring: Keyring
    statements: list[Statement]
    texts: list[str]
    members: set[bytes]
    root: bytes


def verify_log(
    keyring_notes: Sequence[str],
    statement_notes: Sequence[str],
    *,
    root_vkey: str,
    origin: str,
    now: datetime,
    check_digests: bool = True,
) -> VerifiedLog:
    """Verify a whole log; raise AssertionError (or a verification error) on any fault."""
    keyring = verify_keyring_chain(list(keyring_notes), [root_vkey], now, origin=origin)
    members: set[bytes] = set()
    previous = bytes(32)
    statements: list[Statement] = []
    texts: list[str] = []
    for number, note in enumerate(statement_notes, start=1):
        verified = verify_note(note, verifiers_for_statement(keyring, number))
        statement = Statement.parse(verified.text)
        assert statement.origin == origin
        assert statement.version == number, (statement.version, number)
        assert statement.previous == previous, f"version {number}: previous breaks the chain"
        assert 1 <= len(statement.adds) + len(statement.removes) <= 10_000
        for h in statement.adds:
            assert h not in members, f"version {number} adds a present hash"
        for h in statement.removes:
            assert h in members, f"version {number} removes an absent hash"
        members.difference_update(statement.removes)
        members.update(statement.adds)
        assert statement.count == len(members)
        if check_digests:
            assert statement.state == naive_lthash(members), f"version {number}: state digest"
        previous = hashlib.sha256(verified.text.encode("utf-8")).digest()
        statements.append(statement)
        texts.append(verified.text)
    root = naive_mth([t.encode("utf-8") for t in texts])
    return VerifiedLog(keyring, statements, texts, members, root)


def verify_checkpoint_note(note: str, keyring: Keyring) -> tuple[Checkpoint, int]:
    """Verify a checkpoint's 0x01 line under an open-range key and its 0x04 timestamp."""
    verifiers = verifiers_for_checkpoint(keyring)
    verified = verify_note(note, verifiers)
    checkpoint = Checkpoint.parse(verified.text)
    timestamp = verify_cosignature(note, verified.verifiers[0])
    return checkpoint, timestamp
