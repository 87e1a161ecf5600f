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
and :class:`MemoryLog` keeps a whole log in memory for client and auditor
tests and benchmarks. Costs are O(changes): the state digest is updated
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
from blocklist.keyring import KeyRange, Keyring
from blocklist.merkle import (
    EMPTY_ROOT,
    HashReader,
    MemoryHashStore,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    range_hashes,
    stored_hash_count,
    stored_hashes_for_leaf,
    tree_root,
)
from blocklist.statedigest import StateDigest
from blocklist.statement import MAX_CHANGES_PER_VERSION, ZERO_HASH, Statement, split_changes
from signer.keyring import sign_keyring
from signer.keys import SecretKey
from signer.note import NoteSigner, sign_note

__all__ = [
    "DEFAULT_KEYRING_LIFETIME",
    "LogAppend",
    "LogTip",
    "MemoryLog",
    "SignedStatement",
    "checkpoint_timestamp",
    "cut_versions",
    "empty_checkpoint",
    "sign_checkpoint",
]

#: How long a keyring stays valid when :class:`MemoryLog` (or ``init``)
#: signs one: a year, so a forgotten renewal freezes clients within a year
#: at most (TUF's freeze protection), while routine renewals stay rare.
DEFAULT_KEYRING_LIFETIME = timedelta(days=365)


def _utc_seconds(when: datetime) -> datetime:
    """An aware datetime truncated to whole seconds, in UTC (statement times)."""
    if when.tzinfo is None:
        raise ValueError("times must be timezone-aware (UTC)")
    return when.astimezone(UTC).replace(microsecond=0)


def checkpoint_timestamp(when: datetime) -> int:
    """POSIX seconds of ``when`` for a cosignature's ``time`` (c2sp.org/tlog-cosignature).

    Raises:
        ValueError: ``when`` is naive or before 1970.
    """
    seconds = int(_utc_seconds(when).timestamp())
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

    when = _utc_seconds(now)
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


