"""The auditor's report: stable check identifiers and what a run found.

:func:`clients.audit.verify.verify_bundle` returns an :class:`AuditReport`:
either everything verified, or the *first* :class:`Failure` with its check,
where it is (version, keyring serial, audit record, checkpoint, entry) and
why. The check identifiers below are part of the auditor's interface (the
``--json`` output of ``cleanfeed audit verify``, docs/audit.md): extend,
never rename.

:class:`CheckFailed` and :func:`fail` are how the checks of this package
stop the pass at the first failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, NoReturn

from blocklist.encoding import b64encode, format_time

__all__ = [
    "CHECKS",
    "AuditReport",
    "CheckFailed",
    "CheckpointResult",
    "Counts",
    "EquivocationProof",
    "Failure",
    "fail",
    "iso_time",
    "key_label",
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
#: Issue 15 item 6: approvals come from distinct, enabled persons holding
#: the analyst role (clients.audit.persons).
CHECK_PERSONS: Final = "audit.persons"
CHECK_ADDITION: Final = "audit.addition"
CHECK_REMOVAL: Final = "audit.removal"
CHECK_ENTRIES: Final = "entries"
#: Safeguard decisions (issue 16): guard approvals by an eligible
#: administrator with a justification, referrals, overrides with a reason.
CHECK_SAFEGUARDS: Final = "audit.safeguards"
#: Issue 17: every appeal decision is by an eligible reviewer (not the
#: entry's creator or approver); every suspension and every removal with
#: reason code ``appeal`` follows such a decision.
CHECK_APPEAL: Final = "audit.appeal"

#: Every check identifier, in the order the checks run.
CHECKS: Final = (
    CHECK_BUNDLE,
    CHECK_KEYRING,
    CHECK_AUDIT_CHAIN,
    CHECK_AUDIT_RECORDS,
    CHECK_GLOBAL_CHAIN,
    CHECK_GLOBAL_HEAD,
    CHECK_PERSONS,
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
    CHECK_SAFEGUARDS,
    CHECK_APPEAL,
    CHECK_CHECKPOINT,
    CHECK_ENTRIES,
    CHECK_EXTRA,
)

#: Most warnings kept in a report (a bundle with a million odd timestamps
#: must not produce a million lines).
MAX_WARNINGS: Final = 50


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
    #: Approvals checked against the persons' accounts (issue 15, ``audit.persons``).
    person_approvals: int = 0
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


class CheckFailed(Exception):
    """The first failure: it stops the verification pass (see :func:`fail`)."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(str(failure))
        self.failure = failure


def fail(check: str, reason: str, **where: Any) -> NoReturn:
    """Stop the pass with a :class:`Failure` of ``check`` at ``where``.

    Raises:
        CheckFailed: always.
    """
    raise CheckFailed(Failure(check, reason, **where))


def key_label(vkey: str) -> str:
    """``name+keyid`` of a vkey (the public key itself adds nothing to a message)."""
    name, key_id, _ = vkey.split("+", 2)
    return f"{name}+{key_id}"
