"""The audit bundle: one self-contained JSON document per list.

docs/architecture.md, "Wire details not fixed by DESIGN.md" fixes the format
(``GET /v1/lists/{list}/audit/bundle[?full=true]``, ``cleanfeed audit
fetch``)::

    {"format": "cleanfeed-bundle/v1", "kind": "hash-only" | "full",
     "list", "origin", "approvals_required",
     "keyrings": [note…], "statements": [note…], "checkpoints": [note…],
     "audit_log": [record…],   (full only)
     "global_log": [record…],  (full only; absent from bundles of older servers)
     "entries": [entry…]}      (full only)

with audit records ``{"seq", "time", "actor", "action", "list", "entry",
"details", "hash"}`` and entries ``{"id", "hash", "expression", "url",
"scope", "reason", "reference", "category", "created_by", "created_at",
"status"}``, hashes in base64. ``expression`` and ``url`` are both null for
an entry whose plaintext the server's retention pruned (its
``entry.prune_plaintext`` audit record says when). ``global_log`` is the
deployment's global audit chain (token management; ``list`` null in every
record), whose heads the list's ``global.head`` records commit to (issue
12, item 13); a full bundle saved from a server before that change has no
such key, and verifies only if its audit log records no global head.

This module only reads and writes that document; it checks its *shape*
strictly (every key present, no unknown or duplicate key, exact types,
canonical base64, no floats, NaN or huge documents) so that whatever loads
has one meaning. Whether the content is *true* (signatures, chain, replay,
decisions) is :mod:`clients.audit.verify`'s job.

Strictness is deliberate: a bundle is evidence. A key the auditor does not
understand is refused rather than ignored, so nothing in the file escapes
the verification silently (a new bundle format gets a new ``format`` value).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from blocklist.auditlog import AuditRecord
from blocklist.encoding import b64decode, b64encode, format_time, parse_time
from blocklist.errors import FormatError
from clients.common.files import write_atomic
from clients.errors import BundleError, BundleTooLarge

__all__ = [
    "BUNDLE_FORMAT",
    "KIND_FULL",
    "KIND_HASH_ONLY",
    "MAX_BUNDLE_BYTES",
    "Bundle",
    "BundleEntry",
    "dumps",
    "from_json",
    "load",
    "loads",
    "record_from_json",
    "record_to_json",
    "save",
    "save_bytes",
]

#: The ``format`` value this module reads and writes.
BUNDLE_FORMAT: Final = "cleanfeed-bundle/v1"
#: A bundle with hashes only: keyrings, statements, checkpoints.
KIND_HASH_ONLY: Final = "hash-only"
#: A bundle that also carries the audit log and the entries with plaintext.
KIND_FULL: Final = "full"

#: Largest bundle read or downloaded, in bytes. ``json`` holds the whole
#: document in memory (several times its size once parsed), so this bounds
#: the auditor's memory: 2 GiB covers about 40 million changes of history
#: (a hash-only statement line is about 52 bytes). Larger archives pass an
#: explicit ``max_bytes``.
MAX_BUNDLE_BYTES: Final = 2 * 1024**3

#: Mode of saved bundles: a full bundle holds plaintext expressions (and the
#: analysts' reasons), so only the owner may read it (DESIGN.md item 7).
BUNDLE_FILE_MODE: Final = 0o600

_TOP_KEYS: Final = frozenset(
    {
        "format",
        "kind",
        "list",
        "origin",
        "approvals_required",
        "keyrings",
        "statements",
        "checkpoints",
    }
)
_FULL_KEYS: Final = frozenset({"audit_log", "entries"})
#: Full-bundle keys a bundle of an older server may lack.
_OPTIONAL_FULL_KEYS: Final = frozenset({"global_log"})
_RECORD_KEYS: Final = frozenset(
    {"seq", "time", "actor", "action", "list", "entry", "details", "hash"}
)
_ENTRY_KEYS: Final = frozenset(
    {
        "id",
        "hash",
        "expression",
        "url",
        "scope",
        "reason",
        "reference",
        "category",
        "created_by",
        "created_at",
        "status",
    }
)


@dataclass(frozen=True, slots=True)
class BundleEntry:
    """One entry of a full bundle: the decision behind a hash, with plaintext.

    ``created_at`` is kept as served (RFC 3339); the verifier compares it
    with the time of the entry's ``entry.add`` audit record. ``expression``
    and ``url`` are ``None`` together once retention pruned the plaintext.
    """

    id: int
    hash: bytes
    expression: str | None
    url: str | None
    scope: str
    reason: str
    reference: str | None
    category: str | None
    created_by: str
    created_at: str
    status: str

    def to_json(self) -> dict[str, Any]:
        """The entry as a JSON object (hash in base64)."""
        return {
            "id": self.id,
            "hash": b64encode(self.hash),
            "expression": self.expression,
            "url": self.url,
            "scope": self.scope,
            "reason": self.reason,
            "reference": self.reference,
            "category": self.category,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "status": self.status,
        }


@dataclass(frozen=True, slots=True)
class Bundle:
    """A loaded bundle (shape checked, content not yet verified).

    ``audit_log`` and ``entries`` are ``None`` exactly for hash-only bundles;
    ``global_log`` is ``None`` for those and for full bundles of servers that
    did not export the global chain yet.
    """

    kind: str
    list_name: str
    origin: str
    approvals_required: int
    keyrings: tuple[str, ...]
    statements: tuple[str, ...]
    checkpoints: tuple[str, ...]
    audit_log: tuple[AuditRecord, ...] | None = None
    entries: tuple[BundleEntry, ...] | None = None
    global_log: tuple[AuditRecord, ...] | None = None

    def __post_init__(self) -> None:
        """Check the invariants a loaded bundle always satisfies.

        Raises:
            BundleError: an unknown kind, or full-only parts present in a
                hash-only bundle (or missing from a full one).
        """
        if self.kind not in (KIND_HASH_ONLY, KIND_FULL):
            raise BundleError(f"unknown bundle kind {self.kind[:40]!r}")
        full_parts = (self.audit_log is not None, self.entries is not None)
        if self.kind == KIND_FULL and full_parts != (True, True):
            raise BundleError("a full bundle needs 'audit_log' and 'entries'")
        if self.kind == KIND_HASH_ONLY and (any(full_parts) or self.global_log is not None):
            # DESIGN.md item 7: hash-only bundles never contain plaintext.
            raise BundleError(
                "a hash-only bundle must not carry 'audit_log', 'global_log' or 'entries'"
            )

    @property
    def is_full(self) -> bool:
        """Whether the bundle carries the audit log and the entries."""
        return self.kind == KIND_FULL

    def to_json(self) -> dict[str, Any]:
        """The bundle as the JSON object of the format (hashes in base64)."""
        doc: dict[str, Any] = {
            "format": BUNDLE_FORMAT,
            "kind": self.kind,
            "list": self.list_name,
            "origin": self.origin,
            "approvals_required": self.approvals_required,
            "keyrings": list(self.keyrings),
            "statements": list(self.statements),
            "checkpoints": list(self.checkpoints),
        }
        if self.audit_log is not None:
            doc["audit_log"] = [record_to_json(r) for r in self.audit_log]
        if self.global_log is not None:
            doc["global_log"] = [record_to_json(r) for r in self.global_log]
        if self.entries is not None:
            doc["entries"] = [e.to_json() for e in self.entries]
        return doc


# --- JSON reading --------------------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            # json keeps the last of two equal keys; a second value hidden
            # behind the first is exactly what an auditor must not miss.
            raise BundleError(f"duplicate JSON key {key[:40]!r}")
        obj[key] = value
    return obj


def _no_floats(text: str) -> Any:
    raise BundleError(f"bundle holds a non-integer number {text[:24]!r}")


def _no_constants(text: str) -> Any:
    raise BundleError(f"bundle holds {text}, which is not JSON")


def _keys(
    obj: Mapping[str, Any],
    required: frozenset[str],
    where: str,
    optional: frozenset[str] = frozenset(),
) -> None:
    missing = required - obj.keys()
    if missing:
        raise BundleError(f"{where}: missing {', '.join(sorted(missing))}")
    unknown = obj.keys() - required - optional
    if unknown:
        raise BundleError(f"{where}: unknown key(s) {', '.join(sorted(unknown))[:80]}")


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise BundleError(f"{where}: expected a string")
    return value


def _opt_str(value: Any, where: str) -> str | None:
    return None if value is None else _str(value, where)


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BundleError(f"{where}: expected an integer")
    return value


def _opt_int(value: Any, where: str) -> int | None:
    return None if value is None else _int(value, where)


def _hash(value: Any, where: str) -> bytes:
    try:
        return b64decode(_str(value, where), length=32, what=where)
    except FormatError as e:
        raise BundleError(str(e)) from e


def _notes(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise BundleError(f"{where}: expected a list of notes")
    return tuple(_str(v, f"{where}[{i}]") for i, v in enumerate(value))


def _objects(value: Any, where: str) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        raise BundleError(f"{where}: expected a list")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise BundleError(f"{where}[{i}]: expected an object")
    return value


def record_from_json(obj: Mapping[str, Any], where: str = "audit record") -> AuditRecord:
    """Read one audit record of a bundle (``hash`` required, base64).

    Raises:
        BundleError: a missing or unknown key, a wrong type, a time that is
            not UTC RFC 3339 with seconds and ``Z``, or a bad hash.
    """
    _keys(obj, _RECORD_KEYS, where)
    details = obj["details"]
    if not isinstance(details, dict):
        raise BundleError(f"{where}: 'details' must be an object")
    try:
        when = parse_time(_str(obj["time"], f"{where}.time"), what=f"{where}.time")
    except FormatError as e:
        raise BundleError(str(e)) from e
    return AuditRecord(
        seq=_int(obj["seq"], f"{where}.seq"),
        time=when,
        actor=_str(obj["actor"], f"{where}.actor"),
        action=_str(obj["action"], f"{where}.action"),
        list_name=_opt_str(obj["list"], f"{where}.list"),
        entry_id=_opt_int(obj["entry"], f"{where}.entry"),
        details=details,
        hash=_hash(obj["hash"], f"{where}.hash"),
    )


def record_to_json(record: AuditRecord) -> dict[str, Any]:
    """Write one audit record as in a bundle (``hash`` in base64, may be null)."""
    return {
        "seq": record.seq,
        "time": format_time(record.time),
        "actor": record.actor,
        "action": record.action,
        "list": record.list_name,
        "entry": record.entry_id,
        "details": dict(record.details),
        "hash": None if record.hash is None else b64encode(record.hash),
    }


def _entry_from_json(obj: Mapping[str, Any], where: str) -> BundleEntry:
    _keys(obj, _ENTRY_KEYS, where)
    expression = _opt_str(obj["expression"], f"{where}.expression")
    url = _opt_str(obj["url"], f"{where}.url")
    if (expression is None) != (url is None):
        raise BundleError(f"{where}: expression and url are null together (pruned) or not at all")
    return BundleEntry(
        id=_int(obj["id"], f"{where}.id"),
        hash=_hash(obj["hash"], f"{where}.hash"),
        expression=expression,
        url=url,
        scope=_str(obj["scope"], f"{where}.scope"),
        reason=_str(obj["reason"], f"{where}.reason"),
        reference=_opt_str(obj["reference"], f"{where}.reference"),
        category=_opt_str(obj["category"], f"{where}.category"),
        created_by=_str(obj["created_by"], f"{where}.created_by"),
        created_at=_str(obj["created_at"], f"{where}.created_at"),
        status=_str(obj["status"], f"{where}.status"),
    )


def from_json(doc: Any) -> Bundle:
    """Build a :class:`Bundle` from a parsed JSON document.

    Raises:
        BundleError: the document is not a ``cleanfeed-bundle/v1`` bundle.
    """
    if not isinstance(doc, dict):
        raise BundleError("a bundle is a JSON object")
    if doc.get("format") != BUNDLE_FORMAT:
        raise BundleError(
            f"not a {BUNDLE_FORMAT} document (format {str(doc.get('format'))[:40]!r})"
        )
    kind = _str(doc.get("kind"), "kind")
    if kind not in (KIND_HASH_ONLY, KIND_FULL):
        raise BundleError(f"unknown bundle kind {kind[:40]!r}")
    full = kind == KIND_FULL
    required = _TOP_KEYS | _FULL_KEYS if full else _TOP_KEYS
    _keys(doc, required, "bundle", _OPTIONAL_FULL_KEYS if full else frozenset())
    records: tuple[AuditRecord, ...] | None = None
    entries: tuple[BundleEntry, ...] | None = None
    global_records: tuple[AuditRecord, ...] | None = None
    if full:
        records = tuple(
            record_from_json(obj, f"audit_log[{i}]")
            for i, obj in enumerate(_objects(doc["audit_log"], "audit_log"))
        )
        if "global_log" in doc:
            global_records = tuple(
                record_from_json(obj, f"global_log[{i}]")
                for i, obj in enumerate(_objects(doc["global_log"], "global_log"))
            )
        entries = tuple(
            _entry_from_json(obj, f"entries[{i}]")
            for i, obj in enumerate(_objects(doc["entries"], "entries"))
        )
    return Bundle(
        kind=kind,
        list_name=_str(doc["list"], "list"),
        origin=_str(doc["origin"], "origin"),
        approvals_required=_int(doc["approvals_required"], "approvals_required"),
        keyrings=_notes(doc["keyrings"], "keyrings"),
        statements=_notes(doc["statements"], "statements"),
        checkpoints=_notes(doc["checkpoints"], "checkpoints"),
        audit_log=records,
        entries=entries,
        global_log=global_records,
    )


def loads(data: bytes | str, *, max_bytes: int = MAX_BUNDLE_BYTES) -> Bundle:
    """Parse a bundle document.

    Raises:
        BundleTooLarge: more than ``max_bytes``.
        BundleError: not UTF-8, not JSON (floats, NaN, duplicate keys and
            nesting too deep included), or not a bundle.
    """
    if len(data) > max_bytes:
        raise BundleTooLarge(f"bundle exceeds the cap of {max_bytes} bytes")
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise BundleError(f"bundle is not UTF-8 (byte {e.start})") from e
    else:
        text = data
    try:
        doc = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_float=_no_floats,
            parse_constant=_no_constants,
        )
    except RecursionError as e:
        raise BundleError("bundle JSON nests too deeply") from e
    except ValueError as e:  # json.JSONDecodeError, or an integer over 4300 digits
        raise BundleError(f"bundle is not valid JSON: {str(e)[:120]}") from e
    return from_json(doc)


def load(path: Path | str, *, max_bytes: int = MAX_BUNDLE_BYTES) -> Bundle:
    """Read and parse a bundle file.

    Raises:
        BundleTooLarge: the file exceeds ``max_bytes`` (checked before
            reading it).
        BundleError: see :func:`loads`.
        OSError: the file cannot be read.
    """
    path = Path(path)
    with path.open("rb") as f:
        size = f.seek(0, 2)
        if size > max_bytes:
            raise BundleTooLarge(f"{path}: {size} bytes exceed the cap of {max_bytes} bytes")
        f.seek(0)
        data = f.read(max_bytes + 1)
    return loads(data, max_bytes=max_bytes)


def dumps(bundle: Bundle) -> bytes:
    """Serialise a bundle (UTF-8 JSON, compact, key order of the format)."""
    text = json.dumps(bundle.to_json(), separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def save(bundle: Bundle, path: Path | str) -> None:
    """Write a bundle atomically, readable by its owner only.

    Raises:
        OSError: the file cannot be written (the previous one is untouched).
    """
    write_atomic(Path(path), dumps(bundle), mode=BUNDLE_FILE_MODE)


def save_bytes(data: bytes, path: Path | str) -> None:
    """Write bundle bytes exactly as received, atomically, owner-only.

    Raises:
        OSError: the file cannot be written (the previous one is untouched).
    """
    write_atomic(Path(path), data, mode=BUNDLE_FILE_MODE)
