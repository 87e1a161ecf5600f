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
   the decisions recorded up to that head, see "Accountability").
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

Accountability (full bundles). Records are replayed in ``seq`` order up to
each statement's audit head. ``entry.add`` opens approval round 1 with its
actor as opener; ``entry.reinstate`` opens the next round with its actor as
opener; ``entry.approve`` counts when its ``round`` is the open round, its
actor is neither the opener nor a ``system:`` actor nor already counted;
the entry becomes approved once the count reaches ``approvals_required``
(DESIGN.md, four-eyes). ``entry.expire`` takes it off; an expiry by a
``system:`` actor counts only when it carries the ``at`` an analyst set
(``expires_at`` of ``entry.add`` or an ``entry.schedule_expiry``) and is
not earlier than it. An addition of hash h in version V needs h's entry to
be approved at V's head; a removal needs an expiry record after the head of
the version that listed it. The list's canary, created with the list by
``system:canary`` in the record right after ``list.create``, is the one
entry approved without analysts (reported).

Performance: one pass, no per-change Python work beyond parsing and C-level
set operations. Parsing, the Ed25519 check and the LtHash16 expansion of
each statement are independent of the others, so for large bundles they run
in worker processes (``workers``); the main process keeps the current set (a
Python set of bytes), sums the per-statement LtHash16 deltas (the vector is
a lane-wise sum mod 2^16, DESIGN.md item 5) and checks everything in order.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NoReturn

import numpy as np

from blocklist.auditlog import AUDIT_ZERO, AuditChainError, AuditRecord, verify_chain
from blocklist.canonical import expression as canonical_expression
from blocklist.checkpoint import Checkpoint
from blocklist.encoding import b64decode, b64encode, format_time, parse_time
from blocklist.errors import BlocklistError, FormatError
from blocklist.keyring import Keyring
from blocklist.merkle import MemoryHashStore, consistency_proof, leaf_hash, tree_root
from blocklist.statedigest import VECTOR_SIZE, StateDigest
from blocklist.statement import ZERO_HASH, Statement
from clients.audit.bundle import Bundle, BundleEntry
from signer.errors import KeyringError, NoteError
from signer.keyring import verify_keyring_update
from signer.note import MAX_NOTE_BYTES, Verifier, parse_note, verify_cosignature, verify_note

__all__ = [
    "CHECKS",
    "AuditReport",
    "CheckpointResult",
    "Counts",
    "EquivocationProof",
    "Failure",
    "verify_bundle",
]

# --- stable check identifiers (JSON output, docs/audit.md) -------------------

CHECK_BUNDLE: Final = "bundle"
CHECK_KEYRING: Final = "keyring"
CHECK_FORMAT: Final = "statement.format"
CHECK_SIGNATURE: Final = "statement.signature"
CHECK_NUMBERING: Final = "statement.numbering"
CHECK_ORIGIN: Final = "statement.origin"
CHECK_PREVIOUS: Final = "statement.previous"
CHECK_KEYRING_USE: Final = "statement.keyring"
CHECK_DELTA: Final = "statement.delta"
CHECK_COUNT: Final = "statement.count"
CHECK_STATE: Final = "statement.state"
CHECK_CHECKPOINT: Final = "checkpoint"
CHECK_EXTRA: Final = "extra_checkpoint"
CHECK_AUDIT_CHAIN: Final = "audit.chain"
CHECK_AUDIT_RECORDS: Final = "audit.records"
CHECK_AUDIT_HEAD: Final = "audit.head"
CHECK_GLOBAL_CHAIN: Final = "global.chain"
CHECK_GLOBAL_HEAD: Final = "global.head"
CHECK_ADDITION: Final = "audit.addition"
CHECK_REMOVAL: Final = "audit.removal"
CHECK_ENTRIES: Final = "entries"

#: Every check identifier, in the order the checks run.
CHECKS: Final = (
    CHECK_BUNDLE,
    CHECK_KEYRING,
    CHECK_AUDIT_CHAIN,
    CHECK_AUDIT_RECORDS,
    CHECK_GLOBAL_CHAIN,
    CHECK_GLOBAL_HEAD,
    CHECK_FORMAT,
    CHECK_KEYRING_USE,
    CHECK_SIGNATURE,
    CHECK_NUMBERING,
    CHECK_ORIGIN,
    CHECK_PREVIOUS,
    CHECK_DELTA,
    CHECK_COUNT,
    CHECK_STATE,
    CHECK_AUDIT_HEAD,
    CHECK_ADDITION,
    CHECK_REMOVAL,
    CHECK_CHECKPOINT,
    CHECK_ENTRIES,
    CHECK_EXTRA,
)

# --- limits ------------------------------------------------------------------

#: Statement bytes (summed) from which the per-statement work goes to worker
#: processes when ``workers`` is not given: below it, starting the pool
#: (a fresh interpreter importing numpy and PyNaCl per worker, about 0.5 s)
#: costs more than it saves.
PARALLEL_MIN_BYTES: Final = 8 * 1024 * 1024

#: Most worker processes started by default: the LtHash16 expansion is
#: CPU-bound, more workers than cores only add memory.
MAX_DEFAULT_WORKERS: Final = 8

#: Statements handed to a worker per task: amortises inter-process overhead
#: (a statement of 1,000 changes takes milliseconds) without holding back
#: the in-order consumer.
WORKER_CHUNK: Final = 4

