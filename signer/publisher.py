"""The publisher: cuts pending changes into signed versions and keeps the checkpoint fresh.

DESIGN.md, "Processes" and "Versions, the log and what is signed". One
:meth:`Publisher.publish_once` is one database transaction that

1. takes the list's writer lock (PostgreSQL ``pg_advisory_xact_lock``;
   SQLite ``BEGIN IMMEDIATE``), so a second signer process waits and then
   sees the first one's versions: one active signer per list, never a fork;
2. checks that the database's tree extends the signer's high-water mark
   (:mod:`signer.highwater`): an old backup or a lagging replica is refused
   before anything is signed;
3. repeatedly takes up to 10,000 pending changes (due expiries first become
   expiries, removals before additions) and cuts one signed version from
   them (:func:`signer.log.cut_versions`), storing the statement, its tree
   hashes, memberships, state vector and audit head (the global audit
   chain's head is first recorded in the list's chain, so each statement
   commits to the token records too);
4. signs the new checkpoint (0x01 and 0x04 lines of the online key in force)
   and stores it;

then commits, and only then advances the high-water mark. A crash between
commit and mark leaves the mark behind the database, which is safe: the next
signing is an extension of it. (The mark ahead of the database is what a
restored backup looks like, and is refused.)

Every step costs O(changes): the previous version's state vector and the
stored Merkle hashes are read, never the whole list.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from blocklist.checkpoint import Checkpoint
from blocklist.encoding import b64encode
from blocklist.errors import FormatError
from blocklist.keyring import Keyring
from blocklist.merkle import consistency_proof, tree_root
from blocklist.statedigest import StateDigest
from blocklist.statement import MAX_CHANGES_PER_VERSION
from blocklist.store import Database
from blocklist.store import audit as store_audit
from blocklist.store import versions as store_versions
from blocklist.store.lists import get_list
from blocklist.store.models import ListRow, VersionRow
from blocklist.store.versions import current_members, has_pending_work
from signer.datadir import online_key_path
from signer.errors import NoKeyring, OnlineKeyMissing, SignerError
from signer.highwater import HighWater, HighWaterError, HighWaterMark
from signer.keyring import verifiers_for_checkpoint
from signer.keys import SecretKey, load_key
from signer.log import LogTip, cut_versions, sign_checkpoint
from signer.note import parse_note, verify_note

__all__ = [
    "DEFAULT_CHECKPOINT_INTERVAL",
    "MAX_VERSIONS_PER_PUBLISH",
    "NoKeyring",
    "OnlineKeyMissing",
    "PublishResult",
    "Publisher",
    "SignedCheckpoint",
]

logger = logging.getLogger("cleanfeed.signer")

#: Re-sign the checkpoint at least this often even when nothing changed
#: (DESIGN.md item 4: default 10 minutes; clients' max age is 3x + 15 min).
DEFAULT_CHECKPOINT_INTERVAL = timedelta(minutes=10)

#: Most versions cut in one transaction (1,000,000 changes): bounds the
#: transaction's size and how long analysts' writes wait for the list lock;
#: a larger backlog (a huge bulk import) continues in the next publish.
MAX_VERSIONS_PER_PUBLISH = 100


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PublishResult:
    """What one publish did: versions before and after, and the versions cut."""

    list_name: str
    version_before: int
    version_after: int
    versions: list[int] = field(default_factory=list)
    #: Changes were left for the next publish (more than MAX_VERSIONS_PER_PUBLISH).
    more_pending: bool = False
    #: Root of the tree after the publish.
    root: bytes = b""


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint (re-)signed by :meth:`Publisher.refresh_checkpoint`."""

    list_name: str
    size: int
    root: bytes
    signed_at: datetime


@dataclass
class _Signed:
    """What a transaction signed, for the high-water mark after commit."""

    origin: str
    size: int
    root: bytes


def _tip_of(row: VersionRow | None, origin: str, keyring_serial: int) -> LogTip:
    if row is None:
        return LogTip.empty(origin, keyring_serial)
    return LogTip(
        origin=origin,
        version=row.version,
        text_hash=row.text_hash,
        state=StateDigest.from_bytes(row.state_vector),
        count=row.count,
        keyring_serial=keyring_serial,
        audit_head=row.audit_head,
    )


