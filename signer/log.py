"""The pure core of publishing: cut, sign and chain versions of a list's log.

DESIGN.md, "Versions, the log and what is signed". Given the tip of a log
(version N, the text hash of statement N, the state digest vector, the
entry count, the keyring serial in force and the audit head) and a change
set, :func:`cut_versions` produces the signed statements N+1, N+2, ... (at
most :data:`~blocklist.statement.MAX_CHANGES_PER_VERSION` changes each), the
Merkle hashes to store for their leaves, and the new tip.
:func:`sign_checkpoint` signs a tree head with the online key twice: a plain
Ed25519 line (0x01) and a timestamped cosignature line (0x04) that states
its freshness (DESIGN.md item 4).

Nothing here touches a database or a file: the publisher
(:mod:`signer.publisher`) feeds it from the store inside one transaction,
and the tests' ``support.memory_log.MemoryLog`` keeps a whole log in memory
for client and auditor tests and benchmarks. Costs are O(changes): the state digest is updated
from the previous vector, and each new leaf reads O(log N) stored hashes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from blocklist.auditlog import AUDIT_ZERO
from blocklist.checkpoint import Checkpoint
from blocklist.errors import DeltaError
from blocklist.merkle import (
    EMPTY_ROOT,
    HashReader,
    leaf_hash,
    stored_hash_count,
    stored_hashes_for_leaf,
    tree_root,
)
from blocklist.statedigest import StateDigest
from blocklist.statement import MAX_CHANGES_PER_VERSION, ZERO_HASH, Statement, split_changes
from signer.note import NoteSigner, sign_note

__all__ = [
    "DEFAULT_KEYRING_LIFETIME",
    "LogAppend",
    "LogTip",
    "SignedStatement",
    "checkpoint_timestamp",
    "cut_versions",
    "empty_checkpoint",
    "sign_checkpoint",
    "utc_seconds",
]

#: How long a keyring stays valid when ``init`` (or a test log)
#: signs one: a year, so a forgotten renewal freezes clients within a year
#: at most (TUF's freeze protection), while routine renewals stay rare.
DEFAULT_KEYRING_LIFETIME = timedelta(days=365)


def utc_seconds(when: datetime | None = None) -> datetime:
    """``when`` (default: now) in UTC, truncated to whole seconds, as every signed time is.

    Raises:
        ValueError: a naive datetime.
    """
    when = when or datetime.now(UTC)
    if when.tzinfo is None:
        raise ValueError("times must be timezone-aware (UTC)")
    return when.astimezone(UTC).replace(microsecond=0)


def checkpoint_timestamp(when: datetime) -> int:
    """POSIX seconds of ``when`` for a cosignature's ``time`` (c2sp.org/tlog-cosignature).

    Raises:
        ValueError: ``when`` is naive or before 1970.
    """
    seconds = int(utc_seconds(when).timestamp())
    if seconds < 0:
        raise ValueError("a cosignature timestamp cannot be before 1970")
    return seconds


@dataclass(frozen=True)
class LogTip:
    """The state of a log after its latest version N (N = 0: nothing published).

    ``state`` is never mutated by this module: every update works on a copy.
    """

    origin: str
    version: int
    text_hash: bytes
    state: StateDigest
    count: int
    keyring_serial: int
    audit_head: bytes

    @classmethod
    def empty(cls, origin: str, keyring_serial: int, audit_head: bytes = AUDIT_ZERO) -> LogTip:
        """The tip of a log with no version yet (tree size 0, empty set)."""
        return cls(
            origin=origin,
            version=0,
            text_hash=ZERO_HASH,
            state=StateDigest(),
            count=0,
            keyring_serial=keyring_serial,
            audit_head=audit_head,
        )


@dataclass(frozen=True)
class SignedStatement:
    """One cut version: the statement, its signed note and its place in the tree.

    ``tree_hashes`` are the stored hashes its leaf adds
    (:func:`blocklist.merkle.stored_hashes_for_leaf`, leaf hash first), to be
    stored from ``stored_hash_index(0, version - 1)`` on. ``state_vector``
    is the 2048-byte LtHash16 vector after this version, which the store
    keeps so the next publish starts from it (O(changes)).
    """

    statement: Statement
    note: str
    text_hash: bytes
    leaf_hash: bytes
    tree_hashes: tuple[bytes, ...]
    state_vector: bytes

    @property
    def version(self) -> int:
        """The version number (= the tree size after this leaf)."""
        return self.statement.version


@dataclass(frozen=True)
class LogAppend:
    """What :func:`cut_versions` produced: the versions, the new tip and root."""

    versions: tuple[SignedStatement, ...]
    tip: LogTip
    root: bytes
    #: Stored hashes of all new leaves in order, from ``first_hash_index`` on.
    new_hashes: tuple[bytes, ...] = field(default=())
    first_hash_index: int = 0


class _PendingTree:
    """A :class:`HashReader` over stored hashes plus hashes not stored yet.

    Several versions cut in one go append several leaves; leaf N+2 may need
    a subtree hash that leaf N+1 created, which the base reader (the
    database) does not hold yet.
    """

    def __init__(self, base: HashReader, size: int) -> None:
        self._base = base
        self.size = size
        self.first_index = stored_hash_count(size)
        self.pending: list[bytes] = []

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        old = [i for i in indexes if i < self.first_index]
        from_base = dict(zip(old, self._base.read_hashes(old), strict=True)) if old else {}
        out = []
        for i in indexes:
            if i < self.first_index:
                out.append(from_base[i])
            else:
                out.append(self.pending[i - self.first_index])
        return out

    def append(self, leaf: bytes) -> list[bytes]:
        hashes = stored_hashes_for_leaf(self.size, leaf, self)
        self.pending.extend(hashes)
        self.size += 1
        return hashes


def cut_versions(
    tip: LogTip,
    tree: HashReader,
    adds: Iterable[bytes],
    removes: Iterable[bytes],
    members: Container[bytes],
    key: NoteSigner,
    now: datetime,
    *,
    limit: int = MAX_CHANGES_PER_VERSION,
) -> LogAppend:
    """Cut a change set into signed versions N+1, N+2, ... of at most ``limit`` changes.

    Args:
        tip: the log after version N.
        tree: the stored Merkle hashes of the tree of size N.
        adds: hashes to add (must not be members).
        removes: hashes to remove (must be members).
        members: the set of hashes after version N (at least for the hashes
            in the change set: a database passes the members among them).
        key: the online key in force (its range must contain the versions).
        now: the statements' ``time``, truncated to whole seconds.
        limit: most changes per version (DESIGN.md item 2: 10,000).

    Returns:
        The signed versions (none for an empty change set), the new tip and
        the new root.

    Raises:
        DeltaError: an addition of a member, a removal of a non-member, a
            hash listed twice, or both added and removed.
        FormatError: a hash that is not 32 bytes, or a tip that cannot be
            written in a statement.
        ProofError: the tree reader lacks a stored hash.
    """
    add_list, remove_list = list(adds), list(removes)
    chunks = split_changes(add_list, remove_list, limit)
    # A delta must not add a present hash nor remove an absent one (DESIGN.md
    # item 2); the chunks are disjoint, so checking against the state before
    # the whole change set is the same as checking before each version.
    for h in add_list:
        if h in members:
            raise DeltaError(f"cannot add {h.hex()}: already listed")
    for h in remove_list:
        if h not in members:
            raise DeltaError(f"cannot remove {h.hex()}: not listed")

    when = utc_seconds(now)
    pending = _PendingTree(tree, tip.version)
    state = tip.state.copy()
    version, previous, count = tip.version, tip.text_hash, tip.count
    out: list[SignedStatement] = []
    for chunk_adds, chunk_removes in chunks:
        state.update(chunk_adds, chunk_removes)
        version += 1
        count += len(chunk_adds) - len(chunk_removes)
        statement = Statement(
            origin=tip.origin,
            version=version,
            previous=previous,
            keyring=tip.keyring_serial,
            audit=tip.audit_head,
            state=state.digest(),
            count=count,
            time=when,
            adds=tuple(chunk_adds),
            removes=tuple(chunk_removes),
        )
        text = statement.to_text()
        data = text.encode("ascii")
        # DESIGN.md item 3: the note text alone (no signatures) is the leaf.
        leaf = leaf_hash(data)
        text_hash = hashlib.sha256(data).digest()
        out.append(
            SignedStatement(
                statement=statement,
                note=sign_note(text, [key]),
                text_hash=text_hash,
                leaf_hash=leaf,
                tree_hashes=tuple(pending.append(leaf)),
                state_vector=state.to_bytes(),
            )
        )
        previous = text_hash
    new_tip = replace(tip, version=version, text_hash=previous, state=state, count=count)
    return LogAppend(
        versions=tuple(out),
        tip=new_tip,
        root=tree_root(version, pending),
        new_hashes=tuple(pending.pending),
        first_hash_index=pending.first_index,
    )


def sign_checkpoint(origin: str, size: int, root: bytes, key: NoteSigner, now: datetime) -> str:
    """Sign a checkpoint with a plain (0x01) and a timestamped (0x04) line of ``key``.

    DESIGN.md item 4: the 0x04 cosignature (c2sp.org/tlog-cosignature)
    carries ``now`` as its timestamp, which clients check for freshness.

    Raises:
        FormatError: a bad origin, size or root.
        ValueError: ``now`` is naive or before 1970.
    """
    text = Checkpoint(origin, size, root).to_text()
    return sign_note(text, [key], cosigners=[key], timestamp=checkpoint_timestamp(now))


def empty_checkpoint(origin: str, key: NoteSigner, now: datetime) -> str:
    """The size-0 checkpoint ``init`` signs: root SHA-256(b"") (RFC 6962 2.1).

    Raises:
        FormatError: a bad origin.
        ValueError: ``now`` is naive.
    """
    return sign_checkpoint(origin, 0, EMPTY_ROOT, key, now)