#: A timestamp further than this in the future of the auditor's clock is
#: reported (DESIGN.md: clients treat more than 5 minutes as stale).
FUTURE_SKEW: Final = timedelta(minutes=5)

#: Most warnings kept in a report (a bundle with a million odd timestamps
#: must not produce a million lines).
MAX_WARNINGS: Final = 50

#: The actor prefix of automatic (non-human) audit records.
SYSTEM_ACTOR_PREFIX: Final = "system:"
#: The actor of the canary entry created with the list (blocklist.store.lists).
CANARY_ACTOR: Final = "system:canary"
#: Action of the list-chain record carrying the global chain's head
#: (blocklist.store.audit.GLOBAL_HEAD_ACTION).
GLOBAL_HEAD_ACTION: Final = "global.head"

_LANE: Final = np.dtype("<u2")


# --- report ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Failure:
    """The first check that failed, where, and why."""

    check: str
    reason: str
    version: int | None = None
    keyring_serial: int | None = None
    audit_seq: int | None = None
    checkpoint: str | None = None
    entry_id: int | None = None
    global_seq: int | None = None

    @property
    def location(self) -> str:
        """Where the failure is (``version 12``, ``keyring serial 3``...)."""
        parts = []
        if self.version is not None:
            parts.append(f"version {self.version}")
        if self.keyring_serial is not None:
            parts.append(f"keyring serial {self.keyring_serial}")
        if self.audit_seq is not None:
            parts.append(f"audit record {self.audit_seq}")
        if self.global_seq is not None:
            parts.append(f"global audit record {self.global_seq}")
        if self.checkpoint is not None:
            parts.append(f"checkpoint {self.checkpoint}")
        if self.entry_id is not None:
            parts.append(f"entry {self.entry_id}")
        return ", ".join(parts) or "bundle"

    def __str__(self) -> str:
        return f"{self.location}: {self.check}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        """The failure as a JSON object (``message`` is the one-line text)."""
        return {
            "check": self.check,
            "reason": self.reason,
            "version": self.version,
            "keyring_serial": self.keyring_serial,
            "audit_seq": self.audit_seq,
            "checkpoint": self.checkpoint,
            "entry_id": self.entry_id,
            "global_seq": self.global_seq,
            "message": str(self),
        }


@dataclass(frozen=True, slots=True)
class CheckpointResult:
    """The outcome for one checkpoint (of the bundle or given by the caller).

    ``status`` is ``ok``, ``equivocation`` (signed, but not the log's root at
    its size), ``beyond_log`` (larger than the bundle's log: fetch a newer
    bundle), ``invalid`` (signature, key, origin or format) or
    ``not_checked`` (an earlier failure made the log untrustworthy).
    """

    label: str
    status: str
    detail: str = ""
    size: int | None = None
    root: bytes | None = None
    timestamp: int | None = None
    key: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The result as a JSON object (root in base64, time as RFC 3339)."""
        return {
            "label": self.label,
            "status": self.status,
            "detail": self.detail,
            "size": self.size,
            "root": None if self.root is None else b64encode(self.root),
            "timestamp": self.timestamp,
            "time": None if self.timestamp is None else iso_time(self.timestamp),
            "key": self.key,
        }


@dataclass(frozen=True, slots=True)
class EquivocationProof:
    """Two views the log signed that cannot both be true.

    ``conflicting_note`` is a validly signed checkpoint of ``size`` whose
    root is ``claimed_root``; the bundle's signed statements give
    ``log_root`` at that size, and ``log_note`` (the bundle's latest signed
    checkpoint, of ``log_size``) is proven to extend ``log_root`` by
    ``consistency`` (RFC 9162, empty when the sizes are equal). Anyone can
    re-check it with the two notes, the proof and the log's keys.
    """

    size: int
    claimed_root: bytes
    log_root: bytes
    log_size: int
    conflicting_note: str
    log_note: str
    consistency: tuple[bytes, ...]
    conflicting_label: str = ""

    def to_text(self) -> str:
        """Printable evidence: both notes, both roots and the proof."""
        lines = [
            "EQUIVOCATION: the log signed two incompatible views",
            f"tree size {self.size}: checkpoint {self.conflicting_label or '(given)'} says root "
            f"{b64encode(self.claimed_root)}",
            f"tree size {self.size}: the bundle's signed statements give root "
            f"{b64encode(self.log_root)}",
            "",
            "--- conflicting checkpoint ---",
            self.conflicting_note.rstrip("\n"),
            "",
            f"--- the log's checkpoint of size {self.log_size} ---",
            self.log_note.rstrip("\n"),
            "",
            f"RFC 9162 consistency proof from size {self.size} (root "
            f"{b64encode(self.log_root)}) to size {self.log_size}:",
            *(f"  {b64encode(h)}" for h in self.consistency),
        ]
        if not self.consistency:
            lines.append("  (none needed: same size)")
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        """The evidence as a JSON object (hashes in base64)."""
        return {
            "size": self.size,
            "claimed_root": b64encode(self.claimed_root),
            "log_root": b64encode(self.log_root),
            "log_size": self.log_size,
            "conflicting_label": self.conflicting_label,
            "conflicting_note": self.conflicting_note,
            "log_note": self.log_note,
            "consistency": [b64encode(h) for h in self.consistency],
        }