class MemoryLog:
    """A whole list log in memory: keys, keyrings, statements, tree and set.

    For client and auditor tests and benchmarks: it produces exactly what
    the server publishes (same core), fast enough to build 1,000 versions of
    1,000 changes in seconds. Not thread-safe.
    """

    def __init__(
        self,
        origin: str = "cleanfeed.invalid/test",
        *,
        now: datetime | None = None,
        root_key: SecretKey | None = None,
        online_key: SecretKey | None = None,
        keyring_lifetime: timedelta = DEFAULT_KEYRING_LIFETIME,
    ) -> None:
        """Create an empty log with a root key, an online key and keyring serial 1.

        Raises:
            FormatError: a bad origin.
            ValueError: invalid key names for this origin.
        """
        start = _utc_seconds(now or datetime.now(UTC))
        self.origin = origin
        self.keyring_lifetime = keyring_lifetime
        self.root_key = root_key or SecretKey.generate(f"{origin}/root")
        self.online_key = online_key or SecretKey.generate(origin)
        self.tree = MemoryHashStore()
        self.members: set[bytes] = set()
        #: Signed statement notes; statement N is ``statements[N - 1]``.
        self.statements: list[str] = []
        #: Signed keyring notes; serial S is ``keyrings[S - 1]``.
        self.keyrings: list[str] = []
        self.keyring = Keyring.create(
            origin=origin,
            serial=1,
            expires=start + keyring_lifetime,
            threshold=1,
            roots=[self.root_key.vkey],
            keys=[KeyRange(self.online_key.vkey, 1, None)],
        )
        self.keyrings.append(sign_keyring(self.keyring, [self.root_key]))
        self.tip = LogTip.empty(origin, keyring_serial=1)

    @property
    def version(self) -> int:
        """The latest version (= tree size)."""
        return self.tip.version

    @property
    def root_vkey(self) -> str:
        """The root vkey clients pin."""
        return self.root_key.vkey

    def root(self, size: int | None = None) -> bytes:
        """The tree root at ``size`` (default: the latest).

        Raises:
            ValueError: a size beyond the log.
        """
        size = self.version if size is None else size
        if not 0 <= size <= self.version:
            raise ValueError(f"no tree of size {size} (latest {self.version})")
        return tree_root(size, self.tree)

    def set_audit_head(self, head: bytes) -> None:
        """Set the audit head the next statements commit to.

        Raises:
            ValueError: not 32 bytes.
        """
        if len(head) != 32:
            raise ValueError("an audit head is 32 bytes")
        self.tip = replace(self.tip, audit_head=head)

    def publish(
        self,
        adds: Iterable[bytes] = (),
        removes: Iterable[bytes] = (),
        now: datetime | None = None,
        *,
        limit: int = MAX_CHANGES_PER_VERSION,
    ) -> list[int]:
        """Cut and sign the versions of a change set; return their numbers.

        An empty change set publishes nothing.

        Raises:
            DeltaError: see :func:`cut_versions`; nothing changes then.
        """
        add_list, remove_list = list(adds), list(removes)
        result = cut_versions(
            self.tip,
            self.tree,
            add_list,
            remove_list,
            self.members,
            self.online_key,
            now or datetime.now(UTC),
            limit=limit,
        )
        for signed in result.versions:
            self.tree.append_leaf_hash(signed.leaf_hash)
            self.statements.append(signed.note)
        self.members.difference_update(remove_list)
        self.members.update(add_list)
        self.tip = result.tip
        return [signed.version for signed in result.versions]

    def checkpoint(self, now: datetime | None = None) -> str:
        """Sign the current tree head (0x01 and 0x04 lines of the online key)."""
        return sign_checkpoint(
            self.origin, self.version, self.root(), self.online_key, now or datetime.now(UTC)
        )

    def rotate_online_key(
        self, now: datetime | None = None, new_key: SecretKey | None = None
    ) -> SecretKey:
        """Rotate the online key: a new keyring serial closes the old range at
        the current version and opens the new key's at the next one.

        Returns:
            The new online key (now in force).
        """
        start = _utc_seconds(now or datetime.now(UTC))
        new_key = new_key or SecretKey.generate(self.origin)
        current = self.version
        keys = []
        for rng in self.keyring.keys:
            if rng.last is None:
                # A key that signed nothing is dropped rather than given an
                # empty range (blocklist.keyring: first <= last).
                if rng.first <= current:
                    keys.append(KeyRange(rng.vkey, rng.first, current))
            else:
                keys.append(rng)
        keys.append(KeyRange(new_key.vkey, current + 1, None))
        self.keyring = Keyring.create(
            origin=self.origin,
            serial=self.keyring.serial + 1,
            expires=start + self.keyring_lifetime,
            threshold=self.keyring.threshold,
            roots=self.keyring.roots,
            keys=keys,
        )
        self.keyrings.append(sign_keyring(self.keyring, [self.root_key]))
        self.online_key = new_key
        self.tip = replace(self.tip, keyring_serial=self.keyring.serial)
        return new_key

    def snapshot(self, version: int | None = None) -> list[bytes]:
        """Sorted raw hashes at ``version`` (default: latest; older ones are replayed).

        Raises:
            ValueError: a version beyond the log.
        """
        version = self.version if version is None else version
        if not 0 <= version <= self.version:
            raise ValueError(f"no version {version} (latest {self.version})")
        if version == self.version:
            return sorted(self.members)
        present: set[bytes] = set()
        for note in self.statements[:version]:
            statement = Statement.parse(note[: note.index("\n\n") + 1])
            present.difference_update(statement.removes)
            present.update(statement.adds)
        return sorted(present)

    def statement_text(self, version: int) -> str:
        """The text (without signatures) of statement ``version``."""
        note = self.statements[version - 1]
        return note[: note.index("\n\n") + 1]

    def inclusion_proof(self, version: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 inclusion proof of statement ``version`` (leaf version-1) in tree ``size``.

        Raises:
            ValueError: bad version or size.
        """
        size = self.version if size is None else size
        return inclusion_proof(version - 1, size, self.tree)

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        """RFC 9162 consistency proof from tree ``old`` to tree ``new``.

        Raises:
            ValueError: bad sizes.
        """
        return consistency_proof(old, self.version if new is None else new, self.tree)

    def range_hashes(self, size: int | None = None) -> list[bytes]:
        """The compact range (maximal perfect subtree roots) of tree ``size``.

        Raises:
            ValueError: a bad size.
        """
        return range_hashes(self.version if size is None else size, self.tree)
