"""Proofs about one entry: when it was listed and unlisted, and whether at a date.

``cleanfeed audit prove --bundle FILE (--hash H | --url URL) [--at DATE]``
answers, from a bundle alone:

- in which versions (and at which statement ``time``) a hash was added and
  removed; for a URL, any of its Safe Browsing lookup expressions
  (:func:`blocklist.canonical.expressions`), since each of them blocks it;
- whether it was listed at a given instant: listed in the latest version
  whose ``time`` is not after that instant (a statement's ``time`` is when
  it was signed; ISPs apply it at their next poll, minutes later);
- for each statement involved, its RFC 9162 inclusion proof in the bundle's
  latest checkpoint, so a third party holding that signed checkpoint and
  the signed statement can check the claim without the rest of the log;
- for full bundles, the entry (expression, scope, reason...) and every
  audit record naming it (the decisions behind each change).

The proofs are only as good as the bundle: pass ``root_vkeys`` to verify it
first (:func:`clients.audit.verify.verify_bundle`); without them the result
says it is unverified. The inclusion proofs are always checked against the
bundle's checkpoint root before they are returned.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from blocklist.auditlog import AuditRecord
from blocklist.canonical import expression_hash, expressions
from blocklist.checkpoint import Checkpoint
from blocklist.encoding import b64decode, b64encode, format_time, parse_time
from blocklist.errors import FormatError, ProofError
from blocklist.merkle import (
    MemoryHashStore,
    inclusion_proof,
    leaf_hash,
    tree_root,
    verify_inclusion,
)
from blocklist.statement import Statement
from clients.audit.bundle import Bundle, BundleEntry, record_to_json
from clients.audit.verify import verify_bundle
from clients.errors import BundleError, NotVerified
from signer.errors import NoteError
from signer.note import parse_note

__all__ = [
    "Event",
    "InclusionProof",
    "ListedAt",
    "Proof",
    "Target",
    "parse_at",
    "prove",
    "targets_for",
]

_HEX_RE: Final = re.compile(r"\A[0-9a-fA-F]{64}\Z")
_DATE_RE: Final = re.compile(r"\A\d{4}-\d{2}-\d{2}\Z")

ADDED: Final = "added"
REMOVED: Final = "removed"


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """RFC 9162 inclusion proof of statement ``version`` (leaf ``version - 1``)."""

    version: int
    tree_size: int
    root: bytes
    leaf_hash: bytes
    hashes: tuple[bytes, ...]

    def verify(self) -> None:
        """Check the proof against ``root`` (RFC 9162 section 2.1.3.2).

        Raises:
            ProofError: the proof does not lead to the root.
        """
        verify_inclusion(self.leaf_hash, self.version - 1, self.tree_size, self.hashes, self.root)

    def to_json(self) -> dict[str, Any]:
        """The proof as a JSON object (hashes in base64)."""
        return {
            "version": self.version,
            "leaf_index": self.version - 1,
            "tree_size": self.tree_size,
            "root": b64encode(self.root),
            "leaf_hash": b64encode(self.leaf_hash),
            "hashes": [b64encode(h) for h in self.hashes],
        }


@dataclass(frozen=True, slots=True)
class Target:
    """A hash asked about, its expression when known, and (full bundles) its decisions."""

    hash: bytes
    expression: str | None = None
    entry: BundleEntry | None = None
    decisions: tuple[AuditRecord, ...] = ()

    def label(self) -> str:
        """The expression, or the hash in base64 when the expression is unknown."""
        return self.expression if self.expression is not None else b64encode(self.hash)

    def to_json(self) -> dict[str, Any]:
        """The target as a JSON object."""
        return {
            "hash": b64encode(self.hash),
            "hash_hex": self.hash.hex(),
            "expression": self.expression,
            "entry": None if self.entry is None else self.entry.to_json(),
            "decisions": [record_to_json(r) for r in self.decisions],
        }


@dataclass(frozen=True, slots=True)
class Event:
    """A hash added to or removed from the list by a version."""

    hash: bytes
    kind: str
    version: int
    time: datetime
    proof: InclusionProof

    def to_json(self) -> dict[str, Any]:
        """The event as a JSON object."""
        return {
            "hash": b64encode(self.hash),
            "kind": self.kind,
            "version": self.version,
            "time": format_time(self.time),
            "proof": self.proof.to_json(),
        }


@dataclass(frozen=True, slots=True)
class ListedAt:
    """The state at an instant: the version in force and which targets it listed.

    ``version`` is 0 when the instant precedes the first version.
    """

    at: datetime
    version: int
    version_time: datetime | None
    listed: tuple[bytes, ...]
    proof: InclusionProof | None

    def to_json(self) -> dict[str, Any]:
        """The answer as a JSON object."""
        return {
            "at": format_time(self.at),
            "version": self.version,
            "version_time": None if self.version_time is None else format_time(self.version_time),
            "listed": bool(self.listed),
            "listed_hashes": [b64encode(h) for h in self.listed],
            "proof": None if self.proof is None else self.proof.to_json(),
        }


@dataclass(frozen=True, slots=True)
class Proof:
    """Everything :func:`prove` found, printable with :meth:`to_text`."""

    list_name: str
    origin: str
    query: str
    targets: tuple[Target, ...]
    events: tuple[Event, ...]
    listed_now: tuple[bytes, ...]
    listed_at: ListedAt | None
    checkpoint_note: str
    tree_size: int
    root: bytes
    verified: bool
    warnings: tuple[str, ...] = field(default=())

    @property
    def listed(self) -> bool:
        """Listed at the instant asked about, or ever added when none was given."""
        if self.listed_at is not None:
            return bool(self.listed_at.listed)
        return any(e.kind == ADDED for e in self.events)

    def to_json(self) -> dict[str, Any]:
        """The proof as one JSON object (the ``--json`` output of ``prove``)."""
        return {
            "list": self.list_name,
            "origin": self.origin,
            "query": self.query,
            "verified": self.verified,
            "listed": self.listed,
            "targets": [t.to_json() for t in self.targets],
            "events": [e.to_json() for e in self.events],
            "listed_now": [b64encode(h) for h in self.listed_now],
            "listed_at": None if self.listed_at is None else self.listed_at.to_json(),
            "checkpoint": {
                "size": self.tree_size,
                "root": b64encode(self.root),
                "note": self.checkpoint_note,
            },
            "warnings": list(self.warnings),
        }

    def to_text(self) -> str:
        """A plain-text report, suitable for printing."""
        labels = {t.hash: t.label() for t in self.targets}
        out = [
            f"cleanfeed audit proof for list {self.list_name} ({self.origin})",
            f"query: {self.query}",
            "bundle verified against the pinned root key(s): "
            + ("yes" if self.verified else "NO (run 'cleanfeed audit verify' first)"),
            f"checkpoint: tree size {self.tree_size}, root {b64encode(self.root)}",
            "",
            "hashes looked up:",
        ]
        for t in self.targets:
            out.append(f"  {b64encode(t.hash)}  ({t.hash.hex()})")
            if t.expression is not None:
                out.append(f"    expression: {t.expression}")
            if t.entry is not None:
                e = t.entry
                out.append(
                    f"    entry {e.id}: scope {e.scope}, status {e.status}, created by "
                    f"{e.created_by} at {e.created_at}, reference {e.reference or '-'}"
                )
            for r in t.decisions:
                reason = r.details.get("reason")
                suffix = f": {reason}" if isinstance(reason, str) and reason else ""
                out.append(
                    f"    record {r.seq}  {format_time(r.time)}  {r.actor}  {r.action}{suffix}"
                )
        out.append("")
        if self.events:
            out.append("history (statement time; ISPs apply a version at their next poll):")
            for ev in self.events:
                out.append(
                    f"  version {ev.version:>6}  {format_time(ev.time)}  {ev.kind:<7}  "
                    f"{labels.get(ev.hash, b64encode(ev.hash))}"
                )
        else:
            out.append("history: never listed in this bundle")
        now = [labels.get(h, b64encode(h)) for h in self.listed_now]
        out.append(f"listed in the latest version ({self.tree_size}): " + (", ".join(now) or "no"))
        if self.listed_at is not None:
            la = self.listed_at
            if la.version == 0:
                out.append(f"listed at {format_time(la.at)}: no (before the first version)")
            else:
                hit = [labels.get(h, b64encode(h)) for h in la.listed]
                assert la.version_time is not None
                out.append(
                    f"listed at {format_time(la.at)}: {'yes' if hit else 'no'} (version "
                    f"{la.version}, signed {format_time(la.version_time)}, was the latest "
                    "then)" + (f": {', '.join(hit)}" if hit else "")
                )
        proofs = {ev.version: ev.proof for ev in self.events}
        if self.listed_at is not None and self.listed_at.proof is not None:
            proofs[self.listed_at.version] = self.listed_at.proof
        if proofs:
            out.append("")
            out.append(
                f"inclusion proofs (RFC 9162; leaf = statement text; tree size {self.tree_size}):"
            )
            for version in sorted(proofs):
                p = proofs[version]
                out.append(
                    f"  version {version}: leaf index {version - 1}, leaf hash "
                    f"{b64encode(p.leaf_hash)}"
                )
                out.extend(f"    {b64encode(h)}" for h in p.hashes)
        for w in self.warnings:
            out.append(f"warning: {w}")
        out.append("")
        out.append("checkpoint note:")
        out.append(self.checkpoint_note.rstrip("\n"))
        return "\n".join(out) + "\n"


def targets_for(hash_or_url: str | bytes) -> tuple[str, list[tuple[bytes, str | None]]]:
    """Resolve a query: a raw hash, 64 hex digits, canonical base64 or a URL.

    Returns:
        A description of the query and the (hash, expression or None) pairs
        to look up: one for a hash, every lookup expression for a URL.

    Raises:
        InvalidURL: a URL that cannot be canonicalised.
        ValueError: bytes that are not a 32-byte hash.
    """
    if isinstance(hash_or_url, bytes):
        if len(hash_or_url) != 32:
            raise ValueError("a raw hash is 32 bytes")
        return f"hash {b64encode(hash_or_url)}", [(hash_or_url, None)]
    text = hash_or_url.strip()
    if _HEX_RE.match(text):
        h = bytes.fromhex(text)
        return f"hash {b64encode(h)}", [(h, None)]
    if len(text) == 44:
        try:
            h = b64decode(text, length=32)
        except FormatError:
            pass
        else:
            return f"hash {text}", [(h, None)]
    found = expressions(text)
    return f"url {text}", [(expression_hash(e), e) for e in found]


def parse_at(text: str) -> datetime:
    """Parse ``--at``: ``YYYY-MM-DD`` (00:00:00Z that day) or UTC RFC 3339 with ``Z``.

    Raises:
        FormatError: any other spelling.
    """
    if _DATE_RE.match(text):
        text = f"{text}T00:00:00Z"
    return parse_time(text, what="--at")


def _statement_text(note: str, version: int) -> str:
    split = note.rfind("\n\n")
    if split < 0:
        raise BundleError(f"statement {version}: not a signed note")
    return note[: split + 1]


def _latest_checkpoint(bundle: Bundle) -> tuple[str, Checkpoint]:
    best: tuple[str, Checkpoint] | None = None
    for note in bundle.checkpoints:
        try:
            checkpoint = Checkpoint.parse(parse_note(note).text)
        except (NoteError, FormatError) as e:
            raise BundleError(f"a bundle checkpoint does not parse: {e}") from e
        if best is None or checkpoint.size >= best[1].size:
            best = (note, checkpoint)
    if best is None:
        raise BundleError("the bundle holds no checkpoint")
    return best


def prove(
    bundle: Bundle,
    hash_or_url: str | bytes,
    at: datetime | None = None,
    *,
    root_vkeys: Sequence[str] = (),
    now: datetime | None = None,
) -> Proof:
    """Say when a hash (or any lookup expression of a URL) was listed, with proofs.

    Args:
        bundle: the bundle (hash-only or full).
        hash_or_url: a raw 32-byte hash, 64 hex digits, canonical base64, or
            a URL (then every Safe Browsing lookup expression of it).
        at: an instant to answer "was it listed then?" for (aware).
        root_vkeys: pinned root vkey(s); when given the bundle is verified
            first and must pass.
        now: the auditor's clock for that verification (default: now).

    Returns:
        The proof (``proof.verified`` says whether the bundle was verified).

    Raises:
        NotVerified: ``root_vkeys`` were given and the bundle fails, or the
            bundle's statements do not match its own checkpoint.
        BundleError: a statement or checkpoint of an unverified bundle does
            not parse.
        InvalidURL: a URL that cannot be canonicalised.
        ValueError: a naive ``at``, a bad root vkey, bytes that are not a hash.
    """
    if at is not None and at.tzinfo is None:
        raise ValueError("at must be an aware datetime")
    query, pairs = targets_for(hash_or_url)
    verified = False
    if root_vkeys:
        report = verify_bundle(bundle, root_vkeys, now=now)
        if report.failure is not None:
            raise NotVerified(
                f"the bundle does not verify: {report.failure}", failure=str(report.failure)
            )
        verified = True
    wanted = {h for h, _ in pairs}

    store = MemoryHashStore()
    statements: list[Statement] = []
    found: list[tuple[bytes, str, Statement]] = []
    current: set[bytes] = set()
    for n, note in enumerate(bundle.statements, start=1):
        text = _statement_text(note, n)
        try:
            statement = Statement.parse(text)
        except FormatError as e:
            raise BundleError(f"statement {n}: {e}") from e
        store.append(text.encode("ascii"))
        statements.append(statement)
        if not wanted.isdisjoint(statement.adds):
            found.extend((h, ADDED, statement) for h in statement.adds if h in wanted)
        if not wanted.isdisjoint(statement.removes):
            found.extend((h, REMOVED, statement) for h in statement.removes if h in wanted)
    for h, kind, _ in found:
        if kind == ADDED:
            current.add(h)
        else:
            current.discard(h)

    checkpoint_note, checkpoint = _latest_checkpoint(bundle)
    size = len(statements)
    root = tree_root(size, store)
    if checkpoint.size != size or checkpoint.root != root:
        raise NotVerified(
            "the bundle's checkpoint does not match its statements",
            failure=f"checkpoint size {checkpoint.size}, {size} statements",
        )

    proofs: dict[int, InclusionProof] = {}

    def proof_of(version: int) -> InclusionProof:
        if version not in proofs:
            text = _statement_text(bundle.statements[version - 1], version)
            p = InclusionProof(
                version=version,
                tree_size=size,
                root=root,
                leaf_hash=leaf_hash(text.encode("ascii")),
                hashes=tuple(inclusion_proof(version - 1, size, store)),
            )
            try:
                p.verify()
            except ProofError as e:  # pragma: no cover - our own tree
                raise NotVerified("an inclusion proof does not verify", failure=str(e)) from e
            proofs[version] = p
        return proofs[version]

    events = tuple(
        Event(h, kind, st.version, st.time, proof_of(st.version)) for h, kind, st in found
    )
    listed_at: ListedAt | None = None
    warnings: list[str] = []
    if at is not None:
        in_force = max((st.version for st in statements if st.time <= at), default=0)
        if any(st.time > at for st in statements[:in_force]):
            warnings.append("statement times are not monotonic: 'listed at' is approximate")
        state: set[bytes] = set()
        for ev in events:
            if ev.version <= in_force:
                if ev.kind == ADDED:
                    state.add(ev.hash)
                else:
                    state.discard(ev.hash)
        listed_at = ListedAt(
            at=at.astimezone(UTC),
            version=in_force,
            version_time=statements[in_force - 1].time if in_force else None,
            listed=tuple(h for h, _ in pairs if h in state),
            proof=proof_of(in_force) if in_force else None,
        )

    entries = {e.hash: e for e in bundle.entries or ()}
    records_by_entry: dict[int, list[AuditRecord]] = {}
    for r in bundle.audit_log or ():
        if r.entry_id is not None:
            records_by_entry.setdefault(r.entry_id, []).append(r)
    targets = []
    for h, expr in pairs:
        entry = entries.get(h)
        decisions = tuple(records_by_entry.get(entry.id, ())) if entry is not None else ()
        targets.append(
            Target(
                hash=h,
                expression=expr if expr is not None else (entry.expression if entry else None),
                entry=entry,
                decisions=decisions,
            )
        )
    return Proof(
        list_name=bundle.list_name,
        origin=bundle.origin,
        query=query,
        targets=tuple(targets),
        events=events,
        listed_now=tuple(h for h, _ in pairs if h in current),
        listed_at=listed_at,
        checkpoint_note=checkpoint_note,
        tree_size=size,
        root=root,
        verified=verified,
        warnings=tuple(warnings),
    )
