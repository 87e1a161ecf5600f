"""A whole list log in memory, for client and auditor tests and benchmarks.

It produces exactly what the server publishes, from the same pure core
(:func:`signer.log.cut_versions`, :func:`signer.log.sign_checkpoint`,
:func:`signer.keyring.sign_keyring`), without a database; production code
never uses it. Tests import it as ``support.memory_log`` (``tests`` is on
pytest's ``pythonpath``); the benchmarks, run from the repository root, as
``tests.support.memory_log``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from blocklist.keyring import KeyRange, Keyring
from blocklist.merkle import (
    MemoryHashStore,
    consistency_proof,
    inclusion_proof,
    range_hashes,
    tree_root,
)
from blocklist.statement import MAX_CHANGES_PER_VERSION, Statement
from signer.keyring import rotated_keyring, sign_keyring
from signer.keys import SecretKey
from signer.log import (
    DEFAULT_KEYRING_LIFETIME,
    LogTip,
    cut_versions,
    sign_checkpoint,
    utc_seconds,
)

__all__ = ["MemoryLog"]


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
        start = utc_seconds(now or datetime.now(UTC))
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
        start = utc_seconds(now or datetime.now(UTC))
        new_key = new_key or SecretKey.generate(self.origin)
        self.keyring = rotated_keyring(
            self.keyring, self.version, new_key.vkey, start + self.keyring_lifetime
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
