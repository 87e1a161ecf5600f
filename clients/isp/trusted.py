"""The ISP client's trusted state: a pure, verify-before-apply state machine.

STYLE.md, "The model knows nothing of I/O": this is python-tuf's
``trusted_metadata_set`` for cleanfeed. It holds what the client trusts (the
pinned roots and origin, the keyring, the checkpoint, the compact range of
the log, the state digest and the set of listed hashes) and accepts or
rejects each new document, following DESIGN.md "ISP sync, fail closed" step
by step. It does no network and no file I/O: :mod:`clients.isp.sync` fetches,
:mod:`clients.isp.store` persists.

Invariants:

- Every ``update_*`` / ``apply_*`` method verifies on copies and changes the
  state only when everything verified; on any error the state is exactly as
  before (each rejection raises a typed :class:`~clients.errors.ClientError`).
- The held checkpoint's size is the held version, its root is the root of
  the held compact range, and the held digest is the ``state`` of the held
  statement (checked again when a persisted record is loaded).
- The listed hashes are a read-only *base* (the persisted table, or any
  container) plus an in-memory overlay of net changes since it, so applying
  a 1,000-change version costs O(changes) at any list size; the store writes
  the overlay (:meth:`TrustedState.changes`) in one transaction and the
  caller then rebases (:meth:`TrustedState.mark_persisted`).

Why this is one file of more than 800 lines: :class:`TrustedState` is one
state machine, and its ``update_*`` / ``apply_*`` methods share the
invariants above (copies verified, then one swap); spreading them over
modules would scatter the single verify-before-apply discipline that makes
it reviewable (python-tuf keeps its ``TrustedMetadataSet`` in one module for
the same reason). What is not the state machine lives elsewhere: the
snapshot array and its parallel digest in :mod:`clients.isp.snapshot`,
persistence in :mod:`clients.isp.store`, fetching in :mod:`clients.isp.sync`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Container, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Final, NoReturn

from blocklist.checkpoint import Checkpoint
from blocklist.errors import FormatError, ProofError
from blocklist.keyring import Keyring
from blocklist.merkle import (
    EMPTY_ROOT,
    CompactRange,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from blocklist.statedigest import EMPTY_DIGEST, StateDigest
from blocklist.statement import Statement
from clients.errors import (
    BadSignature,
    ChainBroken,
    ConfigError,
    DeltaInvalid,
    Equivocation,
    KeyringRejected,
    LocalCorruption,
    MalformedData,
    NotInitialised,
    ProofMismatch,
    Rollback,
    RootKeyMismatch,
    Stale,
    StateMismatch,
    UnknownKey,
    WitnessQuorum,
    WrongOrigin,
)
from clients.isp.config import DEFAULT_MAX_AGE, MAX_FUTURE_SKEW
from clients.isp.snapshot import (
    HASH_SIZE,
    SnapshotHashes,
    snapshot_digest,
)
from signer import errors as signer_errors
from signer.keyring import (
    check_not_expired,
    verifiers_for_checkpoint,
    verifiers_for_statement,
    verify_keyring_update,
)
from signer.note import (
    CosignatureVerifier,
    Verifier,
    parse_note,
    verify_cosignature,
    verify_note,
)

__all__ = [
    "EMPTY_VECTOR",
    "ZERO_HASH",
    "CheckpointOutcome",
    "HashChanges",
    "StateRecord",
    "TrustedState",
    "check_pins",
]

#: ``previous`` of statement 1 (DESIGN.md item 2: 32 zero bytes).
ZERO_HASH: Final = bytes(32)
#: The state vector of the empty set (2048 zero bytes).
EMPTY_VECTOR: Final = StateDigest().to_bytes()


class CheckpointOutcome(Enum):
    """What :meth:`TrustedState.update_checkpoint` concluded."""

    #: Same size and root as held (a newer timestamp is remembered).
    CURRENT = "current"
    #: A larger tree: statements (or a snapshot) must follow.
    NEWER = "newer"


@dataclass(frozen=True, slots=True)
class StateRecord:
    """Everything the trusted state holds except the set of hashes.

    What the store persists in its ``meta`` table and loads back. Sizes are
    O(1) in the list size (the vector is 2048 bytes, the compact range at
    most 63 hashes).
    """

    origin: str
    keyring_notes: tuple[str, ...]
    checkpoint_note: str
    checkpoint_time: int
    version: int
    range_hashes: tuple[bytes, ...]
    #: SHA-256 of statement ``version``'s note text (ZERO_HASH at version 0).
    statement_hash: bytes
    #: The ``state`` of statement ``version`` (EMPTY_DIGEST at version 0).
    statement_state: bytes
    state_vector: bytes
    count: int


@dataclass(frozen=True, slots=True)
class HashChanges:
    """Net changes to the listed hashes since the base, to persist.

    When ``replace`` is set the whole set is first replaced by it (snapshot
    path); ``added``/``removed`` then apply on top of it.
    """

    added: tuple[bytes, ...]
    removed: tuple[bytes, ...]
    replace: SnapshotHashes | None = None

    @property
    def empty(self) -> bool:
        """Whether there is nothing to write."""
        return not self.added and not self.removed and self.replace is None


@dataclass(frozen=True, slots=True)
class _HeldCheckpoint:
    checkpoint: Checkpoint
    note: str
    time: int


def _dt(now: float) -> datetime:
    return datetime.fromtimestamp(now, tz=UTC)


def _sha256(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def _note_error(e: signer_errors.SignerError, what: str) -> NoReturn:
    """Translate a signed-note error into the client's error tree."""
    if isinstance(e, signer_errors.BadSignature):
        raise BadSignature(f"{what}: {e}") from e
    if isinstance(e, signer_errors.UnknownKey):
        raise UnknownKey(f"{what}: {e}") from e
    raise MalformedData(f"{what}: {e}") from e