@dataclass(slots=True)
class Counts:
    """How much was verified (all zero for what was not reached)."""

    keyrings: int = 0
    root_rotations: int = 0
    online_keys: int = 0
    statements: int = 0
    additions: int = 0
    removals: int = 0
    checkpoints: int = 0
    extra_checkpoints: int = 0
    audit_records: int = 0
    global_records: int = 0
    global_committed: int = 0
    entries: int = 0
    entries_pruned: int = 0
    backed_additions: int = 0
    backed_removals: int = 0

    def to_json(self) -> dict[str, int]:
        """The counters as a JSON object."""
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(slots=True)
class AuditReport:
    """What :func:`verify_bundle` found. ``ok`` only when nothing failed."""

    kind: str
    list_name: str
    origin: str
    failure: Failure | None = None
    counts: Counts = field(default_factory=Counts)
    version: int = 0
    count: int = 0
    state: bytes | None = None
    keyring_serial: int | None = None
    keyring_expires: datetime | None = None
    first_time: datetime | None = None
    last_time: datetime | None = None
    checkpoint: CheckpointResult | None = None
    checkpoints: list[CheckpointResult] = field(default_factory=list)
    extra_checkpoints: list[CheckpointResult] = field(default_factory=list)
    equivocations: list[EquivocationProof] = field(default_factory=list)
    approvals_required: int | None = None
    canary: bytes | None = None
    warnings: list[str] = field(default_factory=list)
    unauthenticated: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return self.failure is None

    def warn(self, message: str) -> None:
        """Add a warning (at most :data:`MAX_WARNINGS`)."""
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(message)

    def to_json(self) -> dict[str, Any]:
        """The report as one JSON object (the ``--json`` output of ``verify``)."""
        return {
            "ok": self.ok,
            "kind": self.kind,
            "list": self.list_name,
            "origin": self.origin,
            "failure": None if self.failure is None else self.failure.to_json(),
            "counts": self.counts.to_json(),
            "version": self.version,
            "count": self.count,
            "state": None if self.state is None else b64encode(self.state),
            "keyring_serial": self.keyring_serial,
            "keyring_expires": (
                None if self.keyring_expires is None else format_time(self.keyring_expires)
            ),
            "first_time": None if self.first_time is None else format_time(self.first_time),
            "last_time": None if self.last_time is None else format_time(self.last_time),
            "checkpoint": None if self.checkpoint is None else self.checkpoint.to_json(),
            "checkpoints": [c.to_json() for c in self.checkpoints],
            "extra_checkpoints": [c.to_json() for c in self.extra_checkpoints],
            "equivocations": [e.to_json() for e in self.equivocations],
            "approvals_required": self.approvals_required,
            "canary": None if self.canary is None else b64encode(self.canary),
            "warnings": list(self.warnings),
            "unauthenticated": list(self.unauthenticated),
        }


def iso_time(timestamp: int) -> str:
    """POSIX seconds as UTC RFC 3339 (the decimal itself when out of range)."""
    try:
        return format_time(datetime.fromtimestamp(timestamp, tz=UTC))
    except (OverflowError, OSError, ValueError):
        return str(timestamp)


