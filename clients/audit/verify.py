"""Offline verification of an audit bundle: pure, no network, one pass.

:func:`verify_bundle` checks a loaded :class:`~clients.audit.bundle.Bundle`
with nothing but the pinned root vkey(s) and returns an
:class:`AuditReport`: either everything verified, or the *first* failure
with its check, version (or keyring serial, audit record, checkpoint) and
reason. It never raises for bad bundle content.

Checks, in the order they run (each a stable ``check`` identifier):

1. ``keyring``: keyrings are walked serial by serial from the pinned roots
   with :func:`signer.keyring.verify_keyring_update` (threshold of the held
   roots, serial + 1, same origin, a changed root set also signed by its new
   roots: TUF root rotation). Expiry is judged at the time each keyring was
   *used*, never against today (see "Keyring expiry" below).
2. ``audit.chain`` / ``audit.records`` (full bundles): the audit log's hash
   chain (docs/architecture.md, "Audit log hash chain") is recomputed record
   by record; every record belongs to the bundle's list; the ``list.create``
   record fixes ``approvals_required``.
   ``global.chain`` / ``global.head`` (full bundles): the deployment's
   global audit chain (``global_log``: token management, later persons'
   accounts; who minted which identity) is recomputed record by record,
   every record names no list; each ``global.head`` record of the list's
   chain (written by the publisher, so the statements commit to it) must
   name a record of that chain and its exact chain hash, never moving
   back. A bundle without ``global_log`` passes only if the list's chain
   records no global head (a bundle of an older server: warned).
3. For each statement N = 1, 2, ... in one pass:
   ``statement.format`` (the strict parser of :mod:`blocklist.statement`),
   ``statement.keyring`` (the keyring serial it names exists, never goes
   back, had not expired at the statement's ``time``, and holds a key whose
   range contains N; every *later* keyring of the bundle gives N to the same
   key, so a key rotated out cannot sign past the end of its range even
   under an old keyring), ``statement.signature`` (that key's Ed25519
   signature), ``statement.numbering`` (position N holds version N: no gap,
   duplicate or reordering), ``statement.origin``, ``statement.previous``
   (SHA-256 of version N-1's text), ``statement.delta`` (no addition of a
   listed hash, no removal of an unlisted one; DESIGN.md item 2),
   ``statement.count`` and ``statement.state`` (the LtHash16 digest of the
   replayed set; DESIGN.md item 5); for full bundles ``audit.head`` (the
   ``audit`` line is the chain head after some record, never moving back)
   and ``audit.addition`` / ``audit.removal`` (every change is backed by
   the decisions recorded up to that head, see :mod:`clients.audit.decisions`).
4. ``checkpoint``: every bundle checkpoint is signed by an online key
   allowed to sign a tree of its size, carries that key's timestamped
   cosignature (0x04, reported), and is a prefix of the log; the latest has
   the size of the bundle's log, the RFC 9162 root of all statement texts,
   and a signer whose range is open in the latest keyring.
5. ``entries`` (full bundles): each entry's expression hashes (SHA-256) to
   its hash, and its fields match its ``entry.add`` record. An entry without
   plaintext (``null`` expression and url) must have an
   ``entry.prune_plaintext`` record not undone by an
   ``entry.restore_plaintext``, and an entry with plaintext must not: the
   server's retention (blocklist.store.retention) erases plaintext only of
   entries off the list, and says so in the hash-chained log.
6. ``extra_checkpoint``: every checkpoint given by the caller (for example
   the ones an ISP saved) verifies the same way and is consistent with the
   bundle's log: the root of the log at its size. Two signed, incompatible
   views are reported as an :class:`EquivocationProof` holding both notes.

Keyring expiry (the rule chosen): a keyring is *used* by each statement that
names it in its ``keyring`` line, and by each checkpoint its open key signs.
A statement must be dated (``time``) strictly before the ``expires`` of the
keyring it names; a checkpoint's 0x04 timestamp must be strictly before the
``expires`` of at least one keyring in which its signer's range is open. So
a signer that kept signing after its keyring lapsed is caught, while a
bundle verified years later is not failed merely because its keyrings have
expired since; that the latest keyring is expired *today* is a warning
(ISPs freeze until a new one is published), not a failure of the history.

The pass is split by concept: :mod:`clients.audit.report` holds the report
and the check identifiers, :mod:`clients.audit.examine` the per-statement
work that runs in parallel (parsing, the Ed25519 check, the LtHash16
expansion), :mod:`clients.audit.replay` the audit-log replay (the chains,
the entries) with :mod:`clients.audit.decisions` (the accountability of
every change). This module drives them, walks the keyrings, replays the
statements in order (one pass, no per-change Python work beyond parsing
and C-level set operations) and checks the checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from blocklist.checkpoint import Checkpoint
from blocklist.encoding import b64encode, format_time
from blocklist.errors import FormatError
from blocklist.keyring import Keyring
from blocklist.merkle import MemoryHashStore, consistency_proof, tree_root
from blocklist.statedigest import StateDigest
from blocklist.statement import ZERO_HASH, Statement
from clients.audit.bundle import Bundle
from clients.audit.examine import KeyRange, Problem, default_workers, examine_all
from clients.audit.replay import AuditReplay
from clients.audit.report import (
    CHECK_BUNDLE,
    CHECK_CHECKPOINT,
    CHECK_COUNT,
    CHECK_DELTA,
    CHECK_EXTRA,
    CHECK_KEYRING,
    CHECK_KEYRING_USE,
    CHECK_NUMBERING,
    CHECK_ORIGIN,
    CHECK_PREVIOUS,
    CHECK_STATE,
    AuditReport,
    CheckFailed,
    CheckpointResult,
    EquivocationProof,
    Failure,
    fail,
    iso_time,
    key_label,
)
from signer.errors import KeyringError, NoteError
from signer.keyring import verify_keyring_update
from signer.note import Verifier, verify_cosignature, verify_note

__all__ = ["FUTURE_SKEW", "verify_bundle"]

#: A timestamp further than this in the future of the auditor's clock is
#: reported (DESIGN.md: clients treat more than 5 minutes as stale).
FUTURE_SKEW: Final = timedelta(minutes=5)


# --- keyrings ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Span:
    """Versions ``first..last`` (``last`` None: open-ended)."""

    first: int
    last: int | None

    def contains(self, n: int) -> bool:
        return self.first <= n and (self.last is None or n <= self.last)

    def intersect(self, other: _Span | None) -> _Span | None:
        if other is None:
            return None
        first = max(self.first, other.first)
        if self.last is None:
            last = other.last
        elif other.last is None:
            last = self.last
        else:
            last = min(self.last, other.last)
        if last is not None and last < first:
            return None
        return _Span(first, last)


class _KeyringTable:
    """The verified keyrings and what they allow, precomputed once."""

    def __init__(self, keyrings: Sequence[Keyring]) -> None:
        self.keyrings = list(keyrings)
        self.ranges: dict[int, tuple[KeyRange, ...]] = {
            k.serial: tuple((r.vkey, r.first, r.last) for r in k.keys) for k in keyrings
        }
        # For each serial s and key: the versions every keyring from s to the
        # latest gives that key (rotation protection: a later keyring that
        # closed a range binds statements that name an older keyring too).
        self.allowed_from: dict[int, dict[str, _Span]] = {}
        later: dict[str, _Span] = {}
        for k in reversed(self.keyrings):
            here: dict[str, _Span] = {}
            for r in k.keys:
                span: _Span | None = _Span(r.first, r.last)
                if k is not self.keyrings[-1]:
                    assert span is not None
                    span = span.intersect(later.get(r.vkey))
                if span is not None:
                    here[r.vkey] = span
            self.allowed_from[k.serial] = here
            later = here
        # Checkpoint signers: keys open in at least one keyring, with the
        # tree sizes their latest range lets them sign (first - 1 .. last):
        # a key takes over at rotation by re-signing the current tree.
        self.checkpoint_spans: dict[str, _Span] = {}
        self.open_in: dict[str, list[Keyring]] = {}
        for k in self.keyrings:
            for r in k.keys:
                if r.last is None:
                    self.open_in.setdefault(r.vkey, []).append(k)
                self.checkpoint_spans[r.vkey] = _Span(r.first - 1, r.last)
        self.checkpoint_verifiers = [Verifier.from_vkey(v) for v in self.open_in]

    @property
    def latest(self) -> Keyring:
        return self.keyrings[-1]

    def closing_serial(self, vkey: str, version: int, since: int) -> int | None:
        """The first keyring from ``since`` on that does not give ``version`` to ``vkey``."""
        for k in self.keyrings[since - 1 :]:
            if not any(r.vkey == vkey and r.contains(version) for r in k.keys):
                return k.serial
        return None


# --- the verification pass ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class _VerifiedCheckpoint:
    checkpoint: Checkpoint
    vkey: str
    timestamp: int
    note: str


class _Run:
    def __init__(
        self,
        bundle: Bundle,
        root_vkeys: Sequence[str],
        extra_checkpoints: Sequence[str],
        now: datetime,
        origin: str | None,
        workers: int,
    ) -> None:
        self.bundle = bundle
        self.roots = list(root_vkeys)
        self.extras = list(extra_checkpoints)
        self.now = now
        self.pinned_origin = origin
        self.workers = workers
        self.report = AuditReport(bundle.kind, bundle.list_name, bundle.origin)
        self.store = MemoryHashStore()
        self.table: _KeyringTable | None = None
        self.audit: AuditReplay | None = None

    # -- driver --

    def run(self) -> AuditReport:
        report = self.report
        try:
            self._bundle_fields()
            self._keyrings()
            if self.bundle.is_full:
                self.audit = AuditReplay(self.bundle, self.report)
                self.audit.check_logs()
            self._statements()
            latest = self._checkpoints()
            if self.audit is not None:
                self.audit.check_entries()
        except CheckFailed as stop:
            report.failure = stop.failure
            for i in range(len(self.extras)):
                report.extra_checkpoints.append(
                    CheckpointResult(f"extra[{i}]", "not_checked", "the bundle did not verify")
                )
            return report
        self._extra_checkpoints(latest)
        return report

    # -- 0. fields --

    def _bundle_fields(self) -> None:
        b = self.bundle
        if self.pinned_origin is not None and b.origin != self.pinned_origin:
            fail(CHECK_BUNDLE, f"origin {b.origin!r}, pinned {self.pinned_origin!r}")
        if b.approvals_required not in (1, 2):
            # DESIGN.md, four-eyes: a list requires 1 or 2 approvals.
            fail(CHECK_BUNDLE, f"approvals_required {b.approvals_required} is not 1 or 2")
        if not b.is_full:
            # No signature covers these in a hash-only bundle; nothing below
            # depends on them either.
            self.report.unauthenticated = ["list", "approvals_required"]
        else:
            self.report.unauthenticated = [
                "entries[].url beyond what canonicalises to the expression",
                "entries[].created_at below the second",
            ]

    # -- 1. keyrings --

    def _keyrings(self) -> None:
        counts = self.report.counts
        held: Keyring | None = None
        keyrings: list[Keyring] = []
        if not self.bundle.keyrings:
            fail(CHECK_KEYRING, "the bundle holds no keyring", keyring_serial=1)
        for i, note in enumerate(self.bundle.keyrings):
            try:
                # Historical walk: expiry is judged where each keyring is used.
                keyring = verify_keyring_update(
                    note,
                    held=held,
                    pinned_roots=self.roots,
                    now=self.now,
                    origin=self.bundle.origin,
                    expired_ok=True,
                )
            except KeyringError as e:
                fail(CHECK_KEYRING, str(e), keyring_serial=i + 1)
            if held is not None and keyring.root_set != held.root_set:
                counts.root_rotations += 1
            keyrings.append(keyring)
            counts.keyrings += 1
            held = keyring
        self.table = _KeyringTable(keyrings)
        latest = self.table.latest
        counts.online_keys = len({r.vkey for k in keyrings for r in k.keys})
        self.report.keyring_serial = latest.serial
        self.report.keyring_expires = latest.expires
        if latest.expires <= self.now:
            self.report.warn(
                f"the latest keyring (serial {latest.serial}) expired at "
                f"{format_time(latest.expires)}: ISPs freeze until a new one is published"
            )

    # -- 2. audit log --

    # -- 3. statements --

    def _statements(self) -> None:
        assert self.table is not None
        table = self.table
        report = self.report
        counts = report.counts
        notes = self.bundle.statements
        current: set[bytes] = set()
        state = StateDigest()
        previous = ZERO_HASH
        last_serial = 0
        last_time: datetime | None = None
        last_position = 0
        audit = self.audit
        future = self.now + FUTURE_SKEW
        results = examine_all(notes, table.ranges, self.workers)
        try:
            for index, result in enumerate(results):
                n = index + 1
                if isinstance(result, Problem):
                    fail(result.check, result.reason, version=result.version or n)
                st = result.statement
                # No gap, duplicate or reordering: position N holds version N.
                if st.version != n:
                    fail(
                        CHECK_NUMBERING,
                        f"position {n} of the bundle holds version {st.version} (a version is "
                        "missing, repeated or out of order)",
                        version=n,
                    )
                if st.origin != self.bundle.origin:
                    # Mix-and-match: a statement of another list.
                    fail(
                        CHECK_ORIGIN,
                        f"origin {st.origin!r}, expected {self.bundle.origin!r}",
                        version=n,
                    )
                if st.previous != previous:
                    fail(
                        CHECK_PREVIOUS,
                        f"previous is {b64encode(st.previous)}, but version {n - 1}'s text "
                        f"hashes to {b64encode(previous)}",
                        version=n,
                    )
                self._keyring_use(st, result.vkey, last_serial)
                last_serial = st.keyring
                # Replay (DESIGN.md item 2): C-level set operations only.
                if not current.isdisjoint(st.adds):
                    h = next(h for h in st.adds if h in current)
                    fail(CHECK_DELTA, f"adds {b64encode(h)}, which is already listed", version=n)
                if not current.issuperset(st.removes):
                    h = next(h for h in st.removes if h not in current)
                    fail(CHECK_DELTA, f"removes {b64encode(h)}, which is not listed", version=n)
                current.difference_update(st.removes)
                current.update(st.adds)
                if st.count != len(current):
                    fail(
                        CHECK_COUNT,
                        f"count {st.count}, but the replayed list has {len(current)} entries",
                        version=n,
                    )
                # LtHash16: the version's delta vector adds to the state.
                state.merge(StateDigest.from_bytes(result.delta))
                if state.digest() != st.state:
                    fail(
                        CHECK_STATE,
                        "state digest does not match the replayed list",
                        version=n,
                    )
                if audit is not None:
                    last_position = audit.check_statement(st, last_position)
                self.store.append_leaf_hash(result.leaf_hash)
                previous = result.text_hash
                if last_time is not None and st.time < last_time:
                    report.warn(
                        f"version {n} is dated {format_time(st.time)}, before version {n - 1}"
                    )
                if st.time > future:
                    report.warn(f"version {n} is dated {format_time(st.time)}, in the future")
                if report.first_time is None:
                    report.first_time = st.time
                last_time = st.time
                counts.statements += 1
                counts.additions += len(st.adds)
                counts.removals += len(st.removes)
                report.version = n
                report.count = st.count
                report.state = st.state
        finally:
            close = getattr(results, "close", None)
            if close is not None:
                close()
        report.last_time = last_time
        if audit is not None:
            report.canary = audit.decisions.canary

    def _keyring_use(self, st: Statement, vkey: str, last_serial: int) -> None:
        assert self.table is not None
        n, serial = st.version, st.keyring
        if serial < last_serial:
            fail(
                CHECK_KEYRING_USE,
                f"names keyring serial {serial} after version {n - 1} named {last_serial} "
                "(the keyring in force went back)",
                version=n,
            )
        keyring = self.table.keyrings[serial - 1]
        if st.time >= keyring.expires:
            fail(
                CHECK_KEYRING_USE,
                f"signed at {format_time(st.time)} under keyring serial {serial}, which expired "
                f"at {format_time(keyring.expires)}",
                version=n,
            )
        span = self.table.allowed_from[serial].get(vkey)
        if span is None or not span.contains(n):
            closing = self.table.closing_serial(vkey, n, serial)
            fail(
                CHECK_KEYRING_USE,
                f"key {key_label(vkey)} may not sign version {n}: keyring serial {closing} "
                "no longer gives it that version (rotated out)",
                version=n,
            )

    # -- 4. checkpoints --

    def _verify_checkpoint(self, note: str) -> _VerifiedCheckpoint | str:
        """Signature, key, size range, origin and 0x04 timestamp; else the reason."""
        assert self.table is not None
        table = self.table
        try:
            verified = verify_note(note, table.checkpoint_verifiers)
        except NoteError as e:
            return f"signature: {e} (checkpoints are signed by keys with an open range)"
        try:
            checkpoint = Checkpoint.parse(verified.text)
        except FormatError as e:
            return f"format: {e}"
        if checkpoint.origin != self.bundle.origin:
            return f"origin {checkpoint.origin!r}, expected {self.bundle.origin!r}"
        problems: list[str] = []
        for verifier in verified.verifiers:
            vkey = verifier.vkey
            span = table.checkpoint_spans[vkey]
            if not span.contains(checkpoint.size):
                last = "-" if span.last is None else span.last
                problems.append(
                    f"key {key_label(vkey)} may sign trees of size {span.first}..{last} only"
                )
                continue
            try:
                timestamp = verify_cosignature(note, verifier)
            except NoteError as e:
                problems.append(f"no valid timestamped cosignature by {key_label(vkey)}: {e}")
                continue
            when = datetime.fromtimestamp(timestamp, tz=UTC) if timestamp < 2**37 else None
            if when is None or not any(when < k.expires for k in table.open_in[vkey]):
                problems.append(
                    f"timestamped {iso_time(timestamp)}, after every keyring that opened key "
                    f"{key_label(vkey)} had expired"
                )
                continue
            return _VerifiedCheckpoint(checkpoint, vkey, timestamp, note)
        return "; ".join(problems)

    def _result(
        self, label: str, v: _VerifiedCheckpoint, status: str, detail: str
    ) -> CheckpointResult:
        return CheckpointResult(
            label,
            status,
            detail,
            size=v.checkpoint.size,
            root=v.checkpoint.root,
            timestamp=v.timestamp,
            key=key_label(v.vkey),
        )

    def _checkpoints(self) -> _VerifiedCheckpoint:
        assert self.table is not None
        report = self.report
        size = report.version
        root = tree_root(size, self.store)
        open_keys = set(self.table.latest.open_keys())
        verified: list[tuple[int, _VerifiedCheckpoint]] = []
        for i, note in enumerate(self.bundle.checkpoints):
            result = self._verify_checkpoint(note)
            if isinstance(result, str):
                fail(CHECK_CHECKPOINT, result, checkpoint=f"bundle[{i}]")
            if result.checkpoint.size > size:
                fail(
                    CHECK_CHECKPOINT,
                    f"size {result.checkpoint.size} is beyond the bundle's {size} statements "
                    "(statements are missing)",
                    checkpoint=f"bundle[{i}]",
                )
            verified.append((i, result))
        candidates = [
            (v.timestamp, i, v)
            for i, v in verified
            if v.checkpoint.size == size and v.vkey in open_keys
        ]
        if not candidates:
            fail(
                CHECK_CHECKPOINT,
                f"no checkpoint of the bundle's size {size} signed by a key open in the latest "
                f"keyring (serial {self.table.latest.serial})",
            )
        _, latest_index, latest = max(candidates, key=lambda c: (c[0], c[1]))
        if latest.checkpoint.root != root:
            fail(
                CHECK_CHECKPOINT,
                f"root {b64encode(latest.checkpoint.root)} is not the Merkle root "
                f"{b64encode(root)} of the bundle's {size} statements",
                checkpoint=f"bundle[{latest_index}]",
            )
        for i, v in verified:
            label = f"bundle[{i}]"
            proof = self._consistency(v, latest, label)
            if proof is not None:
                report.equivocations.append(proof)
                report.checkpoints.append(
                    self._result(label, v, "equivocation", "not the log's root at this size")
                )
                fail(
                    CHECK_CHECKPOINT,
                    f"root at size {v.checkpoint.size} differs from the log's "
                    f"{b64encode(proof.log_root)} (equivocation: both are signed)",
                    checkpoint=label,
                )
            report.checkpoints.append(self._result(label, v, "ok", ""))
            report.counts.checkpoints += 1
        report.checkpoint = self._result(f"bundle[{latest_index}]", latest, "ok", "latest")
        ts = datetime.fromtimestamp(latest.timestamp, tz=UTC)
        if ts > self.now + FUTURE_SKEW:
            report.warn(
                f"the latest checkpoint is timestamped {iso_time(latest.timestamp)}, in the future"
            )
        return latest

    def _consistency(
        self, v: _VerifiedCheckpoint, latest: _VerifiedCheckpoint, label: str
    ) -> EquivocationProof | None:
        """None when ``v`` is a prefix of the log, else the evidence."""
        size = v.checkpoint.size
        log_root = tree_root(size, self.store)
        if log_root == v.checkpoint.root:
            return None
        return EquivocationProof(
            size=size,
            claimed_root=v.checkpoint.root,
            log_root=log_root,
            log_size=latest.checkpoint.size,
            conflicting_note=v.note,
            log_note=latest.note,
            consistency=tuple(consistency_proof(size, latest.checkpoint.size, self.store)),
            conflicting_label=label,
        )

    # -- 6. extra checkpoints --

    def _extra_checkpoints(self, latest: _VerifiedCheckpoint) -> None:
        report = self.report
        size = report.version
        for i, note in enumerate(self.extras):
            label = f"extra[{i}]"
            result = self._verify_checkpoint(note)
            if isinstance(result, str):
                report.extra_checkpoints.append(CheckpointResult(label, "invalid", result))
                self._first(Failure(CHECK_EXTRA, result, checkpoint=label))
                continue
            cp = result.checkpoint
            if cp.size > size:
                detail = (
                    f"size {cp.size} is beyond the bundle's log ({size}): fetch a newer bundle "
                    "to check it"
                )
                report.extra_checkpoints.append(self._result(label, result, "beyond_log", detail))
                self._first(Failure(CHECK_EXTRA, detail, checkpoint=label))
                continue
            proof = self._consistency(result, latest, label)
            if proof is not None:
                detail = (
                    f"root at size {cp.size} differs from the log's {b64encode(proof.log_root)} "
                    "(equivocation: both are signed)"
                )
                report.equivocations.append(proof)
                report.extra_checkpoints.append(self._result(label, result, "equivocation", detail))
                self._first(Failure(CHECK_EXTRA, detail, checkpoint=label))
                continue
            report.extra_checkpoints.append(
                self._result(label, result, "ok", f"a prefix of the log ({cp.size} of {size})")
            )
            report.counts.extra_checkpoints += 1

    def _first(self, failure: Failure) -> None:
        if self.report.failure is None:
            self.report.failure = failure


def verify_bundle(
    bundle: Bundle,
    root_vkeys: Sequence[str],
    *,
    extra_checkpoints: Sequence[str] = (),
    now: datetime | None = None,
    origin: str | None = None,
    workers: int | None = None,
) -> AuditReport:
    """Verify a bundle offline with only the pinned root key(s).

    Args:
        bundle: the loaded bundle (:func:`clients.audit.bundle.load`).
        root_vkeys: the pinned root vkey(s); they anchor keyring serial 1.
        extra_checkpoints: signed checkpoint notes from elsewhere (an ISP's
            saved checkpoints, a witness's): each must be consistent with
            the bundle's log.
        now: the auditor's clock (aware), used only for warnings (a latest
            keyring expired today, timestamps in the future); default: now.
        origin: the pinned list origin, when the auditor pinned one.
        workers: processes for the per-statement work; default: 1 for small
            bundles, the available CPUs (at most 8) for large ones.

    Returns:
        The report; ``report.ok`` only when every check passed, otherwise
        ``report.failure`` is the first failure.

    Raises:
        ValueError: a root vkey that does not parse, or a naive ``now``.
    """
    if not root_vkeys:
        raise ValueError("at least one pinned root vkey is needed")
    for vkey in root_vkeys:
        try:
            Verifier.from_vkey(vkey)
        except FormatError as e:
            raise ValueError(f"invalid root vkey: {e}") from e
    when = now if now is not None else datetime.now(UTC)
    if when.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    count = workers if workers is not None else default_workers(bundle.statements)
    return _Run(bundle, root_vkeys, extra_checkpoints, when, origin, max(1, count)).run()