def _keyring_error(
    e: signer_errors.KeyringError, note: str, held: tuple[Keyring, str] | None
) -> NoReturn:
    reason = e.reason
    if reason == "equivocation" and held is not None:
        raise Equivocation(f"keyring: {e}", kind="keyring", held_note=held[1], new_note=note) from e
    if reason == "signature":
        raise BadSignature(f"keyring: {e}") from e
    if reason == "origin_mismatch":
        raise WrongOrigin(f"keyring: {e}") from e
    if reason == "expired":
        raise Stale(f"keyring: {e}") from e
    raise KeyringRejected(f"keyring: {e}", detail=reason) from e


#: How to start over on purpose, named in every refusal of a configuration that
#: contradicts the state (never "delete the state": that would also accept a
#: rollback or another list silently).
_NEW_STATE_HINT: Final = (
    "to start a new state for another list or root deliberately, "
    "sync into a new, empty --state-dir (the old one is left as it is)"
)


def _key_label(vkey: str) -> str:
    """``name+keyid`` of a vkey: enough to tell keys apart in a message.

    A key name never holds ``+`` (C2SP signed-note), the base64 key may.
    """
    return "+".join(vkey.split("+", 2)[:2])


def check_pins(
    root_keys: Sequence[str],
    origin: str | None,
    keyrings: Sequence[Keyring],
    held_origin: str,
) -> None:
    """Refuse a configuration that contradicts what an existing state trusts.

    The pinned roots and origin are part of the state. Keyring serial 1 was
    accepted only with exactly the roots pinned then
    (:func:`signer.keyring.verify_keyring_update`, step 5), and every later
    serial names the roots it rotated to, approved by the previous roots and
    by themselves (TUF specification 5.3.4, root rotation). So a configured
    root key found among the roots of any held serial is the pinned root or
    a legitimate rotation of it (an ISP updates its pinned file when the
    hotline rotates); any other key would be ignored by the keyring walk,
    which trusts the held keyring's roots, and so is refused here.

    Args:
        root_keys: the configured root vkeys.
        origin: the configured origin, or None.
        keyrings: the held keyrings, by serial (from serial 1).
        held_origin: the origin the state follows.

    Raises:
        RootKeyMismatch: a configured root key is in no held keyring.
        ConfigError: the configured origin is not the state's origin.
    """
    if origin is not None and origin != held_origin:
        raise ConfigError(
            f"the configured origin {origin!r} is not the origin {held_origin!r} "
            f"this state follows; {_NEW_STATE_HINT}"
        )
    if not keyrings:
        return
    history = {vkey for keyring in keyrings for vkey in keyring.roots}
    unknown = [vkey for vkey in root_keys if vkey not in history]
    if not unknown:
        return
    first, latest = keyrings[0], keyrings[-1]
    trusted = f"{', '.join(_key_label(v) for v in first.roots)} (keyring serial {first.serial})"
    if latest.roots != first.roots:
        trusted += (
            f", rotated to {', '.join(_key_label(v) for v in latest.roots)} "
            f"(keyring serial {latest.serial})"
        )
    raise RootKeyMismatch(
        f"root key {', '.join(_key_label(v) for v in unknown)} is not a root of the list "
        f"this state holds ({held_origin}): it was pinned to {trusted}. The pinned roots "
        f"are part of the state: configure one of these roots, or, {_NEW_STATE_HINT}"
    )