class Publisher:
    """Publishes one list: versions from pending changes, fresh checkpoints."""

    def __init__(
        self,
        db: Database,
        list_name: str,
        keys_dir: Path,
        *,
        clock: Callable[[], datetime] = _utcnow,
        checkpoint_interval: float | timedelta = DEFAULT_CHECKPOINT_INTERVAL,
        max_versions: int = MAX_VERSIONS_PER_PUBLISH,
    ) -> None:
        """Publish ``list_name`` of ``db`` with the keys under ``keys_dir`` (``DATA_DIR/keys``).

        Args:
            db: the database.
            list_name: the list to publish.
            keys_dir: directory holding ``<list>/online-<keyid>.key`` and
                ``<list>/highwater.json``.
            clock: returns the current aware UTC time (tests inject one).
            checkpoint_interval: re-sign the checkpoint when older than this
                (seconds or a timedelta).
            max_versions: most versions cut per transaction.

        Raises:
            ValueError: a non-positive interval or ``max_versions``.
        """
        interval = (
            checkpoint_interval
            if isinstance(checkpoint_interval, timedelta)
            else timedelta(seconds=checkpoint_interval)
        )
        if interval <= timedelta(0):
            raise ValueError("checkpoint_interval must be positive")
        if max_versions < 1:
            raise ValueError("max_versions must be at least 1")
        self.db = db
        self.list_name = list_name
        self.keys_dir = Path(keys_dir)
        self.clock = clock
        self.checkpoint_interval = interval
        self.max_versions = max_versions
        self.highwater = HighWater.for_list(self.keys_dir, list_name)
        self._keys: dict[str, SecretKey] = {}

    # -- keys ---------------------------------------------------------------

    def _keyring(self, session: Session, lst: ListRow) -> Keyring:
        row = store_versions.get_keyring(session, lst.id)
        if row is None:
            raise NoKeyring(
                f"list {lst.name!r} has no keyring yet: sign keyring serial 1 on the offline "
                "machine (`cleanfeed keys sign-keyring`) and import it before publishing"
            )
        try:
            return Keyring.parse(parse_note(row.note).text)
        except (FormatError, SignerError) as e:
            raise SignerError(f"stored keyring serial {row.serial} is unreadable: {e}") from e

    def online_key_for(self, keyring: Keyring) -> SecretKey:
        """Load the key file of the keyring's open key (the only one that signs checkpoints).

        Raises:
            OnlineKeyMissing: no open key, or no key file for it here.
            KeyFileError: the key file is unreadable or insecure.
        """
        open_keys = keyring.open_keys()
        if len(open_keys) != 1:
            raise OnlineKeyMissing(
                f"keyring serial {keyring.serial} has no open online key range: nothing may sign"
            )
        vkey = open_keys[0]
        cached = self._keys.get(vkey)
        if cached is not None:
            return cached
        path = online_key_path(self.keys_dir, self.list_name, vkey)
        if not path.exists():
            raise OnlineKeyMissing(
                f"keyring serial {keyring.serial} names online key {vkey}, but {path} does not "
                "exist on this signer"
            )
        key = load_key(path)
        if key.vkey != vkey:
            raise OnlineKeyMissing(f"{path} holds {key.vkey}, not the keyring's {vkey}")
        self._keys[vkey] = key
        return key

    # -- fork protection ----------------------------------------------------

    def _check_highwater(self, session: Session, lst: ListRow, size: int, root: bytes) -> None:
        reader = store_versions.TreeHashReader(session, lst.id)

        def proof(m: int, n: int) -> Sequence[bytes]:
            return consistency_proof(m, n, reader)

        self.highwater.check_extension(size, root, proof, origin=lst.origin)

    def _advance(self, signed: _Signed) -> None:
        # After commit: a failure here leaves the mark behind, which is safe.
        try:
            if self.highwater.advance(HighWaterMark(signed.origin, signed.size, signed.root)):
                logger.debug("high-water mark of %s now at %d", self.list_name, signed.size)
        except HighWaterError:
            logger.exception("could not advance the high-water mark of %s", self.list_name)

    def adopt_highwater(self) -> HighWaterMark:
        """Create a missing high-water mark from the database's signed checkpoint.

        Operator recovery for a new signer host whose mark file was lost:
        the stored checkpoint must verify under the keyring's open key and
        match the stored tree. The operator vouches that the database is the
        latest one (nothing else can tell).

        Raises:
            HighWaterError: a mark exists already (never overwritten here).
            SignerError: no checkpoint, or one that does not verify or does
                not match the stored tree.
            NoKeyring: no keyring yet.
            NotFound: no such list.
        """
        if self.highwater.exists():
            raise HighWaterError(f"{self.highwater.path} exists already; nothing to adopt")
        with self.db.read() as session:
            lst = get_list(session, self.list_name)
            keyring = self._keyring(session, lst)
            row = store_versions.get_checkpoint(session, lst.id)
            if row is None:
                raise SignerError(f"list {lst.name!r} has no signed checkpoint to adopt")
            try:
                verified = verify_note(row.note, verifiers_for_checkpoint(keyring))
                checkpoint = Checkpoint.parse(verified.text)
            except (FormatError, SignerError) as e:
                raise SignerError(f"the stored checkpoint does not verify: {e}") from e
            size = store_versions.current_version(session, lst.id)
            root = tree_root(size, store_versions.TreeHashReader(session, lst.id))
            if (checkpoint.origin, checkpoint.size, checkpoint.root) != (lst.origin, size, root):
                raise SignerError("the stored checkpoint does not match the stored tree")
        mark = HighWaterMark(lst.origin, size, root)
        self.highwater.initialise(mark)
        return mark

    # -- publishing ---------------------------------------------------------

    def _publish(self, session: Session, now: datetime) -> tuple[PublishResult, _Signed | None]:
        lst = get_list(session, self.list_name)
        # One signer per list: later readers see everything committed before.
        store_versions.lock_list(session, lst.id)
        keyring = self._keyring(session, lst)
        key = self.online_key_for(keyring)
        reader = store_versions.TreeHashReader(session, lst.id)
        tip = _tip_of(store_versions.latest_version(session, lst.id), lst.origin, keyring.serial)
        before = tip.version
        # Fork protection before anything is signed: the stored tree must
        # extend the largest tree this signer ever signed.
        self._check_highwater(session, lst, before, tree_root(before, reader))

        cut: list[int] = []
        root = b""
        more = False
        while True:
            pending = store_versions.pending_changes(
                session, lst.id, now=now, limit=MAX_CHANGES_PER_VERSION
            )
            if not pending.adds and not pending.removes:
                break
            if len(cut) >= self.max_versions:
                more = True
                break
            adds = [h for _, h in pending.adds]
            removes = [h for _, h in pending.removes]
            if key.vkey not in keyring.keys_for_version(tip.version + 1):
                raise OnlineKeyMissing(
                    f"keyring serial {keyring.serial} does not let {key.vkey} sign version "
                    f"{tip.version + 1}"
                )
            # Global records (token management) reach the list's chain: the
            # global head goes in as a record first (issue 12 item 13), so
            # this statement commits to it with no change to its format.
            store_audit.record_global_head(session, lst.id, now=now)
            # The audit line commits to every record so far, including the
            # scheduled expiries pending_changes just recorded (DESIGN.md item 8).
            tip = replace(tip, audit_head=store_audit.head(session, lst.id).hash)
            members = current_members(session, lst.id, adds + removes)
            result = cut_versions(tip, reader, adds, removes, members, key, now)
            for signed in result.versions:
                store_versions.record_version(
                    session,
                    lst.id,
                    version=signed.version,
                    note=signed.note,
                    text_hash=signed.text_hash,
                    leaf_hash=signed.leaf_hash,
                    time=signed.statement.time,
                    keyring_serial=signed.statement.keyring,
                    count=signed.statement.count,
                    state_vector=signed.state_vector,
                    audit_head=signed.statement.audit,
                    adds=signed.statement.adds,
                    removes=signed.statement.removes,
                    tree_hashes=signed.tree_hashes,
                )
                cut.append(signed.version)
            tip, root = result.tip, result.root

        if not cut:
            return PublishResult(lst.name, before, before, [], False, b""), None
        # Defence in depth: the new tree must extend the mark too.
        self._check_highwater(session, lst, tip.version, root)
        note = sign_checkpoint(lst.origin, tip.version, root, key, now)
        store_versions.put_checkpoint(
            session, lst.id, size=tip.version, root=root, note=note, signed_at=now
        )
        result_out = PublishResult(lst.name, before, tip.version, cut, more, root)
        return result_out, _Signed(lst.origin, tip.version, root)

    def publish_once(self) -> PublishResult:
        """Publish every pending change (up to ``max_versions`` versions) in one transaction.

        Nothing pending: no new version, nothing signed.

        Raises:
            ForkRefused: the database is behind or off the high-water mark.
            HighWaterMissing: no high-water mark file.
            NoKeyring: no keyring yet.
            OnlineKeyMissing: the keyring's open key has no key file here.
            NotFound: no such list.
        """
        now = self.clock().astimezone(UTC).replace(microsecond=0)
        # Idle: answer from a read, without taking the list's write lock.
        with self.db.read() as session:
            lst = get_list(session, self.list_name)
            if not has_pending_work(session, lst.id, now=now):
                version = store_versions.current_version(session, lst.id)
                return PublishResult(lst.name, version, version)
        with self.db.transaction() as session:
            result, signed = self._publish(session, now)
        if signed is not None:
            self._advance(signed)
            self._log_result(result)
        return result

    def _log_result(self, result: PublishResult) -> None:
        logger.info(
            "published %s versions %d..%d",
            result.list_name,
            result.version_before + 1,
            result.version_after,
            extra={
                "event": "publish",
                "list": result.list_name,
                "version_before": result.version_before,
                "version": result.version_after,
                "versions": result.versions,
                "root": b64encode(result.root),
                "more_pending": result.more_pending,
            },
        )

    # -- publish requests (--no-signer) -------------------------------------

    def has_open_requests(self) -> bool:
        """Whether the API left a publish request (a cheap read, no write lock).

        Raises:
            NotFound: no such list.
        """
        with self.db.read() as session:
            lst = get_list(session, self.list_name)
            return bool(store_versions.open_publish_requests(session, lst.id))

    def serve_requests(self) -> PublishResult | None:
        """Serve open publish requests: publish, then mark them done with the version.

        A request with nothing pending is marked done with the unchanged
        version (the API then answers ``{"version": N}``).

        Returns:
            The publish result, or None when no request was open.

        Raises:
            ForkRefused, HighWaterMissing, NoKeyring, OnlineKeyMissing,
            NotFound: see :meth:`publish_once`.
        """
        if not self.has_open_requests():
            return None
        now = self.clock().astimezone(UTC).replace(microsecond=0)
        with self.db.transaction() as session:
            lst = get_list(session, self.list_name)
            store_versions.lock_list(session, lst.id)
            if not store_versions.open_publish_requests(session, lst.id):
                return None  # another signer served them while we waited
            result, signed = self._publish(session, now)
            store_versions.complete_publish_requests(
                session, lst.id, version=result.version_after, now=now
            )
        if signed is not None:
            self._advance(signed)
            self._log_result(result)
        return result

    # -- checkpoint freshness -----------------------------------------------

    def checkpoint_age(self) -> timedelta | None:
        """Age of the stored checkpoint, or None when there is none.

        Raises:
            NotFound: no such list.
        """
        with self.db.read() as session:
            lst = get_list(session, self.list_name)
            row = store_versions.get_checkpoint(session, lst.id)
            if row is None:
                return None
            return self.clock() - row.signed_at

    def refresh_checkpoint(self, *, force: bool = False) -> SignedCheckpoint | None:
        """Re-sign the current checkpoint with a new timestamp when it is older than the interval.

        DESIGN.md item 4: the signer re-signs at least every checkpoint
        interval even when nothing changed, so clients can tell a fresh
        log from a frozen one.

        Args:
            force: re-sign whatever the checkpoint's age.

        Returns:
            The re-signed checkpoint, or None when it was still fresh.

        Raises:
            ForkRefused, HighWaterMissing, NoKeyring, OnlineKeyMissing,
            NotFound: see :meth:`publish_once`.
        """
        if not force:
            age = self.checkpoint_age()
            if age is not None and age < self.checkpoint_interval:
                return None
        now = self.clock().astimezone(UTC).replace(microsecond=0)
        with self.db.transaction() as session:
            lst = get_list(session, self.list_name)
            store_versions.lock_list(session, lst.id)
            row = store_versions.get_checkpoint(session, lst.id)
            if not force and row is not None and now - row.signed_at < self.checkpoint_interval:
                return None  # another signer refreshed it while we waited
            result = self.sign_current_checkpoint(session, lst, now)
        self._advance(_Signed(lst.origin, result.size, result.root))
        return result

    def sign_current_checkpoint(
        self, session: Session, lst: ListRow, now: datetime
    ) -> SignedCheckpoint:
        """Sign the stored tree's head with the open key of the latest keyring.

        Runs in the caller's transaction, which must hold the list lock; the
        caller advances the high-water mark after commit (rotation uses this
        to re-sign the checkpoint under the new key at once).

        Raises:
            ForkRefused, HighWaterMissing, NoKeyring, OnlineKeyMissing: see
                :meth:`publish_once`.
        """
        keyring = self._keyring(session, lst)
        key = self.online_key_for(keyring)
        reader = store_versions.TreeHashReader(session, lst.id)
        size = store_versions.current_version(session, lst.id)
        root = tree_root(size, reader)
        self._check_highwater(session, lst, size, root)
        note = sign_checkpoint(lst.origin, size, root, key, now)
        store_versions.put_checkpoint(
            session, lst.id, size=size, root=root, note=note, signed_at=now
        )
        return SignedCheckpoint(lst.name, size, root, now)