class _Stop(Exception):
    """Internal: the first failure stops the pass."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(str(failure))
        self.failure = failure


def _fail(check: str, reason: str, **where: Any) -> NoReturn:
    raise _Stop(Failure(check, reason, **where))


def _b64(h: bytes) -> str:
    return b64encode(h)


def _key_label(vkey: str) -> str:
    """``name+keyid`` of a vkey (the public key itself adds nothing to a message)."""
    name, key_id, _ = vkey.split("+", 2)
    return f"{name}+{key_id}"


# --- per-statement work (in-process or in worker processes) ------------------

#: A key range of a keyring: (vkey, first version, last version or None).
_Range = tuple[str, int, int | None]


@dataclass(frozen=True, slots=True)
class _Examined:
    """A statement whose format and signature verified, with its derived hashes."""

    statement: Statement
    text_hash: bytes
    leaf_hash: bytes
    delta: bytes
    vkey: str


@dataclass(frozen=True, slots=True)
class _Problem:
    """A statement that failed before the in-order checks could see it."""

    check: str
    reason: str
    version: int | None


class _Examiner:
    """Parses one statement note, checks its signature, expands its delta.

    Everything here depends on the statement alone (and the keyrings), so
    statements can be examined in any order and in parallel.
    """

    def __init__(self, ranges: Mapping[int, tuple[_Range, ...]]) -> None:
        self._ranges = ranges
        self._verifiers: dict[str, Verifier] = {}

    def _verifier(self, vkey: str) -> Verifier:
        verifier = self._verifiers.get(vkey)
        if verifier is None:
            verifier = self._verifiers[vkey] = Verifier.from_vkey(vkey)
        return verifier

    def examine(self, note: str) -> _Examined | _Problem:
        """Examine one statement note (never raises for bad content)."""
        try:
            size = len(note.encode("utf-8"))
        except UnicodeEncodeError:
            return _Problem(CHECK_FORMAT, "note is not valid UTF-8", None)
        if size > MAX_NOTE_BYTES:
            return _Problem(CHECK_FORMAT, f"note larger than {MAX_NOTE_BYTES} bytes", None)
        # c2sp.org/signed-note: the text ends at the last blank line.
        split = note.rfind("\n\n")
        if split < 0:
            return _Problem(CHECK_FORMAT, "note has no blank line before its signatures", None)
        text = note[: split + 1]
        try:
            statement = Statement.parse(text)
        except FormatError as e:
            return _Problem(CHECK_FORMAT, f"statement text: {e}", None)
        version = statement.version
        ranges = self._ranges.get(statement.keyring)
        if ranges is None:
            return _Problem(
                CHECK_KEYRING_USE,
                f"names keyring serial {statement.keyring}, which the bundle does not hold",
                version,
            )
        vkey = next(
            (
                v
                for v, first, last in ranges
                if first <= version and (last is None or version <= last)
            ),
            None,
        )
        if vkey is None:
            return _Problem(
                CHECK_KEYRING_USE,
                f"keyring serial {statement.keyring} has no key whose range contains {version}",
                version,
            )
        problem = self._check_signature(note[split + 2 :], text, vkey, version)
        if problem is not None:
            return problem
        data = text.encode("ascii")  # Statement.parse accepted it: ASCII only
        delta = StateDigest()
        delta.update(statement.adds, statement.removes)
        return _Examined(
            statement=statement,
            text_hash=hashlib.sha256(data).digest(),
            leaf_hash=leaf_hash(data),
            delta=delta.to_bytes(),
            vkey=vkey,
        )

    def _check_signature(self, block: str, text: str, vkey: str, version: int) -> _Problem | None:
        """verify_note's rules for one trusted key, without rescanning the text.

        :func:`signer.note.verify_note` would scan the whole note for control
        characters character by character (milliseconds per statement, tens
        of milliseconds at 10,000 changes);
        :meth:`Statement.parse` has already proven the text is printable
        ASCII lines. So only the signature block goes through
        :func:`signer.note.parse_note` (behind a one-character stand-in text,
        which leaves the block's split point unchanged: the block holds no
        blank line), then the same rules apply: lines by other keys are
        ignored, every line by the trusted key must verify, and there must
        be at least one.
        """
        verifier = self._verifier(vkey)
        try:
            signatures = parse_note("x\n\n" + block).signatures
        except NoteError as e:
            return _Problem(CHECK_SIGNATURE, f"signature lines: {e}", version)
        message = text.encode("ascii")
        found = False
        for sig in signatures:
            if sig.name != verifier.name or sig.key_id != verifier.key_id:
                continue  # c2sp.org/signed-note: ignore unknown keys
            if not verifier.verify(message, sig.signature):
                return _Problem(
                    CHECK_SIGNATURE, f"invalid signature by {_key_label(vkey)}", version
                )
            found = True
        if not found:
            return _Problem(
                CHECK_SIGNATURE,
                f"no signature by {_key_label(vkey)}, the key the keyring gives version {version}",
                version,
            )
        return None


_worker_examiner: _Examiner | None = None


def _init_worker(ranges: Mapping[int, tuple[_Range, ...]]) -> None:
    global _worker_examiner
    _worker_examiner = _Examiner(ranges)


def _examine_in_worker(note: str) -> _Examined | _Problem:
    assert _worker_examiner is not None, "worker not initialised"
    return _worker_examiner.examine(note)


def default_workers(statements: Sequence[str]) -> int:
    """Workers used when the caller does not say: 1 for small bundles, else the CPUs."""
    if sum(len(n) for n in statements) < PARALLEL_MIN_BYTES:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_DEFAULT_WORKERS))


def _pool_context() -> multiprocessing.context.BaseContext:
    # forkserver (spawn where it does not exist): never fork a process that
    # may run threads (a CLI's progress display, a test runner).
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _examine_all(
    notes: Sequence[str], ranges: Mapping[int, tuple[_Range, ...]], workers: int
) -> Iterator[_Examined | _Problem]:
    """Examine every note, yielding results in order (lazily, for early stops)."""
    if workers <= 1 or len(notes) < 2:
        examiner = _Examiner(ranges)
        for note in notes:
            yield examiner.examine(note)
        return
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=_pool_context(),
        initializer=_init_worker,
        initargs=(dict(ranges),),
    ) as pool:
        try:
            yield from pool.map(_examine_in_worker, notes, chunksize=WORKER_CHUNK)
        finally:
            # An early stop (first failure) must not wait for the rest.
            pool.shutdown(wait=True, cancel_futures=True)


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
        self.ranges: dict[int, tuple[_Range, ...]] = {
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


# --- accountability (full bundles) -------------------------------------------

_PENDING: Final = "pending"
_ACTIVE: Final = "approved"
_OFF: Final = "off"


@dataclass(slots=True)
class _EntryState:
    entry_id: int
    hash: bytes
    record: AuditRecord
    canary: bool
    opener: str
    round: int = 1
    approvers: set[str] = field(default_factory=set)
    status: str = _PENDING
    scheduled_at: str | None = None
    expire_seq: int | None = None
    expire_backed: bool = False
    listed_pos: int | None = None
    claimed_status: object = None
    pruned_seq: int | None = None


def _details_hash(record: AuditRecord) -> bytes:
    value = record.details.get("hash")
    if not isinstance(value, str):
        _fail(
            CHECK_AUDIT_RECORDS,
            f"{record.action} record has no base64 'hash'",
            audit_seq=record.seq,
        )
    try:
        return b64decode(value, length=32, what="hash")
    except FormatError as e:
        _fail(CHECK_AUDIT_RECORDS, f"{record.action} record: {e}", audit_seq=record.seq)


class _Decisions:
    """Replays the audit log's entry decisions up to a record position."""

    def __init__(
        self, records: Sequence[AuditRecord], required: int, create_seq: int | None
    ) -> None:
        self.records = records
        self.required = required
        self.create_seq = create_seq
        self.position = 0
        self.entries: dict[int, _EntryState] = {}
        self.by_hash: dict[bytes, _EntryState] = {}
        self.canary: bytes | None = None

    def advance(self, position: int) -> None:
        """Apply records ``position + 1 ..`` up to ``position`` (seq == index + 1)."""
        for record in self.records[self.position : position]:
            self._apply(record)
        self.position = max(self.position, position)

    def _apply(self, r: AuditRecord) -> None:
        if not r.action.startswith("entry."):
            return
        if r.entry_id is None:
            _fail(CHECK_AUDIT_RECORDS, f"{r.action} record names no entry", audit_seq=r.seq)
        state = self.entries.get(r.entry_id)
        if r.action == "entry.add":
            self._add(r, r.entry_id, state)
            return
        if state is None:
            _fail(
                CHECK_AUDIT_RECORDS,
                f"{r.action} record for entry {r.entry_id} precedes its entry.add record",
                audit_seq=r.seq,
            )
        if _details_hash(r) != state.hash:
            _fail(
                CHECK_AUDIT_RECORDS,
                f"{r.action} record gives entry {r.entry_id} another hash than its entry.add",
                audit_seq=r.seq,
            )
        if "status" in r.details:
            state.claimed_status = r.details["status"]
        if r.action == "entry.approve":
            counted = (
                state.status == _PENDING
                and r.details.get("round") == state.round
                and r.actor != state.opener
                and not r.actor.startswith(SYSTEM_ACTOR_PREFIX)
            )
            if counted:
                state.approvers.add(r.actor)
                if len(state.approvers) >= self.required:
                    state.status = _ACTIVE
        elif r.action == "entry.reinstate":
            # A new approval round opened by the reinstating analyst
            # (blocklist.store.entries.reinstate): four-eyes again.
            state.round += 1
            state.opener = r.actor
            state.approvers = set()
            state.status = _PENDING
            state.scheduled_at = None
        elif r.action == "entry.schedule_expiry":
            at = r.details.get("at")
            state.scheduled_at = at if isinstance(at, str) else None
        elif r.action == "entry.expire":
            state.status = _OFF
            state.expire_seq = r.seq
            state.expire_backed = self._expiry_backed(r, state)
        elif r.action == "entry.prune_plaintext":
            # Retention erases plaintext only of entries taken off the list.
            if state.status != _OFF or state.pruned_seq is not None:
                _fail(
                    CHECK_AUDIT_RECORDS,
                    f"entry.prune_plaintext record for entry {r.entry_id}, which is "
                    + ("not off the list" if state.status != _OFF else "already pruned"),
                    audit_seq=r.seq,
                    entry_id=r.entry_id,
                )
            state.pruned_seq = r.seq
        elif r.action == "entry.restore_plaintext":
            if state.pruned_seq is None:
                _fail(
                    CHECK_AUDIT_RECORDS,
                    f"entry.restore_plaintext record for entry {r.entry_id}, whose plaintext "
                    "was not pruned",
                    audit_seq=r.seq,
                    entry_id=r.entry_id,
                )
            state.pruned_seq = None

    def _add(self, r: AuditRecord, entry_id: int, state: _EntryState | None) -> None:
        if state is not None:
            _fail(CHECK_AUDIT_RECORDS, f"entry {entry_id} is added twice", audit_seq=r.seq)
        h = _details_hash(r)
        if h in self.by_hash:
            other = self.by_hash[h].entry_id
            _fail(
                CHECK_AUDIT_RECORDS,
                f"entry {entry_id} has the hash of entry {other} ({_b64(h)})",
                audit_seq=r.seq,
            )
        canary = (
            r.actor == CANARY_ACTOR
            and r.details.get("canary") is True
            and self.canary is None
            and self.create_seq is not None
            and r.seq == self.create_seq + 1
        )
        at = r.details.get("expires_at")
        state = _EntryState(
            entry_id=entry_id,
            hash=h,
            record=r,
            canary=canary,
            opener=r.actor,
            scheduled_at=at if isinstance(at, str) else None,
            claimed_status=r.details.get("status"),
        )
        if canary:
            # blocklist.store.lists.create_list: the canary is approved by
            # the system in the list's creation transaction.
            state.status = _ACTIVE
            self.canary = h
        self.entries[entry_id] = state
        self.by_hash[h] = state

    @staticmethod
    def _expiry_backed(r: AuditRecord, state: _EntryState) -> bool:
        if not r.actor.startswith(SYSTEM_ACTOR_PREFIX):
            return True  # an analyst's own decision, logged with its reason
        at = r.details.get("at")
        if state.scheduled_at is None or at != state.scheduled_at:
            return False
        try:
            due = parse_time(state.scheduled_at)
        except FormatError:
            return False
        return r.time >= due

    def check_addition(self, version: int, h: bytes, position: int) -> None:
        state = self.by_hash.get(h)
        if state is None:
            _fail(
                CHECK_ADDITION,
                f"adds {_b64(h)}, but no entry.add record for it precedes the version's "
                f"audit head (record {position})",
                version=version,
            )
        if state.status == _PENDING:
            _fail(
                CHECK_ADDITION,
                f"adds {_b64(h)} (entry {state.entry_id}), which had {len(state.approvers)} of "
                f"{self.required} required approval(s) by analysts other than {state.opener} "
                f"(round {state.round}) at the version's audit head (record {position})",
                version=version,
                entry_id=state.entry_id,
            )
        if state.status == _OFF:
            _fail(
                CHECK_ADDITION,
                f"adds {_b64(h)} (entry {state.entry_id}), which record {state.expire_seq} "
                "took off and nothing re-approved",
                version=version,
                entry_id=state.entry_id,
            )
        state.listed_pos = position

    def check_removal(self, version: int, h: bytes, position: int) -> None:
        state = self.by_hash.get(h)
        if state is None:
            _fail(
                CHECK_REMOVAL,
                f"removes {_b64(h)}, which no entry.add record names",
                version=version,
            )
        listed = state.listed_pos if state.listed_pos is not None else 0
        if state.status == _ACTIVE or state.expire_seq is None or state.expire_seq <= listed:
            _fail(
                CHECK_REMOVAL,
                f"removes {_b64(h)} (entry {state.entry_id}) with no expiry record after it "
                f"was listed (audit record {listed}) up to the version's head (record {position})",
                version=version,
                entry_id=state.entry_id,
            )
        if not state.expire_backed:
            _fail(
                CHECK_REMOVAL,
                f"removes {_b64(h)} (entry {state.entry_id}) on the strength of record "
                f"{state.expire_seq}, a system expiry that no analyst scheduled",
                version=version,
                entry_id=state.entry_id,
            )
        state.listed_pos = None


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
        self.positions: dict[bytes, int] = {}
        self.decisions: _Decisions | None = None

    # -- driver --

    def run(self) -> AuditReport:
        report = self.report
        try:
            self._bundle_fields()
            self._keyrings()
            if self.bundle.is_full:
                self._audit_log()
            self._statements()
            latest = self._checkpoints()
            if self.bundle.is_full:
                self._entries()
        except _Stop as stop:
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
            _fail(CHECK_BUNDLE, f"origin {b.origin!r}, pinned {self.pinned_origin!r}")
        if b.approvals_required not in (1, 2):
            # DESIGN.md, four-eyes: a list requires 1 or 2 approvals.
            _fail(CHECK_BUNDLE, f"approvals_required {b.approvals_required} is not 1 or 2")
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
            _fail(CHECK_KEYRING, "the bundle holds no keyring", keyring_serial=1)
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
                _fail(CHECK_KEYRING, str(e), keyring_serial=i + 1)
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

    def _audit_log(self) -> None:
        records = self.bundle.audit_log or ()
        head = AUDIT_ZERO
        positions = {AUDIT_ZERO: 0}
        for i, record in enumerate(records):
            try:
                head = verify_chain([record], prev=head, first_seq=i + 1)
            except AuditChainError as e:
                _fail(CHECK_AUDIT_CHAIN, str(e), audit_seq=record.seq)
            if record.list_name != self.bundle.list_name:
                _fail(
                    CHECK_AUDIT_RECORDS,
                    f"record of list {record.list_name!r} in the bundle of "
                    f"{self.bundle.list_name!r}",
                    audit_seq=record.seq,
                )
            positions[head] = record.seq
            self.report.counts.audit_records += 1
        self.positions = positions
        creates = [r for r in records if r.action == "list.create"]
        required = self.bundle.approvals_required
        create_seq: int | None = None
        if len(creates) > 1:
            _fail(CHECK_AUDIT_RECORDS, "the list is created twice", audit_seq=creates[1].seq)
        if creates:
            create = creates[0]
            create_seq = create.seq
            claimed = create.details.get("approvals_required")
            if claimed != required:
                _fail(
                    CHECK_AUDIT_RECORDS,
                    f"the bundle says approvals_required {required}, the list.create record "
                    f"says {claimed!r}",
                    audit_seq=create.seq,
                )
            for key, value in (("name", self.bundle.list_name), ("origin", self.bundle.origin)):
                if key in create.details and create.details[key] != value:
                    _fail(
                        CHECK_AUDIT_RECORDS,
                        f"the list.create record gives {key} {create.details[key]!r}, "
                        f"the bundle {value!r}",
                        audit_seq=create.seq,
                    )
            self.report.approvals_required = required
        else:
            self.report.warn(
                "no list.create record: approvals_required comes from the bundle, unauthenticated"
            )
        self.decisions = _Decisions(records, required, create_seq)
        self._global_log(records)

    def _global_log(self, records: Sequence[AuditRecord]) -> None:
        """Check the global chain and every global head the list's chain recorded."""
        heads = [r for r in records if r.action == GLOBAL_HEAD_ACTION]
        global_log = self.bundle.global_log
        if global_log is None:
            if heads:
                _fail(
                    CHECK_GLOBAL_HEAD,
                    "the list's audit log records global heads, but the bundle carries no "
                    "global_log",
                    audit_seq=heads[0].seq,
                )
            self.report.warn(
                "the bundle carries no global audit records (a server before issue 12): "
                "who minted which token is not verified"
            )
            return
        chain = AUDIT_ZERO
        after: dict[int, bytes] = {}
        counts = self.report.counts
        for i, record in enumerate(global_log):
            try:
                chain = verify_chain([record], prev=chain, first_seq=i + 1)
            except AuditChainError as e:
                _fail(CHECK_GLOBAL_CHAIN, str(e), global_seq=record.seq)
            if record.list_name is not None:
                _fail(
                    CHECK_GLOBAL_CHAIN,
                    f"a global record names list {record.list_name!r}",
                    global_seq=record.seq,
                )
            after[record.seq] = chain
            counts.global_records += 1
        last = 0
        for r in heads:
            seq, digest = r.details.get("seq"), r.details.get("hash")
            if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(digest, str):
                _fail(CHECK_GLOBAL_HEAD, "malformed global.head record", audit_seq=r.seq)
            try:
                claimed = b64decode(digest, length=32, what="hash")
            except FormatError as e:
                _fail(CHECK_GLOBAL_HEAD, f"global.head record: {e}", audit_seq=r.seq)
            if seq < last:
                _fail(
                    CHECK_GLOBAL_HEAD,
                    f"records global head {seq} after {last}: the global chain moved back",
                    audit_seq=r.seq,
                )
            if seq not in after:
                _fail(
                    CHECK_GLOBAL_HEAD,
                    f"records global head {seq}, the bundle's global log has "
                    f"{len(global_log)} record(s)",
                    audit_seq=r.seq,
                )
            if after[seq] != claimed:
                _fail(
                    CHECK_GLOBAL_HEAD,
                    f"records global head {_b64(claimed)} after global record {seq}, the global "
                    f"log gives {_b64(after[seq])}: the global records were rewritten",
                    audit_seq=r.seq,
                    global_seq=seq,
                )
            last = seq
        counts.global_committed = last
        if len(global_log) > last:
            self.report.warn(
                f"{len(global_log) - last} global audit record(s) after the last recorded head "
                "are not committed by a statement yet (they will be at the next publish)"
            )

    # -- 3. statements --

    def _statements(self) -> None:
        assert self.table is not None
        table = self.table
        report = self.report
        counts = report.counts
        notes = self.bundle.statements
        current: set[bytes] = set()
        vector = np.zeros(VECTOR_SIZE // 2, dtype=_LANE)
        previous = ZERO_HASH
        last_serial = 0
        last_time: datetime | None = None
        last_position = 0
        decisions = self.decisions
        future = self.now + FUTURE_SKEW
        results = _examine_all(notes, table.ranges, self.workers)
        try:
            for index, result in enumerate(results):
                n = index + 1
                if isinstance(result, _Problem):
                    _fail(result.check, result.reason, version=result.version or n)
                st = result.statement
                # No gap, duplicate or reordering: position N holds version N.
                if st.version != n:
                    _fail(
                        CHECK_NUMBERING,
                        f"position {n} of the bundle holds version {st.version} (a version is "
                        "missing, repeated or out of order)",
                        version=n,
                    )
                if st.origin != self.bundle.origin:
                    # Mix-and-match: a statement of another list.
                    _fail(
                        CHECK_ORIGIN,
                        f"origin {st.origin!r}, expected {self.bundle.origin!r}",
                        version=n,
                    )
                if st.previous != previous:
                    _fail(
                        CHECK_PREVIOUS,
                        f"previous is {_b64(st.previous)}, but version {n - 1}'s text hashes to "
                        f"{_b64(previous)}",
                        version=n,
                    )
                self._keyring_use(st, result.vkey, last_serial)
                last_serial = st.keyring
                # Replay (DESIGN.md item 2): C-level set operations only.
                if not current.isdisjoint(st.adds):
                    h = next(h for h in st.adds if h in current)
                    _fail(CHECK_DELTA, f"adds {_b64(h)}, which is already listed", version=n)
                if not current.issuperset(st.removes):
                    h = next(h for h in st.removes if h not in current)
                    _fail(CHECK_DELTA, f"removes {_b64(h)}, which is not listed", version=n)
                current.difference_update(st.removes)
                current.update(st.adds)
                if st.count != len(current):
                    _fail(
                        CHECK_COUNT,
                        f"count {st.count}, but the replayed list has {len(current)} entries",
                        version=n,
                    )
                # LtHash16 vectors add lane-wise mod 2^16 (uint16 wraps).
                vector += np.frombuffer(result.delta, dtype=_LANE)
                if StateDigest.from_bytes(vector.tobytes()).digest() != st.state:
                    _fail(
                        CHECK_STATE,
                        "state digest does not match the replayed list",
                        version=n,
                    )
                if decisions is not None:
                    last_position = self._accountability(st, decisions, last_position)
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
        if decisions is not None:
            report.canary = decisions.canary

    def _keyring_use(self, st: Statement, vkey: str, last_serial: int) -> None:
        assert self.table is not None
        n, serial = st.version, st.keyring
        if serial < last_serial:
            _fail(
                CHECK_KEYRING_USE,
                f"names keyring serial {serial} after version {n - 1} named {last_serial} "
                "(the keyring in force went back)",
                version=n,
            )
        keyring = self.table.keyrings[serial - 1]
        if st.time >= keyring.expires:
            _fail(
                CHECK_KEYRING_USE,
                f"signed at {format_time(st.time)} under keyring serial {serial}, which expired "
                f"at {format_time(keyring.expires)}",
                version=n,
            )
        span = self.table.allowed_from[serial].get(vkey)
        if span is None or not span.contains(n):
            closing = self.table.closing_serial(vkey, n, serial)
            _fail(
                CHECK_KEYRING_USE,
                f"key {_key_label(vkey)} may not sign version {n}: keyring serial {closing} "
                "no longer gives it that version (rotated out)",
                version=n,
            )

    def _accountability(self, st: Statement, decisions: _Decisions, last_position: int) -> int:
        n = st.version
        position = self.positions.get(st.audit)
        if position is None:
            _fail(
                CHECK_AUDIT_HEAD,
                f"audit line {_b64(st.audit)} is not the audit log's head after any record",
                version=n,
            )
        if position < last_position:
            _fail(
                CHECK_AUDIT_HEAD,
                f"audit head is record {position}, before version {n - 1}'s record "
                f"{last_position} (the log went back)",
                version=n,
            )
        decisions.advance(position)
        counts = self.report.counts
        for h in st.removes:
            decisions.check_removal(n, h, position)
        for h in st.adds:
            decisions.check_addition(n, h, position)
        counts.backed_additions += len(st.adds)
        counts.backed_removals += len(st.removes)
        return position

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
                    f"key {_key_label(vkey)} may sign trees of size {span.first}..{last} only"
                )
                continue
            try:
                timestamp = verify_cosignature(note, verifier)
            except NoteError as e:
                problems.append(f"no valid timestamped cosignature by {_key_label(vkey)}: {e}")
                continue
            when = datetime.fromtimestamp(timestamp, tz=UTC) if timestamp < 2**37 else None
            if when is None or not any(when < k.expires for k in table.open_in[vkey]):
                problems.append(
                    f"timestamped {iso_time(timestamp)}, after every keyring that opened key "
                    f"{_key_label(vkey)} had expired"
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
            key=_key_label(v.vkey),
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
                _fail(CHECK_CHECKPOINT, result, checkpoint=f"bundle[{i}]")
            if result.checkpoint.size > size:
                _fail(
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
            _fail(
                CHECK_CHECKPOINT,
                f"no checkpoint of the bundle's size {size} signed by a key open in the latest "
                f"keyring (serial {self.table.latest.serial})",
            )
        _, latest_index, latest = max(candidates, key=lambda c: (c[0], c[1]))
        if latest.checkpoint.root != root:
            _fail(
                CHECK_CHECKPOINT,
                f"root {_b64(latest.checkpoint.root)} is not the Merkle root "
                f"{_b64(root)} of the bundle's {size} statements",
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
                _fail(
                    CHECK_CHECKPOINT,
                    f"root at size {v.checkpoint.size} differs from the log's "
                    f"{_b64(proof.log_root)} (equivocation: both are signed)",
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

    # -- 5. entries --

    def _entries(self) -> None:
        decisions = self.decisions
        assert decisions is not None
        decisions.advance(len(decisions.records))
        entries = self.bundle.entries or ()
        seen_ids: set[int] = set()
        for e in entries:
            if e.id in seen_ids:
                _fail(CHECK_ENTRIES, "entry listed twice", entry_id=e.id)
            seen_ids.add(e.id)
            self._entry(e, decisions.entries.get(e.id))
            self.report.counts.entries += 1
        missing = sorted(decisions.entries.keys() - seen_ids)
        if missing:
            _fail(
                CHECK_ENTRIES,
                "has audit records but is missing from the bundle's entries",
                entry_id=missing[0],
            )

    def _entry(self, e: BundleEntry, state: _EntryState | None) -> None:
        def bad(reason: str) -> NoReturn:
            _fail(CHECK_ENTRIES, reason, entry_id=e.id)

        if state is None:
            bad("no entry.add record names this entry")
        if e.expression is None or e.url is None:
            if state.pruned_seq is None:
                bad("has no plaintext, but no entry.prune_plaintext record in force names it")
        elif state.pruned_seq is not None:
            bad(
                f"carries plaintext that audit record {state.pruned_seq} says retention pruned "
                "(the server kept what it recorded as erased)"
            )
        elif hashlib.sha256(e.expression.encode("utf-8")).digest() != e.hash:
            bad(f"expression does not hash (SHA-256) to the entry's hash {_b64(e.hash)}")
        if e.hash != state.hash:
            bad(f"hash {_b64(e.hash)} differs from its entry.add record's {_b64(state.hash)}")
        add = state.record
        fields: Iterable[tuple[str, object, object]] = (
            ("created_by", e.created_by, add.actor),
            ("scope", e.scope, add.details.get("scope")),
            ("reason", e.reason, add.details.get("reason")),
            ("reference", e.reference, add.details.get("reference")),
            ("category", e.category, add.details.get("category")),
            ("status", e.status, state.claimed_status),
        )
        for name, value, recorded in fields:
            if value != recorded:
                bad(f"{name} {value!r} differs from the audit log's {recorded!r}")
        try:
            created = datetime.fromisoformat(e.created_at)
        except ValueError:
            bad(f"created_at {e.created_at[:40]!r} is not an RFC 3339 time")
        if created.tzinfo is None:
            bad("created_at has no time zone")
        if created.astimezone(UTC).replace(microsecond=0) != add.time:
            bad(
                f"created_at {e.created_at} differs from the entry.add record's "
                f"{format_time(add.time)}"
            )
        if e.expression is None or e.url is None:
            self.report.counts.entries_pruned += 1
            return
        try:
            canonical = canonical_expression(e.url, e.scope)
        except BlocklistError as err:
            bad(f"url does not canonicalise: {err}")
        if canonical != e.expression:
            bad(f"url canonicalises to another expression at scope {e.scope!r}")

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
                    f"root at size {cp.size} differs from the log's {_b64(proof.log_root)} "
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