def _witness_verifier(vkey: str) -> CosignatureVerifier:
    try:
        return CosignatureVerifier.from_vkey(vkey)
    except FormatError:
        return Verifier.from_vkey(vkey).cosigner


class TrustedState:
    """What the ISP client trusts, and the rules for changing it.

    Args:
        root_keys: the pinned root vkeys (they anchor keyring serial 1).
        origin: the pinned list origin; learned from the first verified
            keyring when None.
        record: the persisted state to resume from, or None for a first sync.
        hashes: the persisted set of listed hashes matching ``record``
            (any container of 32-byte values); empty when None.
        max_age: freeze protection, seconds (DESIGN.md: 3 x interval + 15 min).
        max_future_skew: seconds a checkpoint may be dated ahead of ``now``.
        witnesses: witness cosigner vkeys (type 0x04, or 0x01 keys whose
            cosigner is derived).
        witness_quorum: valid witness cosignatures every checkpoint needs.
        digest_workers: processes used to digest a large snapshot (the
            SHAKE-128 expansions dominate a first sync at a million entries).

    Raises:
        LocalCorruption: ``record`` is inconsistent (its compact range does
            not give the checkpoint's root, or its vector does not give the
            statement's state digest).
        RootKeyMismatch: a root key the state never trusted (see
            :func:`check_pins`).
        ConfigError: an origin other than the state's.
    """

    def __init__(
        self,
        root_keys: Sequence[str],
        *,
        origin: str | None = None,
        record: StateRecord | None = None,
        hashes: Container[bytes] | None = None,
        max_age: float = DEFAULT_MAX_AGE,
        max_future_skew: float = MAX_FUTURE_SKEW,
        witnesses: Sequence[str] = (),
        witness_quorum: int = 0,
        digest_workers: int = 1,
    ) -> None:
        if not root_keys:
            raise ValueError("at least one pinned root key is required")
        self._roots = tuple(root_keys)
        self._origin = origin
        self._max_age = max_age
        self._max_future_skew = max_future_skew
        self._witnesses = tuple(_witness_verifier(v) for v in witnesses)
        if not 0 <= witness_quorum <= len(self._witnesses):
            raise ValueError("witness quorum exceeds the number of witnesses")
        self._quorum = witness_quorum
        self._digest_workers = max(1, digest_workers)

        self._keyrings: list[tuple[Keyring, str]] = []
        self._checkpoint: _HeldCheckpoint | None = None
        self._target: _HeldCheckpoint | None = None
        self._version = 0
        self._range = CompactRange()
        self._statement_hash = ZERO_HASH
        self._statement_state = EMPTY_DIGEST
        self._digest = StateDigest()
        self._count = 0
        self._base: Container[bytes] = hashes if hashes is not None else frozenset()
        self._added: set[bytes] = set()
        self._removed: set[bytes] = set()
        self._replace: SnapshotHashes | None = None
        self._corrupt = False
        self._dirty = False
        if record is not None:
            self._load(record)

    # --- loading and exporting ----------------------------------------------

    def _load(self, record: StateRecord) -> None:
        try:
            keyrings = [(Keyring.parse(parse_note(n).text), n) for n in record.keyring_notes]
            cp = Checkpoint.parse(parse_note(record.checkpoint_note).text)
            rng = CompactRange(record.version, record.range_hashes)
            digest = StateDigest.from_bytes(record.state_vector)
        except (FormatError, ProofError, signer_errors.SignerError) as e:
            raise LocalCorruption(f"persisted state does not parse: {e}") from e
        if not keyrings:
            raise LocalCorruption("persisted state holds no keyring")
        # A wrong root key or origin is the configuration's fault, not the
        # state's: refused (exit 2), never "repaired" from a snapshot.
        check_pins(self._roots, self._origin, [k for k, _ in keyrings], record.origin)
        if cp.origin != record.origin or cp.size != record.version:
            raise LocalCorruption("persisted checkpoint does not match the persisted version")
        if rng.root() != cp.root:
            raise LocalCorruption("persisted compact range does not give the checkpoint's root")
        if digest.digest() != record.statement_state:
            raise LocalCorruption("persisted state vector does not give the statement's digest")
        self._origin = record.origin
        self._keyrings = keyrings
        self._checkpoint = _HeldCheckpoint(cp, record.checkpoint_note, record.checkpoint_time)
        self._version = record.version
        self._range = rng
        self._statement_hash = record.statement_hash
        self._statement_state = record.statement_state
        self._digest = digest
        self._count = record.count

    def record(self) -> StateRecord:
        """The current state minus the hash set, for the store.

        Raises:
            NotInitialised: no checkpoint is held yet.
        """
        if self._checkpoint is None or self._origin is None:
            raise NotInitialised("no verified checkpoint is held yet")
        return StateRecord(
            origin=self._origin,
            keyring_notes=tuple(n for _, n in self._keyrings),
            checkpoint_note=self._checkpoint.note,
            checkpoint_time=self._checkpoint.time,
            version=self._version,
            range_hashes=self._range.hashes,
            statement_hash=self._statement_hash,
            statement_state=self._statement_state,
            state_vector=self._digest.to_bytes(),
            count=self._count,
        )

    def changes(self) -> HashChanges:
        """Net changes of the hash set since the base (sorted, for the store)."""
        return HashChanges(
            added=tuple(sorted(self._added)),
            removed=tuple(sorted(self._removed)),
            replace=self._replace,
        )

    def mark_persisted(self, hashes: Container[bytes]) -> None:
        """Rebase after the store committed :meth:`record` and :meth:`changes`.

        Args:
            hashes: the persisted set, now including the changes.
        """
        self._base = hashes
        self._added = set()
        self._removed = set()
        self._replace = None
        self._dirty = False

    def mark_corrupt(self) -> None:
        """Allow the snapshot path although a state is held.

        For local corruption only (DESIGN.md step 6): the caller found that
        the persisted hash set no longer gives the held statement's digest.
        Never call it because server data was rejected.
        """
        self._corrupt = True

    # --- read access ----------------------------------------------------------

    @property
    def dirty(self) -> bool:
        """Whether something changed since loading or the last persist."""
        return self._dirty

    @property
    def origin(self) -> str | None:
        """The pinned (or learned) list origin."""
        return self._origin

    @property
    def keyring(self) -> Keyring | None:
        """The held keyring."""
        return self._keyrings[-1][0] if self._keyrings else None

    @property
    def keyring_notes(self) -> tuple[str, ...]:
        """Every accepted keyring note, in serial order."""
        return tuple(n for _, n in self._keyrings)

    @property
    def checkpoint(self) -> Checkpoint | None:
        """The held checkpoint (its size is the held version)."""
        return self._checkpoint.checkpoint if self._checkpoint else None

    @property
    def checkpoint_note(self) -> str | None:
        """The held checkpoint's note, as served."""
        return self._checkpoint.note if self._checkpoint else None

    @property
    def checkpoint_time(self) -> int | None:
        """The held checkpoint's timestamp (POSIX seconds of its 0x04 line)."""
        return self._checkpoint.time if self._checkpoint else None

    @property
    def target(self) -> Checkpoint | None:
        """A verified newer checkpoint waiting for its statements or snapshot."""
        return self._target.checkpoint if self._target else None

    @property
    def version(self) -> int:
        """The held version (= tree size of the held checkpoint)."""
        return self._version

    @property
    def count(self) -> int:
        """Number of listed hashes."""
        return self._count

    @property
    def digest(self) -> bytes:
        """The state digest of the held set."""
        return self._digest.digest()

    @property
    def statement_state(self) -> bytes:
        """The ``state`` of the held statement (equals :attr:`digest`)."""
        return self._statement_state

    @property
    def initialised(self) -> bool:
        """Whether a verified checkpoint is held."""
        return self._checkpoint is not None

    def contains(self, h: bytes) -> bool:
        """Whether ``h`` is in the held (verified) set."""
        return _member(h, self._added, self._removed, self._replace, self._base)

    def hashes(self) -> Iterator[bytes]:
        """Iterate over the held set (base must be iterable; tests, exports)."""
        base: Iterable[bytes]
        if self._replace is not None:
            base = self._replace
        elif isinstance(self._base, Iterable):
            base = self._base
        else:  # pragma: no cover - the store's view is iterable
            raise TypeError("the hash base is not iterable")
        for h in base:
            if h not in self._removed:
                yield h
        yield from self._added

    # --- 1. keyring -------------------------------------------------------------

    def update_keyring(self, note: str, now: float, *, final: bool = True) -> bool:
        """Verify and hold the next keyring (DESIGN.md sync step 1).

        Args:
            note: the keyring note, serial = held + 1 (or 1), or the held one.
            now: POSIX seconds.
            final: the last keyring of this walk; its expiry is checked
                (TUF 5.3.10: intermediate keyrings may have expired).

        Returns:
            True when a new keyring is held, False when ``note`` is exactly
            the held keyring.

        Raises:
            Rollback: an older serial than held.
            Equivocation: another validly signed keyring with the held serial.
            BadSignature, UnknownKey, WrongOrigin, Stale, KeyringRejected,
            MalformedData: see :func:`signer.keyring.verify_keyring_update`.
        """
        held = self._keyrings[-1] if self._keyrings else None
        if held is not None and note == held[1]:
            if final:
                self._check_keyring_fresh(held[0], now)
            return False
        try:
            parsed = Keyring.parse(parse_note(note).text)
        except signer_errors.SignerError as e:
            _note_error(e, "keyring")
        except FormatError as e:
            raise MalformedData(f"keyring: {e}") from e
        if held is not None and parsed.serial < held[0].serial:
            raise Rollback(
                f"keyring serial {parsed.serial} is older than the held serial {held[0].serial}"
            )
        if held is not None and parsed.serial == held[0].serial and parsed == held[0]:
            # Same keyring, other signature lines (e.g. a root added its
            # signature later): nothing new to trust.
            if final:
                self._check_keyring_fresh(held[0], now)
            return False
        try:
            keyring = verify_keyring_update(
                note,
                held=held[0] if held else None,
                pinned_roots=self._roots,
                now=_dt(now),
                origin=self._origin,
                expired_ok=not final,
            )
        except signer_errors.KeyringError as e:
            _keyring_error(e, note, held)
        self._keyrings.append((keyring, note))
        if self._origin is None:
            self._origin = keyring.origin
        self._dirty = True
        return True

    def _check_keyring_fresh(self, keyring: Keyring, now: float) -> None:
        try:
            check_not_expired(keyring, _dt(now))
        except signer_errors.KeyringError as e:
            raise Stale(f"keyring: {e} (no newer keyring is served)") from e

    def _require_keyring(self) -> Keyring:
        keyring = self.keyring
        if keyring is None or self._origin is None:
            raise NotInitialised("no verified keyring is held yet")
        return keyring

    # --- 2. checkpoint ----------------------------------------------------------

    def _verify_checkpoint(self, note: str, now: float) -> _HeldCheckpoint:
        """Signature, origin, freshness and witnesses of a checkpoint note."""
        keyring = self._require_keyring()
        if keyring.expires <= _dt(now):
            raise Stale(f"keyring serial {keyring.serial} has expired")
        try:
            verifiers = verifiers_for_checkpoint(keyring)
        except signer_errors.KeyringError as e:
            raise KeyringRejected(f"keyring: {e}", detail=e.reason) from e
        if not verifiers:
            raise UnknownKey("the keyring has no open-range key to sign checkpoints")
        try:
            verified = verify_note(note, verifiers)
        except signer_errors.SignerError as e:
            _note_error(e, "checkpoint")
        try:
            cp = Checkpoint.parse(verified.text)
        except FormatError as e:
            raise MalformedData(f"checkpoint: {e}") from e
        # Mix-and-match protection: a validly signed checkpoint of another list.
        if cp.origin != self._origin:
            raise WrongOrigin(f"checkpoint origin {cp.origin!r}, expected {self._origin!r}")
        # Freeze protection: the online key's 0x04 line states when it signed.
        try:
            timestamp = verify_cosignature(note, verified.verifiers[0])
        except signer_errors.UnknownKey as e:
            raise Stale("checkpoint carries no timestamped signature of the log key") from e
        except signer_errors.SignerError as e:
            _note_error(e, "checkpoint timestamp")
        age = now - timestamp
        if age > self._max_age:
            raise Stale(
                f"checkpoint signed {int(age)} s ago, older than the maximum age "
                f"{int(self._max_age)} s (freeze)"
            )
        if -age > self._max_future_skew:
            raise Stale(f"checkpoint dated {int(-age)} s in the future")
        if self._quorum:
            valid = 0
            for witness in self._witnesses:
                try:
                    verify_cosignature(note, witness)
                except signer_errors.SignerError:
                    continue
                valid += 1
            if valid < self._quorum:
                raise WitnessQuorum(
                    f"checkpoint has {valid} valid witness cosignature(s), {self._quorum} required"
                )
        return _HeldCheckpoint(cp, note, timestamp)

    def _compare_with_held(self, new: _HeldCheckpoint) -> None:
        """Rollback and equivocation checks against the held checkpoint."""
        held = self._checkpoint
        if held is None:
            return
        if new.checkpoint.size < held.checkpoint.size:
            # Rollback protection: never accept a smaller tree.
            raise Rollback(
                f"checkpoint size {new.checkpoint.size} is smaller than the held "
                f"size {held.checkpoint.size}"
            )
        if (
            new.checkpoint.size == held.checkpoint.size
            and new.checkpoint.root != held.checkpoint.root
        ):
            raise Equivocation(
                f"two different roots signed for tree size {new.checkpoint.size}",
                kind="checkpoint",
                held_note=held.note,
                new_note=new.note,
            )

    def update_checkpoint(self, note: str, now: float) -> CheckpointOutcome:
        """Verify a checkpoint (DESIGN.md sync step 2).

        Checks an open-range key's signature, the origin, the 0x04
        timestamp's freshness, the witness quorum, then compares with the
        held checkpoint. A same-size, same-root checkpoint only refreshes the
        held timestamp; a larger one becomes the :attr:`target` that
        :meth:`apply_statements` or :meth:`apply_snapshot` must reach. On a
        first sync a size-0 checkpoint (the empty log) is held directly.

        Returns:
            :attr:`CheckpointOutcome.CURRENT` or :attr:`CheckpointOutcome.NEWER`.

        Raises:
            BadSignature, UnknownKey, MalformedData: the signature.
            WrongOrigin: another list's checkpoint (mix-and-match).
            Stale: too old, dated in the future, no timestamp, or the held
                keyring expired (freeze).
            WitnessQuorum: too few witness cosignatures.
            Rollback: a smaller tree than held.
            Equivocation: the held size with another root (both notes kept).
            ProofMismatch: a size-0 checkpoint whose root is not the empty root.
        """
        new = self._verify_checkpoint(note, now)
        self._compare_with_held(new)
        cp = new.checkpoint
        held = self._checkpoint
        if held is None and cp.size == 0:
            if cp.root != EMPTY_ROOT:
                raise ProofMismatch("a size-0 checkpoint must carry the empty tree's root")
            self._checkpoint = new
            self._target = None
            self._dirty = True
            return CheckpointOutcome.CURRENT
        if held is not None and cp.size == held.checkpoint.size:
            if new.time > held.time:
                # Freshness moves forward only: remember the newer signature.
                self._checkpoint = new
                self._dirty = True
            self._target = None
            return CheckpointOutcome.CURRENT
        self._target = new
        return CheckpointOutcome.NEWER

    def check_fresh(self, now: float) -> None:
        """Check that the held checkpoint is still fresh (e.g. after a 304).

        Raises:
            NotInitialised: nothing held.
            Stale: the held checkpoint is older than the maximum age.
        """
        held = self._checkpoint
        if held is None:
            raise NotInitialised("no verified checkpoint is held yet")
        age = now - held.time
        if age > self._max_age:
            raise Stale(
                f"the server keeps serving a checkpoint signed {int(age)} s ago, older "
                f"than the maximum age {int(self._max_age)} s (freeze)"
            )

    # --- 3 and 4. statements ----------------------------------------------------

    def _verify_statement(self, note: str, keyring: Keyring) -> tuple[Statement, str]:
        """Parse, then verify under the key whose range contains its version."""
        try:
            text = parse_note(note).text
        except signer_errors.SignerError as e:
            _note_error(e, "statement")
        try:
            stmt = Statement.parse(text)
        except FormatError as e:
            raise MalformedData(f"statement: {e}") from e
        try:
            verifiers = verifiers_for_statement(keyring, stmt.version)
        except signer_errors.KeyringError as e:
            raise KeyringRejected(f"keyring: {e}", detail=e.reason) from e
        if not verifiers:
            raise UnknownKey(
                f"no key of keyring serial {keyring.serial} may sign version {stmt.version}"
            )
        try:
            verified = verify_note(note, verifiers)
        except signer_errors.SignerError as e:
            _note_error(e, f"statement {stmt.version}")
        if verified.text != text:  # pragma: no cover - one parser, one text
            raise MalformedData("statement text changed between parse and verify")
        if stmt.origin != self._origin:
            raise WrongOrigin(
                f"statement {stmt.version} has origin {stmt.origin!r}, expected {self._origin!r}"
            )
        if stmt.keyring > keyring.serial:
            raise KeyringRejected(
                f"statement {stmt.version} names keyring serial {stmt.keyring}, newer than "
                f"the held serial {keyring.serial}",
                detail="unknown_serial",
            )
        return stmt, text

    def verify_statement(self, note: str) -> Statement:
        """Verify one statement's signature, key range and origin; change nothing.

        The snapshot path uses it to learn the signed ``count`` (the cap of
        the snapshot download) before fetching the snapshot.

        Raises:
            BadSignature, UnknownKey, WrongOrigin, MalformedData,
            KeyringRejected, NotInitialised.
        """
        return self._verify_statement(note, self._require_keyring())[0]

    def apply_statements(self, notes: Iterable[str]) -> int:
        """Verify and apply statements held+1 .. target (DESIGN.md steps 3-4).

        Each statement: the key whose range contains its version, the origin,
        the numbering, the ``previous`` chain, the delta against the set, the
        ``count`` and the ``state`` digest after it. Then the held compact
        range extended with the new leaves must give the target checkpoint's
        root. All on copies: the state changes only if everything verifies.

        Args:
            notes: the statement notes in order (may be a lazy iterator; an
                exception it raises propagates and nothing changes).

        Returns:
            The number of statements applied.

        Raises:
            NotInitialised: no target checkpoint (call update_checkpoint).
            ChainBroken: a gap, duplicate, reordering, wrong ``previous``, or
                fewer/more statements than the checkpoint's size.
            DeltaInvalid: adds a present hash or removes an absent one.
            StateMismatch: ``count`` or ``state`` differs after a version.
            Equivocation: the signed statements do not give the signed root.
            BadSignature, UnknownKey, WrongOrigin, MalformedData,
            KeyringRejected: see the checks above.
        """
        target = self._target
        if target is None or self._checkpoint is None:
            raise NotInitialised("no newer verified checkpoint to apply statements to")
        keyring = self._require_keyring()
        size = target.checkpoint.size
        rng = self._range.copy()
        digest = self._digest.copy()
        added = set(self._added)
        removed = set(self._removed)
        replace = self._replace
        base = self._base
        count = self._count
        previous = self._statement_hash
        state = self._statement_state
        expected = self._version + 1
        for note in notes:
            if expected > size:
                raise ChainBroken(f"more statements than the checkpoint's size {size}")
            stmt, text = self._verify_statement(note, keyring)
            if stmt.version != expected:
                raise ChainBroken(f"expected statement {expected}, got {stmt.version}")
            if stmt.previous != previous:
                if stmt.version == self._version + 1 and self._version > 0:
                    # Split view: a validly signed statement that does not
                    # extend the signed statement we hold means the log signed
                    # two histories (DESIGN.md, ISP sync step 2): keep both
                    # checkpoints as evidence, not just "chain broken".
                    raise Equivocation(
                        f"statement {stmt.version} is validly signed but does not extend the "
                        f"held statement {self._version}: the log signed two histories",
                        kind="checkpoint",
                        held_note=self._checkpoint.note,
                        new_note=target.note,
                    )
                raise ChainBroken(f"statement {stmt.version}'s previous hash breaks the chain")
            for h in stmt.adds:
                if _member(h, added, removed, replace, base):
                    raise DeltaInvalid(f"statement {stmt.version} adds a hash already listed")
                if h in removed:
                    removed.discard(h)
                else:
                    added.add(h)
            for h in stmt.removes:
                if not _member(h, added, removed, replace, base):
                    raise DeltaInvalid(f"statement {stmt.version} removes a hash not listed")
                if h in added:
                    added.discard(h)
                else:
                    removed.add(h)
            count += len(stmt.adds) - len(stmt.removes)
            if count != stmt.count:
                raise StateMismatch(
                    f"statement {stmt.version} says {stmt.count} entries, the delta gives {count}"
                )
            digest.update(stmt.adds, stmt.removes)
            if digest.digest() != stmt.state:
                raise StateMismatch(f"state digest after version {stmt.version} does not match")
            rng.append(leaf_hash(text.encode("utf-8")))
            previous = _sha256(text)
            state = stmt.state
            expected += 1
        if expected - 1 != size:
            raise ChainBroken(
                f"statements end at version {expected - 1}, the checkpoint has {size}"
            )
        if rng.root() != target.checkpoint.root:
            # The statements are signed and chain from what we hold, so a
            # different root means the log signed two inconsistent histories.
            raise Equivocation(
                f"checkpoint {size}'s root is not the root of the held log extended "
                "by the signed statements",
                kind="checkpoint",
                held_note=self._checkpoint.note,
                new_note=target.note,
            )
        applied = size - self._version
        self._range = rng
        self._digest = digest
        self._added = added
        self._removed = removed
        self._count = count
        self._statement_hash = previous
        self._statement_state = state
        self._version = size
        self._checkpoint = target
        self._target = None
        self._dirty = True
        return applied

    # --- 6. snapshot --------------------------------------------------------------

    def apply_snapshot(
        self,
        checkpoint_note: str,
        statement_note: str | None,
        inclusion_proof: Sequence[bytes],
        range_hashes: Sequence[bytes],
        snapshot: bytes,
        *,
        now: float,
        consistency_proof: Sequence[bytes] | None = None,
    ) -> None:
        """Replace the set from a snapshot (DESIGN.md sync step 6).

        Allowed only for a first sync, or after :meth:`mark_corrupt`. The
        checkpoint passes every check of :meth:`update_checkpoint` (so a
        resync can never roll back or fork); statement N is verified under
        its key and proven included in the checkpoint; the compact range at
        N must give the checkpoint's root; when a smaller checkpoint is held,
        a consistency proof from it is required; the snapshot must be sorted,
        ``count x 32`` bytes, and give statement N's ``state``.

        Args:
            checkpoint_note: checkpoint N's note.
            statement_note: statement N's note (None only for N = 0).
            inclusion_proof: of leaf N-1 in tree N.
            range_hashes: the compact range at N.
            snapshot: the raw sorted hashes at N.
            now: POSIX seconds.
            consistency_proof: from the held size to N, when one is held.

        Raises:
            ValueError: called without a reason to take the snapshot path.
            ProofMismatch: an inclusion, consistency or compact range proof fails.
            StateMismatch: the snapshot's size or digest differs from statement N.
            MalformedData: the snapshot is not sorted whole hashes.
            and everything :meth:`update_checkpoint` raises.
        """
        if self._checkpoint is not None and not self._corrupt:
            raise ValueError("the snapshot path is for a first sync or local corruption only")
        new = self._verify_checkpoint(checkpoint_note, now)
        self._compare_with_held(new)
        cp = new.checkpoint
        keyring = self._require_keyring()
        try:
            rng = CompactRange(cp.size, range_hashes)
        except (ProofError, ValueError) as e:
            raise ProofMismatch(f"compact range at {cp.size}: {e}") from e
        if rng.root() != cp.root:
            raise ProofMismatch(f"compact range at {cp.size} does not give the checkpoint's root")
        held = self._checkpoint
        if held is not None and 0 < held.checkpoint.size < cp.size:
            if consistency_proof is None:
                raise ProofMismatch("a consistency proof from the held checkpoint is required")
            try:
                verify_consistency(
                    held.checkpoint.size,
                    cp.size,
                    held.checkpoint.root,
                    cp.root,
                    consistency_proof,
                )
            except ProofError as e:
                raise ProofMismatch(f"consistency from the held checkpoint: {e}") from e
        if cp.size == 0:
            if statement_note is not None or snapshot:
                raise MalformedData("the empty log has no statement and an empty snapshot")
            stmt_hash, stmt_state, count = ZERO_HASH, EMPTY_DIGEST, 0
        else:
            if statement_note is None:
                raise MalformedData(f"statement {cp.size} is required for the snapshot path")
            stmt, text = self._verify_statement(statement_note, keyring)
            if stmt.version != cp.size:
                raise ProofMismatch(f"statement {stmt.version} is not statement {cp.size}")
            try:
                verify_inclusion(
                    leaf_hash(text.encode("utf-8")), cp.size - 1, cp.size, inclusion_proof, cp.root
                )
            except ProofError as e:
                raise ProofMismatch(f"statement {cp.size} inclusion: {e}") from e
            stmt_hash, stmt_state, count = _sha256(text), stmt.state, stmt.count
        if len(snapshot) != count * HASH_SIZE:
            raise StateMismatch(
                f"snapshot holds {len(snapshot)} bytes, statement {cp.size} says "
                f"{count} entries ({count * HASH_SIZE} bytes)"
            )
        hashes = SnapshotHashes.validate(snapshot)
        digest = snapshot_digest(hashes, workers=self._digest_workers)
        if digest.digest() != stmt_state:
            raise StateMismatch(f"snapshot digest differs from statement {cp.size}'s state")
        self._checkpoint = new
        self._target = None
        self._version = cp.size
        self._range = rng
        self._statement_hash = stmt_hash
        self._statement_state = stmt_state
        self._digest = digest
        self._count = count
        self._replace = hashes
        self._added = set()
        self._removed = set()
        self._corrupt = False
        self._dirty = True


def _member(
    h: bytes,
    added: set[bytes],
    removed: set[bytes],
    replace: SnapshotHashes | None,
    base: Container[bytes],
) -> bool:
    if h in added:
        return True
    if h in removed:
        return False
    return h in (replace if replace is not None else base)
